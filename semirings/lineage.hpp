// Lineage semiring Lin[X]: which tokens take part at all.
//
//   carrier   finite sets of tokens, plus a distinguished 0 (⊥) that is not a set
//   ⊕         ∪ (0 is neutral)
//   ⊗         ∪ (0 annihilates)
//   0, 1      ⊥, ∅
//   properties commutative, ⊕- and ⊗-idempotent; exact. Not absorptive: 1 ⊕ {x} = {x}.
//   lifting   token t ↦ {t}, whatever its real value (like N[X], the lifting is symbolic;
//             deleting a token is done by valuing it 0)
//   answers   "which tokens (features, weights, units) occur on some path to the output?"
#pragma once

#include <string>
#include <string_view>

#include "semirings/token_set.hpp"

namespace provnn {

/// A lineage value: ⊥ (is_zero) or a set of tokens. ⊥ always has an empty token list, so
/// the defaulted == is equality of values.
struct lineage_value {
  bool is_zero = true;
  token_set tokens;
  friend bool operator==(const lineage_value&, const lineage_value&) = default;
};

struct lineage_semiring {
  using value_type = lineage_value;
  static constexpr std::uint32_t properties = commutative | plus_idempotent | times_idempotent;
  static constexpr std::string_view registry_name = "lineage";
  static constexpr std::string_view question = "which tokens take part in some relevant path?";

  value_type zero() const { return {}; }
  value_type one() const { return {false, {}}; }
  value_type plus(const value_type& a, const value_type& b) const {
    if (a.is_zero) return b;
    if (b.is_zero) return a;
    return {false, set_union(a.tokens, b.tokens)};
  }
  value_type times(const value_type& a, const value_type& b) const {
    if (a.is_zero || b.is_zero) return {};
    return {false, set_union(a.tokens, b.tokens)};
  }
  value_type lift(token_index t, double) const { return {false, {t}}; }
  std::string name() const { return std::string(registry_name); }
  /// `{x, W1[0,1]}`; `∅` is `{}`; ⊥ is `⊥`.
  std::string format(const value_type& a, const token_namer& names = {}) const {
    return a.is_zero ? std::string("⊥") : format_token_set(a.tokens, names);
  }
};

}  // namespace provnn
