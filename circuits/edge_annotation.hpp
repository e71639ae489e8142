// Edge annotations Θ (DESIGN §3, K-LRP): a value for every edge gate of a circuit, computed
// once from each edge's real coefficient d_jk (the edge gate's value under the natural real
// valuation) and its context (layer, units, term, parameter). An evaluation with an
// annotation values edge gate i by Θ_i — S.zero(), S.one(), or s.from_real(x) — instead of
// the product of its factors; everything else is evaluated as usual.
//
// An annotation is plain data tied to one circuit (one entry per circuit::edge_gates()
// entry, same order); it stays valid while the circuit only grows by non-edge gates.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "circuits/circuit.hpp"

namespace provnn {

enum class edge_value_kind : std::uint8_t { zero, one, real };

/// What Θ gives one edge: 0, 1 or a real number (mapped into S by s.from_real).
struct edge_value {
  edge_value_kind kind = edge_value_kind::zero;
  double real = 0.0;
  static edge_value zero() noexcept { return {edge_value_kind::zero, 0.0}; }
  static edge_value one() noexcept { return {edge_value_kind::one, 1.0}; }
  static edge_value of(double x) noexcept { return {edge_value_kind::real, x}; }
};

class edge_annotation {
 public:
  edge_annotation() = default;
  edge_annotation(std::string name, std::vector<std::uint8_t> kinds, std::vector<double> reals)
      : name_(std::move(name)), kinds_(std::move(kinds)), reals_(std::move(reals)) {}

  std::size_t size() const noexcept { return kinds_.size(); }
  edge_value_kind kind(std::size_t i) const { return static_cast<edge_value_kind>(kinds_[i]); }
  double real(std::size_t i) const { return reals_[i]; }
  /// The spec it was made from (`threshold:0.1`, `viterbi-maxnorm`, …), for messages.
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  std::vector<std::uint8_t> kinds_;
  std::vector<double> reals_;
};

/// d_jk of every edge gate (edge_gates() order): its real value under `token_values`
/// (the stored natural valuation when omitted). O(cone of the edge gates).
std::vector<double> edge_coefficients(const circuit& c);
std::vector<double> edge_coefficients(const circuit& c, std::span<const double> token_values);

/// Θ(d) = d (the edge's own real coefficient): real evaluation is unchanged by it.
edge_annotation identity_annotation(const circuit& c);

/// Θ(d) = 1 if d ≥ θ else 0, one θ for every layer (Boolean/counting K-LRP).
edge_annotation threshold_annotation(const circuit& c, double theta);
/// One θ per layer (keyed by edge_context::layer). Throws provnn::error naming the layer
/// when an edge's layer has no θ.
edge_annotation threshold_annotation(const circuit& c, const std::map<std::uint32_t, double>& theta_by_layer);

/// Θ(d) = |d_jk| / max_j' |d_j'k|, the maximum over the edges with the same layer, upper unit
/// and term (Groudiev's Viterbi map |a_j w_jk| / max_j' |a_j' w_j'k|: within one term the
/// unit normaliser is a common factor and cancels). A group whose maximum is 0 gives 0.
edge_annotation viterbi_maxnorm_annotation(const circuit& c);

/// The annotation named by a spec, as users write it:
///   identity | viterbi-maxnorm | threshold:θ | threshold:L=θ,L=θ,…   (θ per layer L)
/// Throws parse_error naming the spec and listing the valid forms.
edge_annotation parse_edge_annotation(const circuit& c, std::string_view spec);

/// Any Θ as a function of the edge's context and coefficient.
edge_annotation make_edge_annotation(const circuit& c, std::string name,
                                     const std::function<edge_value(const edge_context&, double d)>& theta);

}  // namespace provnn
