// B[X]: polynomials with Boolean coefficients and no exponents — path sets without
// multiplicity.
//
//   carrier   finite sets of monomials, each monomial a set of tokens (a polynomial of
//             semirings/polynomial.hpp whose coefficients and exponents are all 1)
//   ⊕         sum with 1 + 1 = 1
//   ⊗         product with x·x = x and 1 + 1 = 1
//   0, 1      the zero polynomial, 1
//   properties commutative, ⊕-idempotent; exact. Not ⊗-idempotent ((x+y)² = x + x·y + y),
//             not absorptive (1 + x stays; that is PosBool[X]).
//   lifting   token t ↦ t, whatever its real value
//   answers   "which sets of tokens form a relevant path?" (as Why[X], written as a
//             polynomial)
#pragma once

#include <string>
#include <string_view>

#include "semirings/polynomial.hpp"

namespace provnn {

struct bx_semiring {
  using value_type = polynomial;
  static constexpr std::uint32_t properties = commutative | plus_idempotent;
  static constexpr std::string_view registry_name = "bx";
  static constexpr std::string_view question = "which sets of tokens form a relevant path (without multiplicity)?";

  value_type zero() const { return {}; }
  value_type one() const { return polynomial::constant(1); }
  value_type plus(const value_type& a, const value_type& b) const {
    polynomial r = a + b;
    r.clamp_coefficients();
    return r;
  }
  value_type times(const value_type& a, const value_type& b) const {
    // The set union is not a monomial order (x·(x) = x but y·(x) = x·y), so no shortcut.
    polynomial r = polynomial::multiply(a, b, monomial::set_union, false);
    r.clamp_coefficients();
    return r;
  }
  value_type lift(token_index t, double) const { return polynomial::variable(t); }
  value_type from_natural(const natural& n) const { return n == 0 ? zero() : one(); }
  std::string name() const { return std::string(registry_name); }
  std::string format(const value_type& a, const token_namer& names = {}) const { return format_polynomial(a, names); }
};

}  // namespace provnn
