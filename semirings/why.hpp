// Why-provenance Why[X]: every witness set, one per path.
//
//   carrier   finite sets of finite sets of tokens (each inner set is a witness: the
//             tokens of one path, without multiplicity)
//   ⊕         ∪
//   ⊗         pairwise union {a ∪ b : a ∈ A, b ∈ B}
//   0, 1      ∅ (no witness), {∅} (the empty witness)
//   properties commutative, ⊕-idempotent; exact. Not ⊗-idempotent ({{x},{y}}² has {x,y}),
//             not absorptive (that is PosBool[X]).
//   lifting   token t ↦ {{t}}, whatever its real value
//   answers   "which sets of tokens witness a relevant path?" — each witness lists the
//             feature, weights and units of one path.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "semirings/token_set.hpp"

namespace provnn {

/// A set of witnesses, kept sorted by set_order with no duplicates (so == is set equality).
using witness_sets = std::vector<token_set>;

namespace detail {
inline void sort_unique_witnesses(witness_sets& w) {
  std::sort(w.begin(), w.end(), set_order);
  w.erase(std::unique(w.begin(), w.end()), w.end());
}
inline witness_sets pairwise_unions(const witness_sets& a, const witness_sets& b) {
  witness_sets r;
  r.reserve(a.size() * b.size());
  for (const auto& x : a)
    for (const auto& y : b) r.push_back(set_union(x, y));
  return r;
}
/// `{{x}, {y, z}}`; `{}` for ∅.
inline std::string format_witnesses(const witness_sets& w, const token_namer& names) {
  std::string out = "{";
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (i > 0) out += ", ";
    out += format_token_set(w[i], names);
  }
  return out + "}";
}
}  // namespace detail

struct why_semiring {
  using value_type = witness_sets;
  static constexpr std::uint32_t properties = commutative | plus_idempotent;
  static constexpr std::string_view registry_name = "why";
  static constexpr std::string_view question = "which sets of tokens witness a relevant path (one set per path)?";

  value_type zero() const { return {}; }
  value_type one() const { return {token_set{}}; }
  /// Merge of two sorted lists, O(|A| + |B|) set comparisons.
  value_type plus(const value_type& a, const value_type& b) const {
    if (a.empty()) return b;
    if (b.empty()) return a;
    value_type r;
    r.reserve(a.size() + b.size());
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(r), set_order);
    return r;
  }
  value_type times(const value_type& a, const value_type& b) const {
    value_type r = detail::pairwise_unions(a, b);
    detail::sort_unique_witnesses(r);
    return r;
  }
  value_type lift(token_index t, double) const { return {token_set{t}}; }
  std::string name() const { return std::string(registry_name); }
  std::string format(const value_type& a, const token_namer& names = {}) const {
    return detail::format_witnesses(a, names);
  }
};

}  // namespace provnn
