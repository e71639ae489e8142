// Real semiring: the LRP relevance itself.
//
//   carrier   double (IEEE binary64)
//   ⊕, ⊗      +, ×
//   0, 1      0.0, 1.0
//   properties commutative, approximate (laws hold up to rounding)
//   lifting   a token's natural real value, unchanged
//   answers   "what is the relevance of this feature?" — evaluated with the natural
//             valuation it reproduces the numeric LRP heatmap.
//
// The n-ary sum is compensated (Neumaier's variant of Kahan summation), so the sum of a
// wide ⊕ gate does not depend on how many small terms cancel before the large ones.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <span>
#include <string>

#include "semirings/semiring.hpp"

namespace provnn {

struct real_semiring {
  using value_type = double;
  static constexpr std::uint32_t properties = commutative | approximate;
  static constexpr std::string_view registry_name = "real";
  static constexpr std::string_view question = "the LRP relevance itself";

  value_type zero() const noexcept { return 0.0; }
  value_type one() const noexcept { return 1.0; }
  value_type plus(value_type a, value_type b) const noexcept { return a + b; }
  value_type times(value_type a, value_type b) const noexcept { return a * b; }
  value_type lift(token_index, double v) const noexcept { return v; }
  value_type from_real(double d) const noexcept { return d; }
  std::string name() const { return std::string(registry_name); }

  /// Neumaier-compensated sum: error bound independent of the number of terms.
  value_type sum(std::span<const value_type> xs) const noexcept {
    double s = 0.0, c = 0.0;
    for (double x : xs) {
      const double t = s + x;
      c += (std::fabs(s) >= std::fabs(x)) ? (s - t) + x : (x - t) + s;
      s = t;
    }
    return s + c;
  }

  /// 17 significant digits (round-trips); infinities as ∞ and −∞ like the other semirings.
  std::string format(value_type a, const token_namer& = {}) const {
    if (std::isinf(a)) return a > 0 ? "∞" : "−∞";
    return fmt::format("{:.17g}", a);
  }
};

}  // namespace provnn
