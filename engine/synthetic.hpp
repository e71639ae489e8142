// Synthetic networks for benchmarks: the same work on every run and every machine.
//
// Specifications:
//   mlp:784-300-100-10   dense layers between the listed sizes (at least two), ReLU after every
//                        dense layer but the last; input shape (784).
//   lenet5               (1,28,28): conv6 k5 pad2, relu, maxpool2, conv16 k5, relu, maxpool2,
//                        flatten, fc120, relu, fc84, relu, fc10.
//   vgg-small            (3,32,32): conv64, relu, conv64, relu, maxpool2, conv128, relu, conv128,
//                        relu, maxpool2, flatten, fc256, relu, fc10; every conv 3×3 pad 1.
//
// The generator (portable: it does not use std::uniform_real_distribution, whose output is
// implementation-defined):
//   g = std::mt19937_64(seed);  u() = (g() >> 11) · 2⁻⁵³  ∈ [0, 1)
//   for each linear layer in network order: every weight in storage order (dense (out, in),
//   conv (out, in, kh, kw)) is (2u − 1)·√(6 / fan_in) (He-uniform), then every bias is
//   (2u − 1)/√fan_in (PyTorch's default bias init); fan_in = in (dense) or in·kh·kw (conv).
//   The input comes from its own generator std::mt19937_64(seed + 1): x_i = u(), i in flat order.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "engine/network.hpp"

namespace provnn::engine {

/// The seed every benchmark uses unless told otherwise.
inline constexpr std::uint64_t synthetic_seed = 20261126;

/// u() of the header comment: 53 random bits scaled into [0, 1). O(1).
inline double synthetic_uniform(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1p-53; }

/// The network named by `spec` (see the header comment), weights from `seed`;
/// network::source is "synthetic:<spec>". O(parameters).
/// Throws parse_error naming the specification and listing the valid forms; limit_error when
/// an MLP layer is larger than 100 000 units or has more than 10⁹ weights.
network synthetic_network(std::string_view spec, std::uint64_t seed = synthetic_seed);

/// An input for `net` drawn U(0, 1) from std::mt19937_64(seed + 1). O(input size).
std::vector<double> synthetic_input(const network& net, std::uint64_t seed = synthetic_seed);

}  // namespace provnn::engine
