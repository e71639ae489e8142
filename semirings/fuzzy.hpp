// Fuzzy (Gödel) semiring: the strongest bottleneck path.
//
//   carrier   [0, 1] as double
//   ⊕, ⊗      max, min
//   0, 1      0, 1
//   properties commutative, ⊕- and ⊗-idempotent, absorptive, path; exact (max and min do
//             not round)
//   lifting   min(|v|, 1) — a coefficient as a degree of relevance, clipped to 1
//   answers   "how strong is the weakest link of the best path?" — a path is only as
//             relevant as its least relevant edge.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

struct fuzzy_semiring {
  using value_type = double;
  static constexpr std::uint32_t properties =
      commutative | plus_idempotent | times_idempotent | absorptive | path;
  static constexpr std::string_view registry_name = "fuzzy";
  static constexpr std::string_view question = "how strong is the weakest link of the best path?";

  value_type zero() const noexcept { return 0.0; }
  value_type one() const noexcept { return 1.0; }
  value_type plus(value_type a, value_type b) const noexcept { return std::max(a, b); }
  value_type times(value_type a, value_type b) const noexcept { return std::min(a, b); }
  value_type lift(token_index, double v) const noexcept { return from_real(v); }
  /// min(|d|, 1); NaN maps to 0.
  value_type from_real(double d) const noexcept { return std::isnan(d) ? 0.0 : std::min(std::fabs(d), 1.0); }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const { return fmt::format("{}", a); }
};

}  // namespace provnn
