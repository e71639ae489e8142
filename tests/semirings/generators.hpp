// Test support for the semiring suites: one random-value generator per semiring, a
// membership check (closure of the carrier's invariants) and an equality that tolerates
// rounding for `approximate` semirings.
//
// Generators favour values on which the operations are exact or nearly so (small dyadic
// numbers, small integer costs) plus the special values 0 and 1, and sometimes "wide"
// values (huge counts, long polynomials) — OpenFst's weight tester does the same.
#pragma once

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/cpp_int.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "semirings/all.hpp"

// Test names show the semiring (declared here, before any use, in every test file that
// instantiates a template test over the type list).
#include <doctest/doctest.h>
TYPE_TO_STRING(provnn::real_semiring);
TYPE_TO_STRING(provnn::exact_semiring);
TYPE_TO_STRING(provnn::exact_float_semiring);
TYPE_TO_STRING(provnn::boolean_semiring);
TYPE_TO_STRING(provnn::counting_semiring);
TYPE_TO_STRING(provnn::tropical_semiring);
TYPE_TO_STRING(provnn::max_plus_semiring);
TYPE_TO_STRING(provnn::viterbi_semiring);
TYPE_TO_STRING(provnn::fuzzy_semiring);
TYPE_TO_STRING(provnn::lukasiewicz_semiring);
TYPE_TO_STRING(provnn::security_semiring);
TYPE_TO_STRING(provnn::lineage_semiring);
TYPE_TO_STRING(provnn::why_semiring);
TYPE_TO_STRING(provnn::posbool_semiring);
TYPE_TO_STRING(provnn::bx_semiring);
TYPE_TO_STRING(provnn::trio_semiring);
TYPE_TO_STRING(provnn::nx_semiring);
TYPE_TO_STRING(provnn::topk_semiring);
TYPE_TO_STRING(provnn::dual_semiring);

namespace provnn::test {

using rng = std::mt19937_64;

inline int uniform_int(rng& g, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }
inline double uniform_real(rng& g, double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g); }
inline bool coin(rng& g, int one_in) { return uniform_int(g, 1, one_in) == 1; }

/// The structure object the tests use for S (parameterised semirings get small parameters).
template <class S>
S make_test_semiring() {
  return S{};
}
template <>
inline topk_semiring make_test_semiring<topk_semiring>() {
  return topk_semiring(3);
}
template <>
inline dual_semiring make_test_semiring<dual_semiring>() {
  return dual_semiring(1, "y");
}

/// Tokens in generated values come from {0, …, 4}.
inline constexpr token_index test_tokens = 5;

inline token_set random_token_set(rng& g, int max_size) {
  token_set s;
  const int n = uniform_int(g, 0, max_size);
  for (int i = 0; i < n; ++i) s.push_back(static_cast<token_index>(uniform_int(g, 0, test_tokens - 1)));
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

inline monomial random_monomial(rng& g, int max_exponent, int max_size = 3) {
  std::vector<factor> fs;
  const int n = uniform_int(g, 0, max_size);
  for (int i = 0; i < n; ++i)
    fs.push_back({static_cast<token_index>(uniform_int(g, 0, test_tokens - 1)),
                  static_cast<std::uint32_t>(uniform_int(g, 1, max_exponent))});
  monomial m = monomial::from_factors(fs);
  return max_exponent == 1 ? m.support() : m;
}

inline polynomial random_polynomial(rng& g, int max_terms, int max_exponent, int max_coefficient) {
  std::vector<term> ts;
  const int n = uniform_int(g, 0, max_terms);
  for (int i = 0; i < n; ++i) ts.push_back({random_monomial(g, max_exponent), natural(uniform_int(g, 1, max_coefficient))});
  return polynomial::from_terms(std::move(ts));
}

// ---- one generator per semiring: random_value(s, g) ------------------------------------

inline double random_value(const real_semiring&, rng& g) { return coin(g, 3) ? uniform_int(g, -8, 8) / 4.0 : uniform_real(g, -10, 10); }
inline boost::multiprecision::cpp_rational random_value(const exact_semiring&, rng& g) {
  // Built by division rather than the (num, den) constructor, which trips a GCC 12
  // -Wmaybe-uninitialized false positive inside boost/rational.hpp.
  boost::multiprecision::cpp_rational r(uniform_int(g, -20, 20));
  r /= uniform_int(g, 1, 12);
  if (coin(g, 8)) r += exact_rational(uniform_real(g, -1, 1));  // a dyadic with a 2^-53 denominator
  return r;
}
inline boost::multiprecision::cpp_bin_float_100 random_value(const exact_float_semiring&, rng& g) {
  boost::multiprecision::cpp_bin_float_100 r(uniform_int(g, -20, 20));
  return r / uniform_int(g, 1, 12);
}
inline bool random_value(const boolean_semiring&, rng& g) { return coin(g, 2); }
inline boost::multiprecision::cpp_int random_value(const counting_semiring&, rng& g) {
  boost::multiprecision::cpp_int n = uniform_int(g, 0, 50);
  if (coin(g, 4)) n += boost::multiprecision::cpp_int(1) << uniform_int(g, 60, 200);
  return n;
}
inline double random_value(const tropical_semiring& s, rng& g) {
  if (coin(g, 8)) return s.zero();
  return coin(g, 2) ? uniform_int(g, -10, 10) : uniform_real(g, -10, 10);
}
inline double random_value(const max_plus_semiring& s, rng& g) {
  if (coin(g, 8)) return s.zero();
  return coin(g, 2) ? uniform_int(g, -10, 10) : uniform_real(g, -10, 10);
}
inline double random_value(const viterbi_semiring&, rng& g) { return coin(g, 2) ? uniform_int(g, 0, 12) / 4.0 : uniform_real(g, 0, 4); }
inline double random_value(const fuzzy_semiring&, rng& g) { return coin(g, 2) ? uniform_int(g, 0, 8) / 8.0 : uniform_real(g, 0, 1); }
inline double random_value(const lukasiewicz_semiring&, rng& g) { return coin(g, 2) ? uniform_int(g, 0, 8) / 8.0 : uniform_real(g, 0, 1); }
inline security_level random_value(const security_semiring&, rng& g) { return static_cast<security_level>(uniform_int(g, 0, 4)); }
inline lineage_value random_value(const lineage_semiring&, rng& g) {
  if (coin(g, 6)) return {};
  return {false, random_token_set(g, 4)};
}
inline witness_sets random_value(const why_semiring&, rng& g) {
  witness_sets w;
  const int n = uniform_int(g, 0, 3);
  for (int i = 0; i < n; ++i) w.push_back(random_token_set(g, 3));
  detail::sort_unique_witnesses(w);
  return w;
}
inline witness_sets random_value(const posbool_semiring&, rng& g) {
  witness_sets w = random_value(why_semiring{}, g);
  detail::minimise_witnesses(w);
  return w;
}
inline polynomial random_value(const bx_semiring&, rng& g) {
  polynomial p = random_polynomial(g, 3, 1, 1);
  p.clamp_coefficients();
  return p;
}
inline polynomial random_value(const trio_semiring&, rng& g) { return random_polynomial(g, 3, 1, 4); }
inline polynomial random_value(const nx_semiring&, rng& g) {
  return coin(g, 10) ? random_polynomial(g, 12, 3, 1000) : random_polynomial(g, 3, 3, 5);
}
/// Positive scores only: with mixed signs, a cut between entries that tie on |score| and on
/// the monomial is not compatible with ⊗ by a negative number (see topk.hpp); hand-written
/// tests cover signs.
inline topk_list random_value(const topk_semiring& s, rng& g) {
  topk_list v;
  const int n = uniform_int(g, 0, 4);
  for (int i = 0; i < n; ++i) v.entries.push_back({uniform_int(g, 1, 6) / 2.0, random_monomial(g, 2, 2)});
  std::sort(v.entries.begin(), v.entries.end(), topk_better);
  if (v.entries.size() > s.k()) v.entries.resize(s.k());
  return v;
}
inline dual_number random_value(const dual_semiring&, rng& g) {
  return {uniform_int(g, -16, 16) / 4.0, uniform_int(g, -16, 16) / 4.0};
}

/// A random value of S: 0 and 1 one time in ten each, else the semiring's own generator.
template <class S>
typename S::value_type random_element(const S& s, rng& g) {
  const int r = uniform_int(g, 1, 10);
  if (r == 1) return s.zero();
  if (r == 2) return s.one();
  return random_value(s, g);
}

// ---- membership: the carrier's invariants -----------------------------------------------

inline bool canonical(const monomial& m) {
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i].exponent == 0) return false;
    if (i > 0 && !(m[i - 1].token < m[i].token)) return false;
  }
  return true;
}
inline bool canonical(const polynomial& p, bool exponent_free = false, bool boolean = false) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    const term& t = p.terms()[i];
    if (t.coefficient <= 0 || !canonical(t.mono)) return false;
    if (boolean && t.coefficient != 1) return false;
    if (exponent_free)
      for (const auto& f : t.mono)
        if (f.exponent != 1) return false;
    if (i > 0 && !(p.terms()[i - 1].mono < t.mono)) return false;
  }
  return true;
}
inline bool canonical(const token_set& s) { return std::adjacent_find(s.begin(), s.end(), std::greater_equal<>()) == s.end(); }

template <class S>
bool is_member(const S&, const typename S::value_type&) {
  return true;
}
inline bool is_member(const real_semiring&, double a) { return !std::isnan(a); }
inline bool is_member(const tropical_semiring&, double a) { return !std::isnan(a) && a != -std::numeric_limits<double>::infinity(); }
inline bool is_member(const max_plus_semiring&, double a) { return !std::isnan(a) && a != std::numeric_limits<double>::infinity(); }
inline bool is_member(const viterbi_semiring&, double a) { return a >= 0.0; }
inline bool is_member(const fuzzy_semiring&, double a) { return a >= 0.0 && a <= 1.0; }
inline bool is_member(const lukasiewicz_semiring&, double a) { return a >= 0.0 && a <= 1.0; }
inline bool is_member(const security_semiring&, security_level a) { return a <= security_level::unreachable; }
inline bool is_member(const counting_semiring&, const boost::multiprecision::cpp_int& a) { return a >= 0; }
inline bool is_member(const lineage_semiring&, const lineage_value& a) { return canonical(a.tokens) && !(a.is_zero && !a.tokens.empty()); }
inline bool is_member(const why_semiring&, const witness_sets& w) {
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (!canonical(w[i])) return false;
    if (i > 0 && !set_order(w[i - 1], w[i])) return false;
  }
  return true;
}
inline bool is_member(const posbool_semiring&, const witness_sets& w) {
  if (!is_member(why_semiring{}, w)) return false;
  for (std::size_t i = 0; i < w.size(); ++i)
    for (std::size_t j = 0; j < w.size(); ++j)
      if (i != j && is_subset(w[i], w[j])) return false;
  return true;
}
inline bool is_member(const bx_semiring&, const polynomial& p) { return canonical(p, true, true); }
inline bool is_member(const trio_semiring&, const polynomial& p) { return canonical(p, true); }
inline bool is_member(const nx_semiring&, const polynomial& p) { return canonical(p); }
inline bool is_member(const topk_semiring& s, const topk_list& a) {
  if (a.entries.size() > s.k()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    if (a.entries[i].score == 0.0 || !canonical(a.entries[i].mono)) return false;
    if (i > 0 && topk_better(a.entries[i], a.entries[i - 1])) return false;
  }
  return true;
}
inline bool is_member(const dual_semiring&, const dual_number& a) { return !std::isnan(a.value) && !std::isnan(a.derivative); }

// ---- equality up to rounding ------------------------------------------------------------

inline bool near(double a, double b, double tol = 1e-9) {
  if (a == b) return true;  // also equal infinities
  if (std::isinf(a) || std::isinf(b) || std::isnan(a) || std::isnan(b)) return false;
  return std::fabs(a - b) <= tol * std::max({1.0, std::fabs(a), std::fabs(b)});
}
inline bool near(const dual_number& a, const dual_number& b) { return near(a.value, b.value) && near(a.derivative, b.derivative); }
inline bool near(const boost::multiprecision::cpp_bin_float_100& a, const boost::multiprecision::cpp_bin_float_100& b) {
  using boost::multiprecision::abs;
  const boost::multiprecision::cpp_bin_float_100 scale = std::max({boost::multiprecision::cpp_bin_float_100(1), abs(a), abs(b)});
  return abs(a - b) <= scale * boost::multiprecision::cpp_bin_float_100("1e-90");
}
inline bool near(const topk_list& a, const topk_list& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i)
    if (!near(a.entries[i].score, b.entries[i].score) || !(a.entries[i].mono == b.entries[i].mono)) return false;
  return true;
}

/// a = b in S: exact for exact semirings, up to a relative 1e-9 (1e-90 for exact-float) for
/// approximate ones.
template <class S>
bool same(const S&, const typename S::value_type& a, const typename S::value_type& b) {
  if constexpr (has_property<S>(approximate))
    return near(a, b);
  else
    return a == b;
}

}  // namespace provnn::test
