// Tropical (min, +) semiring: the cheapest path under a cost valuation.
//
//   carrier   ℝ ∪ {+∞} as double (std::numeric_limits<double>::infinity())
//   ⊕, ⊗      min, +
//   0, 1      +∞, 0
//   properties commutative, ⊕-idempotent, path (min selects), approximate (+ rounds).
//             Not absorptive: costs may be negative, so min(0, a) ≠ 0 for a < 0.
//   lifting   the cost −log|v|: a large |v| is cheap; v = 0 costs +∞ (the token is deleted)
//   answers   "which single path is cheapest, i.e. has the largest product of |coefficients|,
//             and what is its cost?" — the additive view of Viterbi, or any user cost.
//
// Precondition on lift: v finite (a value ±∞ would give −∞, outside the carrier). ⊗ returns
// +∞ as soon as one side is +∞, so 0 annihilates even if a −∞ slipped in.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

struct tropical_semiring {
  using value_type = double;
  static constexpr std::uint32_t properties = commutative | plus_idempotent | path | approximate;
  static constexpr std::string_view registry_name = "tropical";
  static constexpr std::string_view question = "which path is cheapest (cost -log|coefficient|), and at what cost?";
  static constexpr double infinity = std::numeric_limits<double>::infinity();

  value_type zero() const noexcept { return infinity; }
  value_type one() const noexcept { return 0.0; }
  value_type plus(value_type a, value_type b) const noexcept { return std::min(a, b); }
  value_type times(value_type a, value_type b) const noexcept {
    return (a == infinity || b == infinity) ? infinity : a + b;
  }
  value_type lift(token_index, double v) const noexcept { return from_real(v); }
  /// A real coefficient as a cost: −log|d|, +∞ for 0 (and for NaN).
  value_type from_real(double d) const noexcept {
    return (d == 0.0 || std::isnan(d)) ? infinity : -std::log(std::fabs(d));
  }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const {
    if (a == infinity) return "∞";
    if (a == -infinity) return "−∞";
    return fmt::format("{}", a);
  }
};

}  // namespace provnn
