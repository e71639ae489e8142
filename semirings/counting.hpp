// Counting semiring: how many relevant paths?
//
//   carrier   ℕ as boost::multiprecision::cpp_int (arbitrary precision: never wraps — an
//             MLP 784-300-100-10 already has 2.35·10⁷ paths per pixel, deeper nets overflow
//             64 bits quickly)
//   ⊕, ⊗      +, ×
//   0, 1      0, 1
//   properties commutative
//   lifting   1 where the token's real value is non-zero, 0 where it is zero
//   answers   "how many paths with non-zero (or, under a threshold annotation, large enough)
//             coefficients connect this feature to the output?"
//
// Values are passed by const& and returned by value; cpp_int keeps small values inline, so
// counts below 2^64·a few limbs never allocate. The n-ary sum accumulates in place.
#pragma once

#include <boost/multiprecision/cpp_int.hpp>
#include <span>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

struct counting_semiring {
  using value_type = boost::multiprecision::cpp_int;
  static constexpr std::uint32_t properties = commutative;
  static constexpr std::string_view registry_name = "counting";
  static constexpr std::string_view question = "how many relevant paths connect this feature to the output?";

  value_type zero() const { return 0; }
  value_type one() const { return 1; }
  value_type plus(const value_type& a, const value_type& b) const { return a + b; }
  value_type times(const value_type& a, const value_type& b) const { return a * b; }
  value_type lift(token_index, double v) const { return v != 0.0 ? 1 : 0; }
  /// A real coefficient counts once where it is non-zero (the threshold annotations of
  /// DESIGN §3 produce 0/1 values).
  value_type from_real(double d) const { return d != 0.0 ? 1 : 0; }
  value_type from_natural(const value_type& n) const { return n; }
  value_type sum(std::span<const value_type> xs) const {
    value_type acc = 0;
    for (const auto& x : xs) acc += x;
    return acc;
  }
  std::string name() const { return std::string(registry_name); }
  std::string format(const value_type& a, const token_namer& = {}) const { return a.str(); }
};

}  // namespace provnn
