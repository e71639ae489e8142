// Exact semiring: relevance without rounding.
//
//   carrier   ℚ as boost::multiprecision::cpp_rational (arbitrary-precision numerator and
//             denominator, always in lowest terms)
//   ⊕, ⊗      +, ×
//   0, 1      0, 1
//   properties commutative; exact (no `approximate` flag: the laws hold bit for bit)
//   lifting   the token's real value converted exactly: every finite double is a dyadic
//             rational m·2^e, so no information is lost; ±∞ and NaN are refused
//   answers   "what is the relevance without any rounding?" — exact conservation checks
//             (Σ R(x_i) + Σ R(b_k) equals the output relevance exactly for LRP-0, ε = 0,
//             given the real coefficients).
//
// Exact products of doubles grow large denominators quickly (a depth-d path has up to
// 2^(53·d)); that is the price of exactness. exact-float (semirings/exact_float.hpp) keeps
// 100 digits instead.
#pragma once

#include <fmt/format.h>

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/cpp_int.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

/// The rational equal to v, exactly. Throws unsupported_error for ±∞ and NaN; `what` names
/// the value in the message (e.g. "token t7").
inline boost::multiprecision::cpp_rational exact_rational(double v, std::string_view what = "a value") {
  using boost::multiprecision::cpp_int;
  using boost::multiprecision::cpp_rational;
  if (!std::isfinite(v))
    throw unsupported_error(fmt::format(
        "exact semiring: {} is {}, which no rational number represents; override its value or use "
        "the real or exact-float semiring",
        what, v));
  if (v == 0.0) return cpp_rational(0);
  int e = 0;
  const double m = std::frexp(v, &e);                             // v = m·2^e, 0.5 ≤ |m| < 1
  const auto mant = static_cast<std::int64_t>(std::ldexp(m, 53));  // exact: 53 significant bits
  e -= 53;
  const cpp_int num(mant);
  if (e >= 0) return cpp_rational(num << e);
  return cpp_rational(num, cpp_int(1) << -e);
}

struct exact_semiring {
  using value_type = boost::multiprecision::cpp_rational;
  static constexpr std::uint32_t properties = commutative;
  static constexpr std::string_view registry_name = "exact";
  static constexpr std::string_view question = "what is the relevance without any rounding (exact conservation)?";

  value_type zero() const { return 0; }
  value_type one() const { return 1; }
  value_type plus(const value_type& a, const value_type& b) const { return a + b; }
  value_type times(const value_type& a, const value_type& b) const { return a * b; }
  /// Throws unsupported_error when v is not finite.
  value_type lift(token_index t, double v) const {
    return std::isfinite(v) ? exact_rational(v) : exact_rational(v, fmt::format("token t{}", t));
  }
  value_type from_real(double d) const { return exact_rational(d, "a real coefficient"); }
  value_type from_natural(const boost::multiprecision::cpp_int& n) const { return value_type(n); }
  value_type sum(std::span<const value_type> xs) const {
    value_type acc = 0;
    for (const auto& x : xs) acc += x;
    return acc;
  }
  std::string name() const { return std::string(registry_name); }

  /// `3`, `-7/8`; a fraction longer than 40 characters is shown as its 20-digit decimal
  /// rounding prefixed by `≈` (readable; the value itself stays exact).
  std::string format(const value_type& a, const token_namer& = {}) const {
    using boost::multiprecision::cpp_bin_float_100;
    const auto num = boost::multiprecision::numerator(a);
    const auto den = boost::multiprecision::denominator(a);
    if (den == 1) return num.str();
    std::string exact = num.str() + "/" + den.str();
    if (exact.size() <= 40) return exact;
    cpp_bin_float_100 f(num);
    f /= cpp_bin_float_100(den);
    return "≈" + f.str(20);
  }
};

}  // namespace provnn
