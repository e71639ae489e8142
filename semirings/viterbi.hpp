// Viterbi semiring: the magnitude of the single most relevant path.
//
//   carrier   [0, ∞) as double
//   ⊕, ⊗      max, ×
//   0, 1      0, 1
//   properties commutative, ⊕-idempotent, path (max selects), approximate (× rounds).
//             Not absorptive: max(1, a) ≠ 1 for a > 1.
//   lifting   |v| (0 deletes the token)
//   answers   "how large is the product of |coefficients| along the best path?" — with the
//             max-normalised edge annotation of DESIGN §3 it is Groudiev's Viterbi K-LRP.
//
// Deep products may underflow to 0; max-plus is the log-scale alternative.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

struct viterbi_semiring {
  using value_type = double;
  static constexpr std::uint32_t properties = commutative | plus_idempotent | path | approximate;
  static constexpr std::string_view registry_name = "viterbi";
  static constexpr std::string_view question = "how large is the product of |coefficients| along the most relevant path?";

  value_type zero() const noexcept { return 0.0; }
  value_type one() const noexcept { return 1.0; }
  value_type plus(value_type a, value_type b) const noexcept { return std::max(a, b); }
  value_type times(value_type a, value_type b) const noexcept { return a * b; }
  value_type lift(token_index, double v) const noexcept { return from_real(v); }
  /// |d|; NaN maps to 0.
  value_type from_real(double d) const noexcept { return std::isnan(d) ? 0.0 : std::fabs(d); }
  /// ⊕_i ψ[i] ⊗ σ[i] over two arrays (has_run_sum), four lanes in each of four partial maxima.
  /// A term that is NaN (0 · ∞) is skipped, as std::max(acc, NaN) skips it in the fold.
  value_type run_sum(const double* psi, const double* sigma, std::uint32_t n) const noexcept {
    struct product {
      static void apply(detail::f64x4& t, const detail::f64x4& p, const detail::f64x4& q) noexcept { t = p * q; }
    };
    const std::uint32_t n16 = n - n % 16;
    double r = detail::lanes_max<product>(psi, sigma, n16, 0.0);
    for (std::uint32_t i = n16; i < n; ++i) r = plus(r, psi[i] * sigma[i]);
    return r;
  }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const {
    return std::isinf(a) ? std::string("∞") : fmt::format("{}", a);
  }
};

}  // namespace provnn
