// The network model: a chain of layers, as imported from ONNX and ready for the forward
// pass and LRP. Shapes never include the batch dimension: a dense layer sees a vector,
// a convolution sees (C, H, W). Tensors are C-order (row-major) flat arrays of double.
//
// BatchNormalization is folded into the preceding dense/conv layer at import time, so the
// parameters stored here are the folded ones — the ones tokens name (W<layer>[…], b<layer>[k]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace provnn::engine {

using shape_t = std::vector<std::size_t>;

/// Number of elements of a shape (1 for the empty shape).
inline std::size_t element_count(const shape_t& s) {
  std::size_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

/// z_k = Σ_j W[k, j] a_j + b_k. weight is (out, in) row-major, as ONNX Gemm with transB=1.
struct dense_op {
  std::size_t in = 0, out = 0;
  std::vector<double> weight;  // out × in
  std::vector<double> bias;    // out (zeros when the model has none)
};

/// 2-D convolution, ONNX semantics. weight is (out_channels, in_channels/group, kh, kw).
struct conv2d_op {
  std::size_t in_channels = 0, out_channels = 0, kernel_h = 0, kernel_w = 0;
  std::size_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  std::size_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  std::size_t group = 1;
  std::vector<double> weight;
  std::vector<double> bias;  // out_channels
};

struct relu_op {};

/// Max or average pooling over (C, H, W); GlobalAveragePool is an average pool whose kernel
/// is the whole plane. Average pooling divides by the number of real (unpadded) inputs
/// unless count_include_pad.
struct pool_op {
  enum class kind : std::uint8_t { max, average } mode = kind::max;
  std::size_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  std::size_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool count_include_pad = false;
};

/// Flatten and Reshape with a constant shape: a re-indexing, the data order is unchanged.
struct reshape_op {};

struct layer {
  std::string name;     ///< ONNX node name (or "<op_type>_<index>" when the node has none)
  std::string op_type;  ///< ONNX op type it came from ("Gemm", "Conv", "Relu", …)
  std::variant<dense_op, conv2d_op, relu_op, pool_op, reshape_op> op;
  shape_t in_shape, out_shape;

  /// Dense and conv layers are the "linear layers" rules are assigned to.
  bool is_linear() const noexcept {
    return std::holds_alternative<dense_op>(op) || std::holds_alternative<conv2d_op>(op);
  }
};

struct network {
  std::string source;      ///< where it was loaded from (file path), for messages
  shape_t input_shape;     ///< without batch dimension
  std::string input_name;  ///< ONNX graph input name
  std::vector<layer> layers;
  /// Op type of a trailing Softmax/LogSoftmax skipped at import ("" if none): the network
  /// outputs logits, and relevance is explained on them.
  std::string skipped_softmax;

  shape_t output_shape() const { return layers.empty() ? input_shape : layers.back().out_shape; }
};

}  // namespace provnn::engine
