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

  /// Σ_i ψ[i]·σ[i] in sixteen partial sums, as four vectors of four lanes (has_run_sum): a
  /// sum of products is bound by the latency of its additions, and four scalar chains take
  /// about one edge per cycle. Partial sum j takes the i ≡ j (mod 16); they are added
  /// pairwise at the end, in the same order on every build. Not compensated, like every
  /// fused real sum (the dense LRP's class).
  value_type run_sum(const double* psi, const double* sigma, std::uint32_t n) const noexcept {
    detail::f64x4 s[4] = {}, p, q;
    std::uint32_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (std::uint32_t u = 0; u < 4; ++u) {
        detail::load(p, psi + i + 4 * u);
        detail::load(q, sigma + i + 4 * u);
        s[u] += p * q;
      }
    double tail = 0.0;
    for (; i < n; ++i) tail += psi[i] * sigma[i];
    s[0] = (s[0] + s[1]) + (s[2] + s[3]);
    return ((s[0][0] + s[0][1]) + (s[0][2] + s[0][3])) + tail;
  }

  /// 17 significant digits (round-trips); infinities as ∞ and −∞ like the other semirings.
  std::string format(value_type a, const token_namer& = {}) const {
    if (std::isinf(a)) return a > 0 ? "∞" : "−∞";
    return fmt::format("{:.17g}", a);
  }
};

}  // namespace provnn
