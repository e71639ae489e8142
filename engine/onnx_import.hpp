// ONNX import: a model file becomes an engine::network (a chain of layers, BatchNorm folded).
//
// Supported (default domain, opsets 9–17): Gemm (transB, alpha, beta; transA = 0), MatMul
// (optionally followed by Add of a constant, folded into the bias), Conv (2-D; strides, pads,
// dilations, auto_pad, any group), Relu, MaxPool, AveragePool (count_include_pad; ceil_mode when
// the last window starts inside the input), GlobalAveragePool, a zero Pad directly before a Conv
// or AveragePool (folded into its pads; PyTorch exports AvgPool2d(padding=p) that way), Flatten,
// Reshape with a constant shape (initialiser or Constant node),
// BatchNormalization directly after Conv/Gemm/MatMul (folded into it:
//   W' = W·γ/√(var+ε), b' = (b − mean)·γ/√(var+ε) + β), Dropout and Identity (skipped),
// Constant, and a trailing Softmax/LogSoftmax (skipped, with one note on stderr: relevance is
// explained on the logits).
//
// The graph must be a chain: one graph input (initialisers listed as inputs do not count),
// every computed tensor read by exactly one node, one graph output. The batch dimension of
// the graph input (1 or symbolic) is dropped. Weights come as float or double, from raw_data
// or the typed fields, and must be finite. Tensors stored as external data are refused:
// provnn never opens paths named inside a model file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "engine/network.hpp"

namespace provnn::engine {

/// Largest model accepted: total number of weight values over all initialisers.
inline constexpr std::size_t max_onnx_parameters = 1'000'000'000;
/// Largest model accepted: number of graph nodes.
inline constexpr std::size_t max_onnx_nodes = 10'000;
/// Largest tensor flowing between layers (elements, batch dimension excluded). It also keeps
/// max-pool argmax indices within 32 bits.
inline constexpr std::size_t max_onnx_activation = 100'000'000;

/// Reads and imports an ONNX model file.
/// Complexity: linear in the file size plus the weights (BatchNorm folding included).
/// Throws io_error (cannot open/read), parse_error (not a valid ONNX model, naming the file;
/// inconsistent shapes, naming the node), unsupported_error (an op, attribute, dtype or
/// graph shape outside the list above, naming the node: name, index and op type; external
/// data), limit_error (past the constants above), error (NaN/Inf in a weight, naming the
/// initialiser and the flat index).
network load_onnx(const std::filesystem::path& path);

/// Same as load_onnx, from the bytes of a model; source_name is used in messages and stored
/// as network::source.
network load_onnx_bytes(std::string_view bytes, std::string source_name);

}  // namespace provnn::engine
