// Numeric LRP (DESIGN §2): relevance propagated backwards through a network in double (or
// in float: the fp32 overload, see forward.hpp), one rule per linear layer, over the
// activation pattern of a forward pass.
//
// Every linear-layer rule has the form R_j = Σ_m Σ_k φ_m(a_j) ψ_m(w_jk) c_mk R_k. The
// implementation computes, per output unit, the coefficient c_mk·R_k once, then streams
// over the weights (dense: row by row, contiguous; convolution: per kernel tap, over output
// rows), so a layer costs a small constant times its multiply-adds and allocates nothing
// per edge. Non-linear layers: ReLU passes relevance unchanged (Zennit's Pass), max-pooling
// sends it to the winning input recorded by the forward pass, average pooling is a linear
// layer with fixed weights 1/N under the ε rule with ε = 1e-6 (Zennit's Norm; see
// lrp_options::pool_epsilon), flatten and reshape re-index (the flat data is the same).
//
// Biases. The relevance a bias absorbs is Σ_m ψ_m(b_k) c_mk R_k, so for a rule with one
// denominator d_k per unit
//   Σ_j R_j + Σ_k R(b_k) = Σ_k R_k · d_k / stab(d_k),
// exact conservation for LRP-0 and up to the ε leak otherwise (z^B and flat give the bias
// nothing; αβ has two denominators, and a unit whose z⁻ is 0 passes α·R_k). With
// bias_mode::zeroed every bias is 0 in every rule (Zennit's zero_params='bias'); the activation
// pattern, the score and the sign test of the γ rule still come from the ordinary forward
// pass (Zennit's Gamma takes its sign from the unmodified module).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "engine/forward.hpp"
#include "engine/network.hpp"
#include "engine/rules.hpp"

namespace provnn::engine {

enum class bias_mode : std::uint8_t {
  kept,   ///< each rule treats the bias as DESIGN §2 says (Zennit's default)
  zeroed  ///< biases are 0 in every rule (Zennit's zero_params='bias')
};

/// Explain the class the network predicts (first maximum of the output).
struct predicted_class {};

/// What to explain: the predicted class, a class index, or an initial relevance vector
/// (output-sized) used as given.
using lrp_target = std::variant<predicted_class, std::size_t, std::vector<double>>;

struct lrp_options {
  /// One rule per linear layer, in network order (see resolve() in engine/rules.hpp); zbox
  /// rules with per-feature bounds must be loaded (resolve_bounds).
  std::vector<rule> layer_rules;
  bias_mode bias = bias_mode::kept;
  lrp_target target = predicted_class{};
  /// ε of average pooling (Zennit's Norm: 1e-6). 0 makes LRP-0 equal gradient × input
  /// exactly on networks with average pools.
  double pool_epsilon = 1e-6;
};

/// T is double, or float for the fp32 path (forward.hpp).
template <class T>
struct basic_lrp_result {
  /// relevance[i] has the shape of forward_result::activations[i]: relevance[0] is the
  /// input relevance, relevance.back() the initial (output) relevance.
  std::vector<std::vector<T>> relevance;
  /// Per linear layer (index among the linear layers), per output unit (a convolution's
  /// unit is (channel, y, x)): the relevance its bias absorbed. Zeros when biases are zeroed
  /// and for rules that give biases nothing.
  std::vector<std::vector<T>> bias_relevance;
  double bias_share = 0.0;            ///< Σ of every bias_relevance entry (summed in double)
  std::optional<std::size_t> target;  ///< the class explained; empty for an initial vector
  double score = 0.0;                 ///< the target's logit, or Σ of the given initial vector

  const std::vector<T>& input_relevance() const { return relevance.front(); }
};
using lrp_result = basic_lrp_result<double>;
using lrp_result_f32 = basic_lrp_result<float>;

/// Index of the first maximum of the network output. Precondition: non-empty output.
template <class T>
std::size_t predicted(const basic_forward_result<T>& fwd);

/// Runs LRP over `net` with the activation pattern of `fwd` (= forward(net, x)).
/// Complexity: O(multiply-adds of the network): two passes over each layer's weights (one
/// for the ε rule with biases kept), O(activations) memory.
/// Throws provnn::error when `fwd` does not match `net`, the number of rules is not the
/// number of linear layers, the target class is out of range, the initial relevance vector
/// has the wrong size or a non-finite value, pool_epsilon is negative, or a zbox bound is
/// not loaded, has the wrong number of values for its layer, or a non-finite value.
lrp_result lrp(const network& net, const forward_result& fwd, const lrp_options& options);

/// The same in float (the fp32 path): `fwd` = forward(net, p, x), p = to_float32(net). Every
/// rule, in the same order of operations, with the rule parameters (ε, γ, α, β, zbox bounds,
/// pool_epsilon) rounded to float; the initial relevance is the float logit (or the given vector
/// rounded). Throws as lrp() does, when the sizes of `p` do not match `net`, and when a rule
/// parameter or an initial relevance value is beyond float's range, or a nonzero ε, γ, α, β or
/// pool_epsilon rounds to 0 in float (naming the layer and the parameter).
lrp_result_f32 lrp(const network& net, const float32_parameters& p, const forward_result_f32& fwd,
                   const lrp_options& options);

/// The fp32 result in double (exactly: every float is a double), for writers that take double.
lrp_result to_double(const lrp_result_f32& r);

}  // namespace provnn::engine
