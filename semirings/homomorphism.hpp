// The universal property of N[X] as a function.
//
// For every commutative semiring K and every valuation ν: X → K there is exactly one
// semiring homomorphism h_ν: N[X] → K extending ν:
//
//     h_ν( Σ c_m · Π x^e ) = ⊕_m  ι(c_m) ⊗ ⊗_x ν(x)^e
//
// where ι(n) = 1 ⊕ … ⊕ 1 (n times) embeds the natural numbers. This is why evaluating a
// circuit in N[X] and mapping the polynomial through h_ν gives the same answer as evaluating
// the circuit in K directly under ν (the universality test of circuits/).
//
// The *standard* valuation of each semiring — the lifting of the natural real valuation —
// is S::lift (semirings/semiring.hpp); lift_valuation() packages it as a ν.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "semirings/polynomial.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

/// Semirings with a direct natural-number embedding (counting, exact, N[X], …).
template <class S>
concept natural_embeddable = semiring<S> && requires(const S& s, const natural& n) {
  { s.from_natural(n) } -> std::same_as<typename S::value_type>;
};

/// ι(n) = 1 ⊕ … ⊕ 1 (n times) in S. Uses S::from_natural when present; otherwise ⊕-idempotent
/// semirings give 0 or 1 and the rest double-and-add over the bits of n, so a cpp_int of
/// b bits costs O(b) ⊕. Precondition: n ≥ 0.
template <semiring S>
typename S::value_type embed_natural(const S& s, const natural& n) {
  if (n == 0) return s.zero();
  if (n == 1) return s.one();
  if constexpr (natural_embeddable<S>) {
    return s.from_natural(n);
  } else if constexpr (has_property<S>(plus_idempotent)) {
    return s.one();
  } else {
    const std::size_t top = boost::multiprecision::msb(n);
    typename S::value_type acc = s.one();  // the top bit
    for (std::size_t i = top; i-- > 0;) {
      acc = s.plus(acc, acc);
      if (boost::multiprecision::bit_test(n, static_cast<unsigned>(i))) acc = s.plus(acc, s.one());
    }
    return acc;
  }
}

/// a^e = a ⊗ … ⊗ a (e times; a^0 = 1), by squaring: O(log e) ⊗, O(1) when ⊗ is idempotent.
template <semiring S>
typename S::value_type power(const S& s, const typename S::value_type& a, std::uint64_t e) {
  if (e == 0) return s.one();
  if constexpr (has_property<S>(times_idempotent)) {
    return a;
  } else {
    typename S::value_type result = s.one();
    typename S::value_type base = a;
    bool first = true;
    while (true) {
      if (e & 1u) {
        result = first ? base : s.times(result, base);
        first = false;
      }
      e >>= 1;
      if (e == 0) break;
      base = s.times(base, base);
    }
    return result;
  }
}

/// h_ν(p): the image of the polynomial p under the homomorphism extending the valuation
/// `nu` (callable token_index → S::value_type, called once per distinct token occurrence).
/// O(Σ over terms of (bits of c + Σ log e)) semiring operations; the final ⊕ uses S's n-ary
/// sum where it has one.
template <semiring S, class Valuation>
  requires std::convertible_to<std::invoke_result_t<Valuation&, token_index>, typename S::value_type>
typename S::value_type evaluate_polynomial(const S& s, const polynomial& p, Valuation&& nu) {
  const auto term_value = [&](const term& t) {
    typename S::value_type v = embed_natural(s, t.coefficient);
    for (const auto& f : t.mono) v = s.times(v, power(s, static_cast<typename S::value_type>(nu(f.token)), f.exponent));
    return v;
  };
  if constexpr (has_nary_sum<S>) {
    std::vector<typename S::value_type> terms;
    terms.reserve(p.size());
    for (const auto& t : p) terms.push_back(term_value(t));
    return s.sum(std::span<const typename S::value_type>(terms));
  } else {
    typename S::value_type acc = s.zero();
    for (const auto& t : p) acc = s.plus(acc, term_value(t));
    return acc;
  }
}

/// The standard valuation of S: token t ↦ s.lift(t, real_value(t)), for a callable
/// real_value: token_index → double (the natural real valuation ν_ℝ).
template <semiring S, class RealValuation>
auto lift_valuation(const S& s, RealValuation real_value) {
  return [&s, real_value = std::move(real_value)](token_index t) { return s.lift(t, real_value(t)); };
}

}  // namespace provnn
