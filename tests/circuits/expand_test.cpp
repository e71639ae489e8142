#include "circuits/expand.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "circuits/evaluate.hpp"
#include "common/error.hpp"
#include "layered.hpp"
#include "semiring_list.hpp"
#include "semirings/homomorphism.hpp"

using namespace provnn;

namespace {

monomial mono(std::initializer_list<factor> fs) { return monomial::from_factors(fs); }

struct xyz {
  circuit c;
  token_index tx = 0, ty = 0, tz = 0;
  gate_id x, y, z;
  xyz() {
    auto& tt = c.tokens();
    tx = tt.intern(token_kind::input, token_variant::plain, 0, {0});
    ty = tt.intern(token_kind::input, token_variant::plain, 0, {1});
    tz = tt.intern(token_kind::input, token_variant::plain, 0, {2});
    tt.set_value(tx, 2.0);
    tt.set_value(ty, -3.0);
    tt.set_value(tz, 0.5);
    x = c.token(tx), y = c.token(ty), z = c.token(tz);
  }
};

/// A random ⊕/⊗ DAG over `tokens` tokens (not layered: any gate may use any earlier one).
circuit random_dag(std::mt19937& rng, std::uint32_t tokens, std::uint32_t gates) {
  circuit c;
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::vector<gate_id> pool{zero_gate, one_gate};
  for (std::uint32_t i = 0; i < tokens; ++i) {
    const auto t = c.tokens().intern(token_kind::parameter, token_variant::plain, 1, {i});
    c.tokens().set_value(t, i % 4 == 3 ? 0.0 : u(rng));
    pool.push_back(c.token(t));
  }
  std::bernoulli_distribution is_plus(0.5);
  std::uniform_int_distribution<int> arity(1, 3);
  for (std::uint32_t g = 0; g < gates; ++g) {
    std::vector<gate_id> ch;
    const int n = arity(rng);
    // Prefer recent gates so the DAG gets some depth.
    for (int i = 0; i < n; ++i) {
      std::uniform_int_distribution<std::size_t> pick(pool.size() > 6 ? pool.size() - 6 : 0, pool.size() - 1);
      ch.push_back(std::bernoulli_distribution(0.2)(rng) ? pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)]
                                                      : pool[pick(rng)]);
    }
    pool.push_back(is_plus(rng) ? c.plus(ch) : c.times(ch));
  }
  for (std::size_t i = pool.size() - 4; i < pool.size(); ++i)
    if (!c.find_root(fmt::format("g{}", i))) c.add_root({fmt::format("g{}", i), pool[i]});
  return c;
}

}  // namespace

TEST_CASE("N[X] expansion of hand-built circuits") {
  xyz h;
  auto& c = h.c;
  const auto p = c.plus({h.x, h.y});
  const auto q = c.plus({h.x, h.z});
  const auto pq = c.times({p, q});
  const auto e = expand(c, pq, 100);
  // (x + y)(x + z) = x² + x·y + x·z + y·z
  CHECK(e.size() == 4);
  CHECK(e.coefficient_of(mono({{h.tx, 2}})) == 1);
  CHECK(e.coefficient_of(mono({{h.tx, 1}, {h.ty, 1}})) == 1);
  CHECK(e.coefficient_of(mono({{h.ty, 1}, {h.tz, 1}})) == 1);
  const auto cube = c.times({p, p, p});
  const auto e3 = expand(c, cube, 100);
  CHECK(e3.size() == 4);
  CHECK(e3.coefficient_of(mono({{h.tx, 2}, {h.ty, 1}})) == 3);
  CHECK(e3.coefficient_of(mono({{h.ty, 3}})) == 1);
  CHECK(format_polynomial(e3, c.tokens().namer()) == "x[0]^3 + 3·x[0]^2·x[1] + 3·x[0]·x[1]^2 + x[1]^3");
  CHECK(expand(c, zero_gate, 1).is_zero());
  CHECK(expand(c, one_gate, 1) == polynomial::constant(1));
}

TEST_CASE("the monomial limit fails early, naming the limit, the root and the way out") {
  xyz h;
  auto& c = h.c;
  const auto p = c.plus({h.x, h.y, h.z});
  const auto p2 = c.times({p, p});     // 6 monomials
  const auto p4 = c.times({p2, p2});  // 15 monomials
  c.add_root({"R(x[0])", p4, root_kind::feature, 0, 0, no_target});
  CHECK(expand_root(c, "R(x[0])", 15).size() == 15);
  CHECK_THROWS_WITH_AS(expand_root(c, "R(x[0])", 14),
                       doctest::Contains("N[X] expansion of root 'R(x[0])' exceeds the limit of 14 monomials"),
                       provnn::limit_error);
  // It stops at the first gate over the limit: p2 (6 terms) with a limit of 5.
  try {
    expand_root(c, "R(x[0])", 5);
    FAIL("no limit_error");
  } catch (const provnn::limit_error& err) {
    const std::string m = err.what();
    CHECK(m.find(fmt::format("gate {}", to_index(p2))) != std::string::npos);
    CHECK(m.find("--max-monomials") != std::string::npos);
  }
  const auto unnamed = fmt::format("expansion of gate {} exceeds", to_index(p4));
  CHECK_THROWS_WITH_AS(expand(c, p4, 3), doctest::Contains(unnamed.c_str()), provnn::limit_error);
  CHECK_THROWS_WITH_AS(expand_root(c, "R(x[9])", 10), doctest::Contains("no root named 'R(x[9])'"), provnn::error);
}

TEST_CASE("expanding several roots at once equals expanding each") {
  std::mt19937 rng(21);
  auto net = provnn::testing::random_layered(rng, {4, 3, 3, 2}, 0.8, 0.3);
  const auto all = expand(net.c, net.feature_roots, 100000, "the feature roots");
  REQUIRE(all.size() == net.feature_roots.size());
  for (std::size_t j = 0; j < all.size(); ++j) CHECK(all[j] == expand(net.c, net.feature_roots[j], 100000));
  CHECK_THROWS_WITH_AS(expand(net.c, net.feature_roots, 1, "the feature roots"),
                       doctest::Contains("expansion of the feature roots exceeds the limit of 1 monomials"),
                       provnn::limit_error);
}

TEST_CASE("top-k monomials are the k best entries of the expanded polynomial") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 10; ++trial) {
    auto net = provnn::testing::random_layered(rng, {3, 3, 3, 2}, 0.8, 0.3);
    const auto& tt = net.c.tokens();
    for (auto root : net.feature_roots) {
      const auto poly = expand(net.c, root, 100000);
      // Every path of the polynomial as a (score, monomial) entry, a term with coefficient n
      // standing for n paths.
      std::vector<scored_monomial> all;
      for (const auto& t : poly) {
        double score = 1;
        for (const auto& f : t.mono) score *= std::pow(tt.value(f.token), f.exponent);
        if (score == 0.0) continue;
        for (natural i = 0; i < t.coefficient; ++i) all.push_back({score, t.mono});
      }
      std::sort(all.begin(), all.end(), topk_better);
      const auto top = top_monomials(net.c, root, 4);
      REQUIRE(top.entries.size() == std::min<std::size_t>(4, all.size()));
      for (std::size_t i = 0; i < top.entries.size(); ++i) {
        CHECK(top.entries[i].mono == all[i].mono);
        CHECK(top.entries[i].score == doctest::Approx(all[i].score));
      }
    }
  }
}

TEST_CASE_TEMPLATE_DEFINE("universality: N[X] evaluation mapped through the homomorphism equals direct evaluation",
                          S, universality_test) {
  const S s = provnn::testing::make_test_semiring<S>();
  std::mt19937 rng(99);
  for (int trial = 0; trial < 12; ++trial) {
    auto c = random_dag(rng, 5, 14);
    const auto v = lift_valuation(c, s);
    std::vector<gate_id> gates;
    for (const auto& r : c.roots()) gates.push_back(r.gate);
    const auto direct = evaluate_gates(c, s, std::span<const stored_value_t<S>>(v), gates);
    for (std::size_t i = 0; i < gates.size(); ++i) {
      const auto poly = expand(c, gates[i], 200000);
      const auto mapped =
          evaluate_polynomial(s, poly, [&](token_index t) { return static_cast<typename S::value_type>(v[t]); });
      INFO("trial ", trial, " root ", i, ": N[X] ", format_polynomial(poly), " ↦ ", s.format(mapped, {}), ", direct ",
           s.format(direct[i], {}));
      CHECK(provnn::testing::same_value(s, mapped, direct[i]));
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(universality_test, provnn::all_semirings::as_tuple);
