// Max-plus (arctic) semiring: the most relevant path on a log scale.
//
//   carrier   ℝ ∪ {−∞} as double (std::numeric_limits<double>::infinity())
//   ⊕, ⊗      max, +
//   0, 1      −∞, 0
//   properties commutative, ⊕-idempotent, path (max selects), approximate (+ rounds).
//             Not absorptive: max(0, a) ≠ 0 for a > 0.
//   lifting   log|v|; v = 0 gives −∞ (the token is deleted)
//   answers   "what is the log-magnitude of the single most relevant path?" — Viterbi without
//             underflow on deep networks.
//
// Precondition on lift: v finite. ⊗ returns −∞ as soon as one side is −∞.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

struct max_plus_semiring {
  using value_type = double;
  static constexpr std::uint32_t properties = commutative | plus_idempotent | path | approximate;
  static constexpr std::string_view registry_name = "max-plus";
  static constexpr std::string_view question = "how relevant is the single most relevant path, on a log scale?";
  static constexpr double minus_infinity = -std::numeric_limits<double>::infinity();

  value_type zero() const noexcept { return minus_infinity; }
  value_type one() const noexcept { return 0.0; }
  value_type plus(value_type a, value_type b) const noexcept { return std::max(a, b); }
  value_type times(value_type a, value_type b) const noexcept {
    return (a == minus_infinity || b == minus_infinity) ? minus_infinity : a + b;
  }
  value_type lift(token_index, double v) const noexcept { return from_real(v); }
  /// log|d|, −∞ for 0 (and for NaN).
  value_type from_real(double d) const noexcept {
    return (d == 0.0 || std::isnan(d)) ? minus_infinity : std::log(std::fabs(d));
  }
  /// ⊕_i ψ[i] ⊗ σ[i] over two arrays (has_run_sum), four lanes in each of four partial maxima.
  /// The terms are plain sums: −∞ + x is −∞, which max ignores, as it ignores the NaN of
  /// −∞ + ∞; so a term equals times() wherever it can change the maximum.
  value_type run_sum(const double* psi, const double* sigma, std::uint32_t n) const noexcept {
    struct sum {
      static void apply(detail::f64x4& t, const detail::f64x4& p, const detail::f64x4& q) noexcept { t = p + q; }
    };
    const std::uint32_t n16 = n - n % 16;
    double r = detail::lanes_max<sum>(psi, sigma, n16, minus_infinity);
    for (std::uint32_t i = n16; i < n; ++i) r = plus(r, times(psi[i], sigma[i]));
    return r;
  }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const {
    if (a == minus_infinity) return "−∞";
    if (a == -minus_infinity) return "∞";
    return fmt::format("{}", a);
  }
};

}  // namespace provnn
