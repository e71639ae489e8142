// Exact-float semiring: relevance with 100 significant decimal digits.
//
//   carrier   boost::multiprecision::cpp_bin_float_100 (binary floating point with at least
//             100 decimal digits of precision; finite values only)
//   ⊕, ⊗      +, ×
//   0, 1      0, 1
//   properties commutative, approximate (the laws hold up to a rounding of ~10⁻¹⁰⁰)
//   lifting   the token's real value, converted exactly (a double fits in the mantissa);
//             ±∞ and NaN are refused (NaN would break equality)
//   answers   "what is the relevance when rounding is negligible?" — the practical
//             alternative to exact when denominators would grow too large.
#pragma once

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/cpp_int.hpp>
#include <cmath>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "common/error.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

struct exact_float_semiring {
  using value_type = boost::multiprecision::cpp_bin_float_100;
  static constexpr std::uint32_t properties = commutative | approximate;
  static constexpr std::string_view registry_name = "exact-float";
  static constexpr std::string_view question = "what is the relevance with 100 significant digits?";

  value_type zero() const { return 0; }
  value_type one() const { return 1; }
  value_type plus(const value_type& a, const value_type& b) const { return a + b; }
  value_type times(const value_type& a, const value_type& b) const { return a * b; }
  /// Throws unsupported_error when v is not finite.
  value_type lift(token_index t, double v) const { return convert(v, t); }
  value_type from_real(double d) const { return convert(d, std::nullopt); }
  value_type from_natural(const boost::multiprecision::cpp_int& n) const { return value_type(n); }
  value_type sum(std::span<const value_type> xs) const {
    value_type acc = 0;
    for (const auto& x : xs) acc += x;
    return acc;
  }
  std::string name() const { return std::string(registry_name); }
  /// 40 significant digits (deterministic; the carrier keeps 100).
  std::string format(const value_type& a, const token_namer& = {}) const { return a.str(40); }

 private:
  static value_type convert(double v, std::optional<token_index> t) {
    if (!std::isfinite(v))
      throw unsupported_error(fmt::format(
          "exact-float semiring: {} is {}, which is not a finite number; override its value or use "
          "the real semiring",
          t ? fmt::format("token t{}", *t) : std::string("a real coefficient"), v));
    return value_type(v);
  }
};

}  // namespace provnn
