// N[X]: provenance polynomials, the universal commutative semiring.
//
//   carrier   polynomials over the circuit's tokens with natural-number coefficients
//             (semirings/polynomial.hpp: cpp_int coefficients, canonical term order)
//   ⊕, ⊗      polynomial sum and product
//   0, 1      the zero polynomial, the constant 1
//   properties commutative (exact: no rounding, no idempotence)
//   lifting   the universal valuation: token t ↦ the polynomial t, whatever its real value
//             (a zero-valued token is still a variable; deleting it is a homomorphism's job)
//   answers   "everything": one monomial per path with its multiplicity; every other
//             semiring's answer is the image of this one under a homomorphism
//             (semirings/homomorphism.hpp).
//
// Expansion is exponential in depth: circuits/ bounds it with a monomial limit.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "semirings/polynomial.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

struct nx_semiring {
  using value_type = polynomial;
  static constexpr std::uint32_t properties = commutative;
  static constexpr std::string_view registry_name = "nx";
  static constexpr std::string_view question =
      "everything: the provenance polynomial, one monomial per path with its multiplicity";

  value_type zero() const { return {}; }
  value_type one() const { return polynomial::constant(1); }
  value_type plus(const value_type& a, const value_type& b) const { return a + b; }
  value_type times(const value_type& a, const value_type& b) const { return a * b; }
  value_type lift(token_index t, double) const { return polynomial::variable(t); }
  /// The natural-number embedding n ↦ n·1 (used by homomorphisms).
  value_type from_natural(const natural& n) const { return polynomial::constant(n); }
  /// One sort of all terms rather than a chain of merges.
  value_type sum(std::span<const value_type> xs) const { return polynomial::sum(xs); }
  std::string name() const { return std::string(registry_name); }
  std::string format(const value_type& a, const token_namer& names = {}) const {
    return format_polynomial(a, names);
  }
};

}  // namespace provnn
