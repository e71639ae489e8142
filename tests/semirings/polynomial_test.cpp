// Hand-computed examples for monomials, polynomials, N[X] and top-k.
#include "semirings/polynomial.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "semirings/nx.hpp"
#include "semirings/topk.hpp"

using namespace provnn;

namespace {
std::string xyz(token_index t) { return std::string(1, static_cast<char>('x' + t)); }
polynomial var(token_index t) { return polynomial::variable(t); }
polynomial cst(int c) { return polynomial::constant(c); }
}  // namespace

TEST_CASE("monomial: product merges factors and adds exponents") {
  const monomial a = monomial::from_factors({{2, 1}, {0, 2}});
  const monomial b = monomial::from_factors({{0, 1}, {1, 3}, {2, 0}});
  const monomial p = a * b;
  REQUIRE(p.size() == 3);
  CHECK(p.exponent_of(0) == 3);
  CHECK(p.exponent_of(1) == 3);
  CHECK(p.exponent_of(2) == 1);
  CHECK(p.exponent_of(7) == 0);
  CHECK(p.degree() == 7);
  CHECK(format_monomial(p, xyz) == "x^3·y^3·z");
  CHECK(format_monomial(monomial{}, xyz) == "1");
  CHECK(monomial::set_union(a, b) == monomial::from_factors({{0, 1}, {1, 1}, {2, 1}}));
  CHECK(monomial::from_factors({{1, 1}, {1, 1}}) == monomial::from_factors({{1, 2}}));
}

TEST_CASE("monomial: canonical order is lex with earlier tokens first, and a monomial order") {
  const monomial x2 = monomial::from_factors({{0, 2}});
  const monomial xy = monomial::from_factors({{0, 1}, {1, 1}});
  const monomial x = monomial(0);
  const monomial y2 = monomial::from_factors({{1, 2}});
  const monomial y = monomial(1);
  const monomial one{};
  std::vector<monomial> v{one, y, xy, y2, x, x2};
  std::sort(v.begin(), v.end());
  CHECK(v == std::vector<monomial>{x2, xy, x, y2, y, one});
  // Monomial order: a < b ⇒ a·m < b·m.
  const monomial m = monomial::from_factors({{1, 1}, {5, 2}});
  for (std::size_t i = 0; i + 1 < v.size(); ++i) CHECK(v[i] * m < v[i + 1] * m);
}

TEST_CASE("N[X]: (x+y)(x+2y) = x^2 + 3xy + 2y^2") {
  nx_semiring s;
  const polynomial x = s.lift(0, 0.5), y = s.lift(1, 0.0);  // lift ignores the real value
  const polynomial p = s.times(s.plus(x, y), s.plus(x, s.plus(y, y)));
  CHECK(p.size() == 3);
  CHECK(p.coefficient_of(monomial::from_factors({{0, 2}})) == 1);
  CHECK(p.coefficient_of(monomial::from_factors({{0, 1}, {1, 1}})) == 3);
  CHECK(p.coefficient_of(monomial::from_factors({{1, 2}})) == 2);
  CHECK(p.coefficient_of(monomial(0)) == 0);
  CHECK(s.format(p, xyz) == "x^2 + 3·x·y + 2·y^2");
  CHECK(s.format(p) == "t0^2 + 3·t0·t1 + 2·t1^2");
  // Equal polynomials built differently compare equal.
  const polynomial q = s.plus(s.plus(s.times(y, s.plus(y, y)), s.times(x, x)), s.times(cst(3), s.times(y, x)));
  CHECK(p == q);
  CHECK(s.format(s.zero()) == "0");
  CHECK(s.format(s.one()) == "1");
  CHECK(s.format(s.plus(s.times(cst(2), x), cst(5)), xyz) == "2·x + 5");
}

TEST_CASE("N[X]: n-ary sum equals the fold, huge coefficients do not wrap") {
  nx_semiring s;
  std::vector<polynomial> ps{var(2), s.times(var(0), var(1)), s.zero(), var(2), cst(4), s.times(var(1), var(0))};
  polynomial fold = s.zero();
  for (const auto& p : ps) fold = s.plus(fold, p);
  CHECK(s.sum(ps) == fold);
  CHECK(s.format(fold, xyz) == "2·x·y + 2·z + 4");
  polynomial big = s.plus(var(0), s.one());
  for (int i = 0; i < 7; ++i) big = s.times(big, big);  // (x+1)^128
  CHECK(big.size() == 129);
  // C(128, 64) > 2^124 (python3: math.comb(128, 64)).
  CHECK(big.coefficient_of(monomial::from_factors({{0, 64}})).str() == "23951146041928082866135587776380551750");
}

TEST_CASE("N[X]: a zero coefficient never survives normalisation") {
  std::vector<term> ts{{monomial(1), natural(3)}, {monomial(0), natural(0)}, {monomial(1), natural(-3)}, {monomial(2), natural(1)}};
  const polynomial p = polynomial::from_terms(ts);
  CHECK(p == var(2));
}

TEST_CASE("top-k: keeps the k best by |score| with their monomials and signs") {
  topk_semiring s(3);
  CHECK(s.name() == "topk:3");
  // (2x + -3y + 0.5z) ⊗ (1u + -4v): products 2xu, -8xv, -3yu, 12yv, 0.5zu, -2zv.
  const auto a = s.plus(s.plus(s.lift(0, 2.0), s.lift(1, -3.0)), s.lift(2, 0.5));
  REQUIRE(a.entries.size() == 3);
  CHECK(a.entries[0].score == -3.0);
  const auto b = s.plus(s.lift(3, 1.0), s.lift(4, -4.0));
  const auto p = s.times(a, b);
  auto namer = [](token_index t) { return std::string(1, "xyzuv"[t]); };
  CHECK(s.format(p, namer) == "[12·y·v, -8·x·v, -3·y·u]");
  // Ties on |score|: 2xu and -2zv and 2·(x·u) again — broken by the monomial order.
  topk_semiring s2(2);
  const auto t = s2.plus(s2.plus(s2.lift(2, -2.0), s2.lift(0, 2.0)), s2.lift(1, 2.0));
  CHECK(s2.format(t, namer) == "[2·x, 2·y]");
  CHECK(s.format(s.zero()) == "[]");
  CHECK(s.format(s.one()) == "[1]");
  CHECK(s.lift(5, 0.0) == s.zero());
  CHECK(s.times(a, s.zero()) == s.zero());
  CHECK(s.times(a, s.one()) == a);
  topk_fixed_semiring<2> f;
  CHECK(f.k() == 2);
  CHECK(f.name() == "topk:2");
  CHECK_THROWS_AS(topk_semiring(0), provnn::error);
}

TEST_CASE("N[X]: the heap-merged product and k-way sum equal sort-and-combine") {
  std::mt19937_64 g(7);
  const auto random_poly = [&](int terms) {
    std::vector<term> ts;
    for (int i = 0; i < terms; ++i) {
      std::vector<factor> fs;
      const int n = static_cast<int>(g() % 4);
      for (int j = 0; j < n; ++j) fs.push_back({static_cast<token_index>(g() % 6), static_cast<std::uint32_t>(1 + g() % 3)});
      ts.push_back({monomial::from_factors(fs), natural(1 + g() % 9)});
    }
    return polynomial::from_terms(std::move(ts));
  };
  for (int round = 0; round < 50; ++round) {
    const polynomial p = random_poly(1 + round % 17), q = random_poly(1 + round % 11), r = random_poly(round % 5);
    // Reference product: all pairs, then one sort and combine (from_terms).
    std::vector<term> pairs;
    for (const auto& a : p)
      for (const auto& b : q) pairs.push_back({a.mono * b.mono, a.coefficient * b.coefficient});
    CHECK(p * q == polynomial::from_terms(pairs));
    // Reference sum: concatenate, then one sort and combine.
    std::vector<term> all;
    for (const polynomial* x : {&p, &q, &r, &p}) all.insert(all.end(), x->begin(), x->end());
    const std::vector<polynomial> ps{p, q, polynomial{}, r, p};
    CHECK(polynomial::sum(ps) == polynomial::from_terms(all));
  }
}
