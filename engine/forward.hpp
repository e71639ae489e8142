// The forward pass. It fixes the activation pattern that every LRP rule (and every circuit)
// uses: which ReLUs are on, which max-pool input wins.
//
// Two precisions. double is the default and the only one circuits are built from. float (fp32)
// is what Zennit, Captum and PyTorch compute in; it reads the weights as float32_parameters,
// rounded once per loaded model, and does half the memory traffic and twice the arithmetic per
// instruction of the double path. Its activations, and an activation pattern decided by a
// near-tie (a ReLU input or a pooling window within rounding of another), may differ from the
// double pass: fp32 explanations are the numeric kind only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/network.hpp"

namespace provnn::engine {

template <class T>
struct basic_forward_result {
  /// activations[0] is the input; activations[i + 1] is the output of layers[i]. For a
  /// linear layer that output is its pre-activation z (bias included); a following ReLU
  /// layer's output is max(z, 0).
  std::vector<std::vector<T>> activations;
  /// For every layer: empty unless it is a max-pool layer; then, for each output unit, the
  /// flat index (into the layer's input) of the winning input — the first maximum in
  /// window order (row-major over the kernel window; padding never wins).
  std::vector<std::vector<std::uint32_t>> argmax;

  const std::vector<T>& output() const { return activations.back(); }
};
using forward_result = basic_forward_result<double>;
using forward_result_f32 = basic_forward_result<float>;

/// A linear layer's weight and bias arrays as the network stores them (both null for a layer
/// without parameters).
struct layer_parameters {
  const std::vector<double>* weight = nullptr;
  const std::vector<double>* bias = nullptr;
};
layer_parameters parameters_of(const layer& l);

/// Every linear layer's weights and bias rounded to float, for the fp32 passes; made once per
/// loaded model (vgg-small: 2.36 M parameters, 9.4 MB, 2–30 ms). weight[i] and bias[i] belong to
/// net.layers[i] and are empty for layers without parameters.
struct float32_parameters {
  std::vector<std::vector<float>> weight, bias;
};

/// Rounds the parameters of `net` to float (round to nearest). Throws provnn::error naming the
/// layer and the flat index of a finite parameter beyond float's range (|x| > 3.4·10³⁸). O(parameters).
float32_parameters to_float32(const network& net);

/// Checks that `p` has one weight and one bias array per layer of `net`, each of its layer's
/// size (sizes only: the values are not compared). Throws provnn::error naming the layer
/// otherwise. O(layers).
void check_float32_parameters(const network& net, const float32_parameters& p);

/// Runs the network on one input (flat, C order, shape net.input_shape).
/// Throws provnn::error when the input size does not match or an input value is NaN/Inf
/// (naming the index).
forward_result forward(const network& net, std::span<const double> input);

/// The same pass in float: the input rounded to float, then every layer in float with the
/// weights of `p` (= to_float32(net)). Throws as forward() does, and when an input value is
/// beyond float's range, a layer's output overflows float (naming the layer and the index), or
/// the sizes of `p` do not match `net`.
forward_result_f32 forward(const network& net, const float32_parameters& p, std::span<const double> input);

/// Checks that `fwd` has the shape of a forward pass of `net` (one activation array per layer
/// boundary, each of its shape's size, a non-empty output) before a pass reads it.
/// Throws provnn::error naming the boundary and both sizes. O(layers).
template <class T>
void check_forward_result(const network& net, const basic_forward_result<T>& fwd);

}  // namespace provnn::engine
