// Trio[X]: polynomials with natural coefficients and no exponents — path sets with
// multiplicity (Trio's lineage).
//
//   carrier   polynomials of semirings/polynomial.hpp whose exponents are all 1 (monomials
//             are sets of tokens), cpp_int coefficients
//   ⊕         polynomial sum
//   ⊗         polynomial product with x·x = x
//   0, 1      the zero polynomial, 1
//   properties commutative; exact. Not idempotent: x + x = 2·x.
//   lifting   token t ↦ t, whatever its real value
//   answers   "which sets of tokens form relevant paths, and how many paths use each set?"
#pragma once

#include <string>
#include <string_view>

#include "semirings/polynomial.hpp"

namespace provnn {

struct trio_semiring {
  using value_type = polynomial;
  static constexpr std::uint32_t properties = commutative;
  static constexpr std::string_view registry_name = "trio";
  static constexpr std::string_view question = "which sets of tokens form relevant paths, and how many paths each?";

  value_type zero() const { return {}; }
  value_type one() const { return polynomial::constant(1); }
  value_type plus(const value_type& a, const value_type& b) const { return a + b; }
  value_type times(const value_type& a, const value_type& b) const {
    return polynomial::multiply(a, b, monomial::set_union, false);
  }
  value_type lift(token_index t, double) const { return polynomial::variable(t); }
  value_type from_natural(const natural& n) const { return polynomial::constant(n); }
  value_type sum(std::span<const value_type> xs) const { return polynomial::sum(xs); }
  std::string name() const { return std::string(registry_name); }
  std::string format(const value_type& a, const token_namer& names = {}) const { return format_polynomial(a, names); }
};

}  // namespace provnn
