// The symbolic semirings are quotients of N[X]: evaluating the same random expression in
// each of them must give the image of the N[X] value under the quotient map, computed here
// independently from the N[X] polynomial (squash exponents, clamp coefficients, take
// supports, minimise, union).
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "semirings/all.hpp"

using namespace provnn;

namespace {

// A random expression DAG: leaves are tokens 0..4 or the constants; inner nodes ⊕ or ⊗ of
// two earlier nodes. Node i only refers to nodes < i, so one forward loop evaluates it.
struct node {
  enum kind_t { token, zero, one, plus, times } kind;
  std::uint32_t a = 0, b = 0;
};

std::vector<node> random_expression(std::mt19937_64& g, int size) {
  std::vector<node> e;
  for (int i = 0; i < size; ++i) {
    const auto r = g() % 10;
    if (i < 3 || r < 2) {
      const auto c = g() % 12;
      e.push_back({c == 0 ? node::zero : c == 1 ? node::one : node::token, static_cast<std::uint32_t>(g() % 5), 0});
    } else {
      e.push_back({r < 6 ? node::plus : node::times, static_cast<std::uint32_t>(g() % i), static_cast<std::uint32_t>(g() % i)});
    }
  }
  return e;
}

template <class S>
typename S::value_type evaluate(const S& s, const std::vector<node>& e) {
  std::vector<typename S::value_type> v;
  for (const auto& n : e) {
    switch (n.kind) {
      case node::token: v.push_back(s.lift(n.a, 1.0)); break;
      case node::zero: v.push_back(s.zero()); break;
      case node::one: v.push_back(s.one()); break;
      case node::plus: v.push_back(s.plus(v[n.a], v[n.b])); break;
      case node::times: v.push_back(s.times(v[n.a], v[n.b])); break;
    }
  }
  return v.back();
}

token_set support(const monomial& m) {
  token_set s;
  for (const auto& f : m) s.push_back(f.token);
  return s;
}

}  // namespace

TEST_CASE("Trio, B[X], Why, PosBool, lineage, counting and Boolean are images of N[X]") {
  std::mt19937_64 g(2024);
  for (int round = 0; round < 150; ++round) {
    const auto e = random_expression(g, 4 + round % 12);
    const polynomial p = evaluate(nx_semiring{}, e);
    INFO("N[X] value: ", format_polynomial(p));

    std::vector<term> squashed;
    for (const auto& t : p) squashed.push_back({t.mono.support(), t.coefficient});
    const polynomial trio = polynomial::from_terms(squashed);
    CHECK(evaluate(trio_semiring{}, e) == trio);

    polynomial bx = trio;
    bx.clamp_coefficients();
    CHECK(evaluate(bx_semiring{}, e) == bx);

    witness_sets why;
    for (const auto& t : p) why.push_back(support(t.mono));
    std::sort(why.begin(), why.end(), set_order);
    why.erase(std::unique(why.begin(), why.end()), why.end());
    CHECK(evaluate(why_semiring{}, e) == why);

    witness_sets minimal;
    for (const auto& w : why) {
      bool dominated = false;
      for (const auto& o : why) dominated |= (o != w && is_subset(o, w));
      if (!dominated) minimal.push_back(w);
    }
    CHECK(evaluate(posbool_semiring{}, e) == minimal);

    lineage_value lin;
    if (!why.empty()) {
      lin.is_zero = false;
      for (const auto& w : why) lin.tokens = set_union(lin.tokens, w);
    }
    CHECK(evaluate(lineage_semiring{}, e) == lin);

    natural paths = 0;
    for (const auto& t : p) paths += t.coefficient;
    CHECK(evaluate(counting_semiring{}, e) == paths);
    CHECK(evaluate(boolean_semiring{}, e) == !p.is_zero());
  }
}
