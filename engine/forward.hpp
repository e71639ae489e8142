// The forward pass in double precision. It fixes the activation pattern that every LRP
// rule (and every circuit) uses: which ReLUs are on, which max-pool input wins.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/network.hpp"

namespace provnn::engine {

struct forward_result {
  /// activations[0] is the input; activations[i + 1] is the output of layers[i]. For a
  /// linear layer that output is its pre-activation z (bias included); a following ReLU
  /// layer's output is max(z, 0).
  std::vector<std::vector<double>> activations;
  /// For every layer: empty unless it is a max-pool layer; then, for each output unit, the
  /// flat index (into the layer's input) of the winning input — the first maximum in
  /// window order (row-major over the kernel window; padding never wins).
  std::vector<std::vector<std::uint32_t>> argmax;

  const std::vector<double>& output() const { return activations.back(); }
};

/// Runs the network on one input (flat, C order, shape net.input_shape).
/// Throws provnn::error when the input size does not match or an input value is NaN/Inf
/// (naming the index).
forward_result forward(const network& net, std::span<const double> input);

/// Checks that `fwd` has the shape of a forward pass of `net` (one activation array per layer
/// boundary, each of its shape's size, a non-empty output) before a pass reads it.
/// Throws provnn::error naming the boundary and both sizes. O(layers).
void check_forward_result(const network& net, const forward_result& fwd);

}  // namespace provnn::engine
