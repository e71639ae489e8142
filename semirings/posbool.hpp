// PosBool[X]: positive Boolean formulas over the tokens, kept as their minimal witnesses.
//
//   carrier   antichains of token sets (no set contains another): the minimal models of a
//             monotone DNF
//   ⊕         union, then keep the minimal sets (absorption: {x} ⊕ {x,y} = {x})
//   ⊗         pairwise unions, then keep the minimal sets
//   0, 1      ∅ (false), {∅} (true)
//   properties commutative, ⊕- and ⊗-idempotent, absorptive (a distributive lattice); exact
//   lifting   token t ↦ {{t}} (the formula t), whatever its real value
//   answers   "which minimal sets of tokens suffice for some relevant path?"
//
// Rendered as a formula: `x ∨ y∧z`, `false`, `true`.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "semirings/why.hpp"

namespace provnn {

namespace detail {
/// Sorts by set_order and drops every set that contains another. O(n log n + n²·s).
inline void minimise_witnesses(witness_sets& w) {
  sort_unique_witnesses(w);
  witness_sets kept;
  kept.reserve(w.size());
  for (auto& s : w) {
    // Only smaller or equal-size sets can be subsets, and those come first in set_order.
    bool dominated = false;
    for (const auto& k : kept)
      if (is_subset(k, s)) {
        dominated = true;
        break;
      }
    if (!dominated) kept.push_back(std::move(s));
  }
  w = std::move(kept);
}
}  // namespace detail

struct posbool_semiring {
  using value_type = witness_sets;
  static constexpr std::uint32_t properties = commutative | plus_idempotent | times_idempotent | absorptive;
  static constexpr std::string_view registry_name = "posbool";
  static constexpr std::string_view question = "which minimal sets of tokens suffice for a relevant path?";

  value_type zero() const { return {}; }
  value_type one() const { return {token_set{}}; }
  value_type plus(const value_type& a, const value_type& b) const {
    if (a.empty()) return b;
    if (b.empty()) return a;
    value_type r;
    r.reserve(a.size() + b.size());
    r.insert(r.end(), a.begin(), a.end());
    r.insert(r.end(), b.begin(), b.end());
    detail::minimise_witnesses(r);
    return r;
  }
  value_type times(const value_type& a, const value_type& b) const {
    value_type r = detail::pairwise_unions(a, b);
    detail::minimise_witnesses(r);
    return r;
  }
  value_type lift(token_index t, double) const { return {token_set{t}}; }
  std::string name() const { return std::string(registry_name); }
  /// `x ∨ y∧z`; `false` for 0, `true` for 1.
  std::string format(const value_type& a, const token_namer& names = {}) const {
    if (a.empty()) return "false";
    std::string out;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (i > 0) out += " ∨ ";
      if (a[i].empty()) out += "true";
      for (std::size_t j = 0; j < a[i].size(); ++j) {
        if (j > 0) out += "∧";
        out += token_name(a[i][j], names);
      }
    }
    return out;
  }
};

}  // namespace provnn
