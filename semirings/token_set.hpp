// Sets of tokens (sorted, duplicate-free vectors of token indices) and the few set
// operations lineage, Why[X] and PosBool[X] are built from.
#pragma once

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "semirings/polynomial.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

/// A set of tokens: strictly increasing token indices.
using token_set = std::vector<token_index>;

/// A ∪ B, O(|A| + |B|).
inline token_set set_union(const token_set& a, const token_set& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  token_set r;
  r.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(r));
  return r;
}

/// A ⊆ B, O(|A| + |B|).
inline bool is_subset(const token_set& a, const token_set& b) noexcept {
  return std::includes(b.begin(), b.end(), a.begin(), a.end());
}

/// The order sets of sets are kept in: smaller sets first, then lexicographic — so a
/// rendering lists the short witnesses first.
inline bool set_order(const token_set& a, const token_set& b) noexcept {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

/// `{x, y}` with token names; `{}` for the empty set.
inline std::string format_token_set(const token_set& s, const token_namer& names) {
  std::string out = "{";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i > 0) out += ", ";
    out += token_name(s[i], names);
  }
  return out + "}";
}

}  // namespace provnn
