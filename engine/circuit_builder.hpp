// The circuit builder (DESIGN §3): LRP over a network, recorded as a shared provenance
// circuit instead of numbers. docs/mathematics.md derives every gate and token value.
//
// Layer numbers. The circuit numbers its *linear stages* from 1 in network order: every
// dense and convolution layer, and every average-pooling layer (a linear layer with the fixed
// weights 1/N under the ε rule, ε = 1e-6, DESIGN §2). Without average pools (the MLP, the
// plain and max-pool CNNs) stage s is linear layer s−1 of engine/rules.hpp's resolve().
//   x[i]          input feature i (multi-index in the network's input shape), with the
//                 variants x+ x- l h x^0 that the first stage's rule uses
//   a<s>[j]       what stage s+1 reads (multi-index in its input shape): the output of stage
//                 s after its ReLU, max-pool routing and flatten; variants a+ a- a^0
//   W<s>[…]       one token per parameter, in the tensor's own layout — dense (out, in),
//                 conv (out_channel, in_channel/group, ky, kx) — shared by every edge that uses
//                 it; variants W+ W- Wg+ Wg- W^2 W^0
//   b<s>[c]       one token per bias parameter (per output channel for a convolution)
//   n<s>[k]#m     the per-unit coefficient c_mk of term m of unit k (multi-index in the stage's
//                 output shape): all divisions, ε, γ, α, β and signs live here
//   r[y]          the initial relevance of output y (its logit for a class target)
// Edge gates E_jk^m = φ_m(a_j) ⊗ ψ_m(w_jk) ⊗ n_k^m (an average pool's edge has no ψ);
// R_j = ⊕_{m,k} E_jk^m ⊗ R_k; ReLU, max-pool routing and flatten re-use R's gate (a
// max-pool's winner takes the gate of the pool output it won; overlapping windows that share
// a winner give it the ⊕ of their gates).
// Terms m per rule: ε/0: 0 (a,w). z⁺: 0 (a⁺,w⁺), 1 (a⁻,w⁻). αβ: those two with α, then
// 2 (a⁺,w⁻), 3 (a⁻,w⁺) with −β. γ: 0 (a⁺,w+γw⁺), 1 (a⁻,w+γw⁻) for z>0 units, 2 (a⁺,w+γw⁻),
// 3 (a⁻,w+γw⁺) for z<0 units. z^B: 0 (x,w), 1 (l,w⁺), 2 (h,w⁻). flat: 0 (a^0,W^0).
// w²: 0 (a^0,W^2). average pool: 0 (a).
//
// The circuit is specific to the forward pass's activation pattern: a factor whose natural
// value is exactly 0 (a⁺ of an inactive unit, x⁻ of a non-negative input, w⁺ of a negative
// weight, a zero coefficient) is the zero gate, so its edges are not emitted, and units whose
// relevance is then identically zero have no gate at all.
#pragma once

#include <functional>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "circuits/circuit.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/network.hpp"
#include "engine/rules.hpp"

namespace provnn::engine {

/// Default circuit budget: 2^31 gates, 8 GiB.
inline constexpr std::size_t default_max_gates = std::size_t{1} << 31;
inline constexpr std::size_t default_max_memory = std::size_t{8} << 30;

/// How the edges of dense and convolution layers are stored (DESIGN §5, issue 5).
///   plain  one edge gate E_jk^m and one product E ⊗ R_k per edge: what edge annotations,
///          DOT and the Boost.Graph view read directly.
///   fused  one fused gate per lower unit and term, 4–8 bytes per edge (circuits/fused.hpp);
///          equal values in every semiring and equal polynomials; expand_fused() gives the
///          plain circuit when edge gates are needed. Average pools stay plain.
///   structured  dense layers as fused; a convolution's edges implied by its geometry
///          (structured gates, DESIGN §5): per lower unit and term one gate with no per-edge
///          storage, per stage tables of O(units + parameters). Same values, same polynomials,
///          the same plain circuit once expanded; memory no longer grows with the
///          multiply-adds.
enum class circuit_layout : std::uint8_t { plain, fused, structured };

struct circuit_options {
  circuit_layout layout = circuit_layout::plain;
  /// One rule per dense/conv layer, in network order (engine/rules.hpp resolve()); zbox
  /// bounds must be loaded. A zbox rule must sit on a layer that reads the network input.
  std::vector<rule> layer_rules;
  bias_mode bias = bias_mode::kept;
  /// ε of average pools (lrp_options::pool_epsilon): 1e-6 as Zennit's Norm; 0 gives LRP-0's
  /// exact conservation on networks with average pools.
  double pool_epsilon = 1e-6;
  /// What to explain when `targets` is empty: the predicted class, a class, or an initial
  /// relevance vector (one r[y] token per nonzero entry, valued by it).
  lrp_target target = predicted_class{};
  /// Several classes at once: they share every token and edge gate; each gets its own
  /// roots, named `R(x[…]|r[y])`, `R(b1[3]|r[y])` (with root::target = y). With one class the
  /// names carry no suffix.
  std::vector<std::size_t> targets;
  /// Labels recorded in the metadata ("model", "input"); model defaults to network::source.
  std::string model, input;
  /// Budget of the circuit (circuits/circuit.hpp circuit_limits): at most max_gates gates and
  /// max_memory bytes held by the arena and its token table, transient growth included.
  /// The defaults protect a 24 GiB machine (evaluation needs room beside the circuit). When
  /// hit, build_circuit throws limit_error naming the limit, the layer being built and the
  /// option that raises it (--max-gates / --max-memory).
  std::size_t max_gates = default_max_gates;
  std::size_t max_memory = default_max_memory;
  /// The fused layout records a stage's active edges (12 bytes each) while counting them, so
  /// that bucketing them needs no second traversal of the stage (a dense stage is bucketed
  /// straight from its weight rows, 16 bytes per multiply-add of room, mostly untouched); a
  /// stage that may have more (its multiply-adds × rule terms) or whose record would not fit
  /// max_memory is visited twice instead (a convolution from its needed output units, as
  /// when counting; other stages in stage order). The circuit is the same either way (tests
  /// compare the bytes, and each fused gate's edges for stage order).
  std::size_t max_recorded_edges = std::size_t{1} << 22;
  /// Called before each linear stage is built, from the output down: (stages done, stages
  /// in all). For progress displays; empty by default. May throw to cancel the build.
  std::function<void(std::size_t done, std::size_t total)> progress;
};

/// What build_circuit() produced, beside the circuit itself.
struct circuit_build_info {
  std::vector<std::size_t> targets;  ///< classes explained (empty for an initial vector)
  std::vector<double> scores;        ///< their logits (or Σ of the initial vector)
  std::size_t edges = 0;             ///< edge gates emitted
};

/// Builds the provenance circuit of LRP over `net` with the activation pattern of `fwd`
/// (= forward(net, x)), DESIGN §3. Roots: one `R(x[…])` per input feature (flat order; the
/// zero gate when no path reaches it) and one `R(b<s>[c])` per bias of every stage whose rule
/// gives biases a share (biases kept; ε/0, z⁺, αβ, γ, w²), per target. The token table holds
/// the natural real valuation; real evaluation equals lrp() with the same options.
/// Metadata: model, input, targets, scores, rules (per stage), bias.
/// Complexity: O(edges · terms) time, no per-edge heap allocation; the circuit has
/// O(active edges · terms · targets) gates.
/// Throws provnn::error as lrp() does (forward result mismatch, rule count, target out of
/// range, bad initial vector, unloaded or mis-sized bounds), and unsupported_error for a zbox
/// rule on a layer that does not read the network input.
circuit build_circuit(const network& net, const forward_result& fwd, const circuit_options& options,
                      circuit_build_info* info = nullptr);

/// The stage numbers of the layers: stage_of[i] is the 1-based linear-stage number of
/// net.layers[i] (dense, conv, average pool), 0 for other layers. O(layers).
std::vector<std::size_t> stage_numbers(const network& net);

}  // namespace provnn::engine
