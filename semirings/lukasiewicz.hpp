// Łukasiewicz semiring: graded relevance where every extra edge costs.
//
//   carrier   [0, 1] as double
//   ⊕, ⊗      max, max(0, a + b − 1)  (the Łukasiewicz t-norm)
//   0, 1      0, 1
//   properties commutative, ⊕-idempotent, absorptive, path, approximate (a + b − 1 rounds).
//             Not ⊗-idempotent: a ⊗ a = 2a − 1 < a for a < 1.
//   lifting   min(|v|, 1)
//   answers   "how relevant is the best path when each edge below full strength subtracts
//             its deficit?" — long paths of mediocre edges fall to 0, unlike fuzzy.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

struct lukasiewicz_semiring {
  using value_type = double;
  static constexpr std::uint32_t properties = commutative | plus_idempotent | absorptive | path | approximate;
  static constexpr std::string_view registry_name = "lukasiewicz";
  static constexpr std::string_view question =
      "how relevant is the best path when every edge below full strength subtracts its deficit?";

  value_type zero() const noexcept { return 0.0; }
  value_type one() const noexcept { return 1.0; }
  value_type plus(value_type a, value_type b) const noexcept { return std::max(a, b); }
  /// Computed as lo − (1 − hi) on the sorted pair: symmetric bit for bit, and a ⊗ 1 = a
  /// exactly (the naive (a + b) − 1 loses a tiny a to rounding).
  value_type times(value_type a, value_type b) const noexcept {
    const double lo = std::min(a, b), hi = std::max(a, b);
    return std::max(0.0, lo - (1.0 - hi));
  }
  value_type lift(token_index, double v) const noexcept { return from_real(v); }
  /// min(|d|, 1); NaN maps to 0.
  value_type from_real(double d) const noexcept { return std::isnan(d) ? 0.0 : std::min(std::fabs(d), 1.0); }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const { return fmt::format("{}", a); }
};

}  // namespace provnn
