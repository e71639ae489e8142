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

  /// Σ_i ψ[i]·σ[i] in eight partial sums, as four pairs of SSE2 lanes (has_run_sum): a sum of
  /// products is bound by the latency of its additions, and four scalar chains take about one
  /// edge per cycle, these two. Partial sum j takes the i ≡ j (mod 8), and they are added
  /// pairwise at the end. Not compensated, like every fused real sum (the dense LRP's class).
  value_type run_sum(const double* psi, const double* sigma, std::uint32_t n) const noexcept {
    using detail::load_f64x2;
    detail::f64x2 s0{0, 0}, s1{0, 0}, s2{0, 0}, s3{0, 0};
    std::uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
      s0 += load_f64x2(psi + i) * load_f64x2(sigma + i);
      s1 += load_f64x2(psi + i + 2) * load_f64x2(sigma + i + 2);
      s2 += load_f64x2(psi + i + 4) * load_f64x2(sigma + i + 4);
      s3 += load_f64x2(psi + i + 6) * load_f64x2(sigma + i + 6);
    }
    double tail = 0.0;
    for (; i < n; ++i) tail += psi[i] * sigma[i];
    const detail::f64x2 s = (s0 + s1) + (s2 + s3);
    return (s[0] + s[1]) + tail;
  }

  /// 17 significant digits (round-trips); infinities as ∞ and −∞ like the other semirings.
  std::string format(value_type a, const token_namer& = {}) const {
    if (std::isinf(a)) return a > 0 ? "∞" : "−∞";
    return fmt::format("{:.17g}", a);
  }
};

}  // namespace provnn
