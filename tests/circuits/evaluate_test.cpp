#include "circuits/evaluate.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "circuits/edge_annotation.hpp"
#include "common/error.hpp"
#include "layered.hpp"
#include "semiring_list.hpp"
#include "semirings/counting.hpp"
#include "semirings/viterbi.hpp"

using namespace provnn;
using provnn::testing::same_value;

namespace {

struct hand_built {
  circuit c;
  gate_id x, y, z, g1, g2, g3;
  hand_built() {
    auto& tt = c.tokens();
    const auto tx = tt.intern(token_kind::input, token_variant::plain, 0, {0});
    const auto ty = tt.intern(token_kind::input, token_variant::plain, 0, {1});
    const auto tz = tt.intern(token_kind::parameter, token_variant::plain, 1, {0, 0});
    tt.set_value(tx, 2.0);
    tt.set_value(ty, 3.0);
    tt.set_value(tz, -1.0);
    x = c.token(tx), y = c.token(ty), z = c.token(tz);
    g1 = c.times({x, y});       // 6
    g2 = c.plus({g1, z, x});    // 7
    g3 = c.times({g2, g2, z});  // -49
  }
};

// A semiring that counts its operations (to see that cone evaluation skips work) and has no
// from_real (to see real-valued annotations refused).
struct op_counting_semiring {
  using value_type = long;
  static constexpr std::uint32_t properties = commutative;
  mutable long ops = 0;
  value_type zero() const { return 0; }
  value_type one() const { return 1; }
  value_type plus(value_type a, value_type b) const { return ++ops, a + b; }
  value_type times(value_type a, value_type b) const { return ++ops, a * b; }
  value_type lift(token_index, double v) const { return static_cast<long>(v); }
  std::string name() const { return "ops"; }
  std::string format(value_type a, const token_namer& = {}) const { return std::to_string(a); }
};
static_assert(semiring<op_counting_semiring>);

}  // namespace

TEST_CASE("evaluation of a hand-built circuit, real and Boolean") {
  hand_built h;
  const auto r = evaluate(h.c, real_semiring{});
  CHECK(r[to_index(h.g1)] == 6.0);
  CHECK(r[to_index(h.g2)] == 7.0);
  CHECK(r[to_index(h.g3)] == -49.0);
  CHECK(r[to_index(zero_gate)] == 0.0);
  CHECK(r[to_index(one_gate)] == 1.0);
  const auto b = evaluate(h.c, boolean_semiring{});
  CHECK(b[to_index(h.g3)] == true);

  SUBCASE("overrides by exact name and by glob") {
    real_semiring s;
    auto v = lift_valuation(h.c, s);
    const token_override del_y[] = {{"x[1]", 0.0}};
    override_tokens(h.c, s, v, del_y);
    auto r2 = evaluate(h.c, s, v);
    CHECK(r2[to_index(h.g1)] == 0.0);
    CHECK(r2[to_index(h.g2)] == 1.0);
    CHECK(r2[to_index(h.g3)] == -1.0);
    const token_override all_x[] = {{"x*", 1.0}, {"W1[0,?]", 2.0}};
    override_tokens(h.c, s, v, all_x);
    r2 = evaluate(h.c, s, v);
    CHECK(r2[to_index(h.g2)] == 4.0);   // 1·1 + 2 + 1
    CHECK(r2[to_index(h.g3)] == 32.0);  // 4·4·2

    boolean_semiring bs;
    auto bv = lift_valuation(h.c, bs);
    const token_override del_z[] = {{"W1[0,0]", 0.0}};
    override_tokens(h.c, bs, bv, del_z);
    const auto b2 = evaluate(h.c, bs, bv);
    CHECK(b2[to_index(h.g2)] == true);
    CHECK(b2[to_index(h.g3)] == false);
  }
  SUBCASE("an override that matches nothing is an error naming it") {
    real_semiring s;
    auto v = lift_valuation(h.c, s);
    const token_override typo[] = {{"W2[*]", 0.0}};
    CHECK_THROWS_WITH_AS(override_tokens(h.c, s, v, typo), doctest::Contains("'W2[*]' matches no token"), provnn::error);
  }
}

TEST_CASE("evaluate_gates and evaluate_roots evaluate only the cone") {
  hand_built h;
  op_counting_semiring s;
  const auto v = lift_valuation(h.c, s);
  const auto all = evaluate(h.c, s, v);
  const long full_ops = s.ops;
  CHECK(full_ops == 1 + 2 + 2);
  CHECK(all[to_index(h.g3)] == -49);
  s.ops = 0;
  const gate_id want[] = {h.g1};
  const auto part = evaluate_gates(h.c, s, v, want);
  CHECK(part == std::vector<long>{6});
  CHECK(s.ops == 1);
  h.c.add_root({"R(x[0])", h.g2, root_kind::feature, 0, 0, no_target});
  h.c.add_root({"g1", h.g1});
  CHECK(evaluate_roots(h.c, s, v) == std::vector<long>{7, 6});
}

TEST_CASE_TEMPLATE_DEFINE("evaluation equals brute-force path enumeration on random layered DAGs", S,
                          brute_force_paths_test) {
  std::mt19937 rng(20261126);
  const S s = provnn::testing::make_test_semiring<S>();
  for (int trial = 0; trial < 30; ++trial) {
    std::uniform_int_distribution<std::uint32_t> width(1, 4), depth(2, 4);
    std::vector<std::uint32_t> sizes(depth(rng));
    for (auto& w : sizes) w = width(rng);
    auto net = provnn::testing::random_layered(rng, sizes);
    const auto v = lift_valuation(net.c, s);
    const auto expected = provnn::testing::brute_force_paths(net, s, v, provnn::testing::token_product(s, v));
    const auto got = evaluate_roots(net.c, s, std::span<const stored_value_t<S>>(v));
    const auto all = evaluate(net.c, s, std::span<const stored_value_t<S>>(v));
    REQUIRE(got.size() == expected.size());
    for (std::size_t j = 0; j < got.size(); ++j) {
      INFO("trial ", trial, " feature ", j, ": ", s.format(got[j], {}), " vs ", s.format(expected[j], {}));
      CHECK(same_value(s, got[j], expected[j]));
      CHECK(same_value(s, all[to_index(net.feature_roots[j])], expected[j]));
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(brute_force_paths_test, provnn::all_semirings::as_tuple);

TEST_CASE("threshold annotation: Boolean K-LRP equals a brute-force search for a path with every d >= theta") {
  std::mt19937 rng(7);
  boolean_semiring s;
  int some_true = 0, some_false = 0;
  for (int trial = 0; trial < 40; ++trial) {
    std::uniform_int_distribution<std::uint32_t> width(1, 4), depth(2, 4);
    std::vector<std::uint32_t> sizes(depth(rng));
    for (auto& w : sizes) w = width(rng);
    auto net = provnn::testing::random_layered(rng, sizes, 0.8);
    const auto& tt = net.c.tokens();
    const double theta = std::uniform_real_distribution<double>(-0.3, 0.1)(rng);
    const auto ann = threshold_annotation(net.c, theta);
    const auto v = lift_valuation(net.c, s);
    // d of an edge computed here from its factors' natural values, independently of the library.
    auto ok = [&](const provnn::testing::layered_net::edge& e) {
      double d = 1.0;
      for (auto t : e.factors) d *= tt.value(t);
      return d >= theta;
    };
    const auto expected = provnn::testing::brute_force_paths<boolean_semiring>(net, s, v, ok);
    const auto got = evaluate_roots(net.c, s, v, &ann);
    const auto all = evaluate(net.c, s, v, &ann);
    for (std::size_t j = 0; j < got.size(); ++j) {
      CHECK(got[j] == expected[j]);
      CHECK(all[to_index(net.feature_roots[j])] == expected[j]);
      (expected[j] ? some_true : some_false)++;
    }
  }
  CHECK(some_true > 10);  // the test exercises both outcomes
  CHECK(some_false > 10);
}

TEST_CASE("per-layer thresholds, identity and Viterbi max-norm annotations") {
  std::mt19937 rng(11);
  auto net = provnn::testing::random_layered(rng, {3, 3, 2}, 1.0, 0.0);
  const auto& tt = net.c.tokens();
  auto d_of = [&](const provnn::testing::layered_net::edge& e) {
    double d = 1.0;
    for (auto t : e.factors) d *= tt.value(t);
    return d;
  };
  const auto d = edge_coefficients(net.c);
  for (const auto& e : net.edges) CHECK(d[e.circuit_edge] == doctest::Approx(d_of(e)));

  SUBCASE("identity leaves real evaluation unchanged") {
    const auto id = identity_annotation(net.c);
    const auto a = evaluate(net.c, real_semiring{}, &id);
    const auto b = evaluate(net.c, real_semiring{});
    for (auto g : net.feature_roots) CHECK(a[to_index(g)] == doctest::Approx(b[to_index(g)]));
  }
  SUBCASE("per-layer thresholds; a missing layer names it") {
    boolean_semiring s;
    const std::map<std::uint32_t, double> theta{{1, 0.0}, {2, -0.5}};
    const auto ann = threshold_annotation(net.c, theta);
    const auto v = lift_valuation(net.c, s);
    auto ok = [&](const provnn::testing::layered_net::edge& e) { return d_of(e) >= theta.at(e.level + 1); };
    const auto expected = provnn::testing::brute_force_paths<boolean_semiring>(net, s, v, ok);
    CHECK(evaluate_roots(net.c, s, v, &ann) == expected);
    CHECK_THROWS_WITH_AS(threshold_annotation(net.c, std::map<std::uint32_t, double>{{1, 0.0}}),
                         doctest::Contains("no threshold for layer 2"), provnn::error);
  }
  SUBCASE("viterbi-maxnorm: |d| over the largest |d| into the same upper unit") {
    const auto ann = viterbi_maxnorm_annotation(net.c);
    for (const auto& e : net.edges) {
      double m = 0;
      for (const auto& f : net.edges)
        if (f.level == e.level && f.upper == e.upper && f.term == e.term) m = std::max(m, std::fabs(d_of(f)));
      CHECK(ann.kind(e.circuit_edge) == edge_value_kind::real);
      CHECK(ann.real(e.circuit_edge) == doctest::Approx(m > 0 ? std::fabs(d_of(e)) / m : 0.0));
    }
    // Real semiring under it: the brute-force sum of path products of normalised edges.
    real_semiring s;
    const auto v = lift_valuation(net.c, s);
    auto norm = [&](const provnn::testing::layered_net::edge& e) { return ann.real(e.circuit_edge); };
    const auto expected = provnn::testing::brute_force_paths<real_semiring>(net, s, v, norm);
    const auto got = evaluate_roots(net.c, s, v, &ann);
    for (std::size_t j = 0; j < got.size(); ++j) CHECK(got[j] == doctest::Approx(expected[j]));
    // A semiring that cannot take reals refuses it by name.
    op_counting_semiring ops;
    const auto ov = lift_valuation(net.c, ops);
    CHECK_THROWS_WITH_AS(evaluate(net.c, ops, ov, &ann),
                         doctest::Contains("'viterbi-maxnorm'"), provnn::unsupported_error);
  }
}

TEST_CASE("real ⊕ gates use the semiring's compensated sum, bit for bit") {
  circuit c;
  auto& tt = c.tokens();
  const double vals[] = {1e16, 1.0, -1e16, 3.0, 1e-3, -2.5e15, 2.5e15};
  std::vector<gate_id> gs;
  for (std::uint32_t i = 0; i < 7; ++i) {
    const auto t = tt.intern(token_kind::input, token_variant::plain, 0, {i});
    tt.set_value(t, vals[i]);
    gs.push_back(c.token(t));
  }
  const auto p = c.plus(gs);
  const auto r = evaluate(c, real_semiring{});
  // The children are stored in id order, which is the order of vals here.
  CHECK(r[to_index(p)] == real_semiring{}.sum(vals));
  CHECK(r[to_index(p)] == doctest::Approx(4.001).epsilon(1e-15));
  double fold = 0;
  for (double v : vals) fold += v;
  CHECK(std::fabs(fold - 4.001) > 0.5);  // a plain left fold loses the 1
}

TEST_CASE("edge gates without factors are one, and an edge gate with an annotation ignores its factors") {
  circuit c;
  const auto t = c.tokens().intern(token_kind::input, token_variant::plain, 0, {0});
  c.tokens().set_value(t, 0.0);
  const auto e0 = c.edge(std::span<const gate_id>{}, {1, 0, 0, 0, no_token});
  const auto e1 = c.edge({c.token(t)}, {1, 0, 1, 0, no_token});
  const auto r = evaluate(c, real_semiring{});
  CHECK(r[to_index(e0)] == 1.0);
  CHECK(r[to_index(e1)] == 0.0);
  const auto ann = threshold_annotation(c, -1.0);  // d = 0 ≥ -1 and 1 ≥ -1
  const auto b = evaluate(c, boolean_semiring{}, &ann);
  CHECK(b[to_index(e0)] == 1);
  CHECK(b[to_index(e1)] == 1);
}

TEST_CASE("K-LRP on random layered nets: counting counts the paths above θ, Viterbi finds the best max-norm path") {
  std::mt19937 rng(12);
  counting_semiring cs;
  viterbi_semiring vs;
  long total_counted = 0;
  for (int trial = 0; trial < 25; ++trial) {
    std::uniform_int_distribution<std::uint32_t> width(1, 4), depth(2, 4);
    std::vector<std::uint32_t> sizes(depth(rng));
    for (auto& w : sizes) w = width(rng);
    auto net = provnn::testing::random_layered(rng, sizes, 0.8, 0.3);
    const auto& tt = net.c.tokens();
    const double theta = std::uniform_real_distribution<double>(-0.3, 0.05)(rng);
    const auto thr = threshold_annotation(net.c, theta);
    const auto maxnorm = viterbi_maxnorm_annotation(net.c);
    const auto levels = static_cast<std::uint32_t>(sizes.size());
    // Plain enumeration of every path, counting and maximising with ordinary arithmetic.
    std::vector<long> count(sizes[0], 0);
    std::vector<double> best(sizes[0], 0.0);
    std::function<void(std::uint32_t, std::uint32_t, std::uint32_t, bool, double)> walk =
        [&](std::uint32_t feature, std::uint32_t level, std::uint32_t unit, bool all_above, double product) {
          if (level == levels - 1) {
            const double r = tt.value(net.targets[unit]);
            if (all_above && r != 0.0) ++count[feature];
            best[feature] = std::max(best[feature], product * std::fabs(r));
            return;
          }
          for (const auto& e : net.edges)
            if (e.level == level && e.lower == unit) {
              double d = 1.0;
              for (auto t : e.factors) d *= tt.value(t);
              walk(feature, level + 1, e.upper, all_above && d >= theta, product * maxnorm.real(e.circuit_edge));
            }
        };
    for (std::uint32_t j = 0; j < sizes[0]; ++j) walk(j, 0, j, true, 1.0);
    const auto cv = lift_valuation(net.c, cs);
    const auto counted = evaluate_roots(net.c, cs, cv, &thr);
    const auto vv = lift_valuation(net.c, vs);
    const auto viterbi = evaluate_roots(net.c, vs, vv, &maxnorm);
    for (std::uint32_t j = 0; j < sizes[0]; ++j) {
      CHECK(counted[j] == count[j]);
      CHECK(viterbi[j] == doctest::Approx(best[j]));
      total_counted += count[j];
    }
  }
  CHECK(total_counted > 50);  // many paths pass the threshold: the comparison is not vacuous
}

TEST_CASE("edge annotation specs") {
  std::mt19937 rng(4);
  auto net = provnn::testing::random_layered(rng, {3, 2, 2}, 1.0, 0.0);
  const auto d = edge_coefficients(net.c);
  const auto a = parse_edge_annotation(net.c, "threshold:0.01");
  const auto b = parse_edge_annotation(net.c, "threshold:1=0.01,2=-0.5");
  for (const auto& e : net.edges) {
    const double di = d[e.circuit_edge];
    CHECK((a.kind(e.circuit_edge) == edge_value_kind::one) == (di >= 0.01));
    CHECK((b.kind(e.circuit_edge) == edge_value_kind::one) == (di >= (e.level == 0 ? 0.01 : -0.5)));
  }
  CHECK(parse_edge_annotation(net.c, "identity").real(0) == d[0]);
  CHECK(parse_edge_annotation(net.c, "viterbi-maxnorm").name() == "viterbi-maxnorm");
  for (const char* bad : {"threshold:", "threshold:x", "threshold:1=", "threshold:1=0.1,1=0.2", "threshold:=3",
                          "viterbi", "threshold:inf", ""})
    CHECK_THROWS_AS(parse_edge_annotation(net.c, bad), provnn::parse_error);
  CHECK_THROWS_WITH_AS(parse_edge_annotation(net.c, "max"), doctest::Contains("valid: identity, viterbi-maxnorm"),
                       provnn::parse_error);
}

// Counting's 64-bit fast path (evaluate.hpp, checked_u63_semiring) against the plain big-
// integer evaluation: the same semiring under another registry name takes the generic path.
namespace {
struct bigint_counting : counting_semiring {
  static constexpr std::string_view registry_name = "counting-bigint";
};
}  // namespace

TEST_CASE("counting: the 64-bit fast path equals big-integer evaluation, and falls back past 2^64") {
  using big = counting_semiring::value_type;
  std::mt19937 rng(20261130);
  for (int trial = 0; trial < 20; ++trial) {
    auto net = testing::random_layered(rng, {6, 5, 4, 3}, 0.8, 0.4);
    const auto& c = net.c;
    const auto fast = evaluate(c, counting_semiring{});
    const auto slow = evaluate(c, bigint_counting{});
    REQUIRE(fast.size() == slow.size());
    CHECK(fast == slow);
    const auto theta = threshold_annotation(c, 0.05);
    CHECK(evaluate(c, counting_semiring{}, &theta) == evaluate(c, bigint_counting{}, &theta));
    // The cone of a few roots (masked evaluation) agrees too.
    const std::vector<gate_id> some(net.feature_roots.begin(), net.feature_roots.begin() + 2);
    const auto fg = evaluate_gates(c, counting_semiring{}, lift_valuation(c, counting_semiring{}), some);
    const auto sg = evaluate_gates(c, bigint_counting{}, lift_valuation(c, bigint_counting{}), some);
    CHECK(fg == sg);
    // With a hook (the CLI's and Python's way): the same gates, in the same order, same values.
    std::vector<std::pair<std::uint32_t, big>> fh, sh;
    detail::evaluate_gates_hooked(c, counting_semiring{}, lift_valuation(c, counting_semiring{}), some, nullptr,
                                  [&](std::uint32_t g, const auto& v) { fh.emplace_back(g, big(v)); });
    detail::evaluate_gates_hooked(c, bigint_counting{}, lift_valuation(c, bigint_counting{}), some, nullptr,
                                  [&](std::uint32_t g, const auto& v) { sh.emplace_back(g, big(v)); });
    CHECK(fh == sh);
    CHECK(fh.size() > some.size());
    // … and with an edge annotation (the CLI's --edge-annotation).
    fh.clear();
    sh.clear();
    detail::evaluate_gates_hooked(c, counting_semiring{}, lift_valuation(c, counting_semiring{}), some, &theta,
                                  [&](std::uint32_t g, const auto& v) { fh.emplace_back(g, big(v)); });
    detail::evaluate_gates_hooked(c, bigint_counting{}, lift_valuation(c, bigint_counting{}), some, &theta,
                                  [&](std::uint32_t g, const auto& v) { sh.emplace_back(g, big(v)); });
    CHECK(fh == sh);
    CHECK_FALSE(fh.empty());
  }
  // 2^128 paths: x ⊕ x = 2, then seven squarings. The 64-bit pass overflows at 2^64 and the
  // result must still be exact.
  circuit c;
  const auto x = c.tokens().intern(token_kind::input, token_variant::plain, 0, {0});
  c.tokens().set_value(x, 1.0);
  const gate_id gx = c.token(x);
  gate_id g = c.plus({gx, gx});
  std::vector<gate_id> steps{g};
  for (int i = 0; i < 7; ++i) steps.push_back(g = c.times({g, g}));
  const auto v = evaluate(c, counting_semiring{});
  CHECK(v[to_index(steps[5])] == big(big(1) << 32));  // 2^(2^5)
  CHECK(v[to_index(steps[6])] == big(big(1) << 64));  // just past 64 bits
  CHECK(v[to_index(steps[7])] == big(big(1) << 128));
  CHECK(v == evaluate(c, bigint_counting{}));
  // With a hook, past 2^64 (the fast pass fails, the big-integer pass runs): each gate of the
  // cone is seen exactly once, in order, with its exact value.
  std::vector<std::pair<std::uint32_t, big>> seen;
  const gate_id last[] = {steps[7]};
  const auto hv = detail::evaluate_gates_hooked(c, counting_semiring{}, lift_valuation(c, counting_semiring{}), last,
                                                nullptr, [&](std::uint32_t gate, const auto& value) { seen.emplace_back(gate, big(value)); });
  CHECK(big(hv[0]) == big(big(1) << 128));
  REQUIRE(seen.size() == 9);  // the token gate, x ⊕ x and seven squarings
  for (std::size_t i = 0; i + 1 < seen.size(); ++i) CHECK(seen[i].first < seen[i + 1].first);
  CHECK(seen.back() == std::pair<std::uint32_t, big>(to_index(steps[7]), big(big(1) << 128)));
}

TEST_CASE("counting: the fast path stops at 2^63 and at boxed tokens, and the result stays exact") {
  using big = counting_semiring::value_type;
  // x ⊕ x and x ⊗ y with x, y chosen around 2^63, the first count a packed_count boxes.
  circuit c;
  const auto x = c.tokens().intern(token_kind::input, token_variant::plain, 0, {0});
  const auto y = c.tokens().intern(token_kind::input, token_variant::plain, 0, {1});
  const gate_id gx = c.token(x), gy = c.token(y);
  const gate_id sum = c.plus({gx, gx}), prod = c.times({gx, gy});
  // A token gate nothing else reads: its count must come out as it went in, boxed or not.
  const auto z = c.tokens().intern(token_kind::input, token_variant::plain, 0, {2});
  const gate_id gz = c.token(z);
  {
    values_of<counting_semiring> v(c.tokens().size());
    v[z] = big(big(1) << 70);
    CHECK(big(evaluate(c, counting_semiring{}, std::span<const packed_count>(v))[to_index(gz)]) == big(1) << 70);
  }
  auto at = [&](const big& vx, const big& vy) {
    values_of<counting_semiring> v(c.tokens().size());
    v[x] = vx;
    v[y] = vy;
    const auto out = evaluate(c, counting_semiring{}, std::span<const packed_count>(v));
    CHECK(out == evaluate(c, bigint_counting{}, std::span<const packed_count>(v)));  // the generic loop
    return std::pair<big, big>(out[to_index(sum)], out[to_index(prod)]);
  };
  const big two62 = big(1) << 62, two63 = big(1) << 63;
  CHECK(at(two62 - 1, 2) == std::pair<big, big>(two63 - 2, two63 - 2));  // fits: the fast path
  CHECK(at(two62, 2) == std::pair<big, big>(two63, two63));              // the first overflow
  CHECK(at(two63 - 1, 1) == std::pair<big, big>(2 * two63 - 2, two63 - 1));
  // A boxed token (2^70 as a token's count), read through a token gate.
  CHECK(at(big(1) << 70, 0) == std::pair<big, big>(big(1) << 71, 0));
  CHECK(at(3, big(1) << 70) == std::pair<big, big>(6, big(3) << 70));
  // Random layered nets with a few tokens valued near or past 2^63.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 10; ++trial) {
    auto net = testing::random_layered(rng, {5, 4, 3}, 0.8, 0.3);
    auto v = lift_valuation(net.c, counting_semiring{});
    for (int k = 0; k < 3; ++k) {
      const auto t = rng() % v.size();
      v[t] = (trial % 2 == 0) ? big(big(1) << (40 + rng() % 40)) : big(rng() % 3);
    }
    CHECK(evaluate(net.c, counting_semiring{}, std::span<const packed_count>(v)) ==
          evaluate(net.c, bigint_counting{}, std::span<const packed_count>(v)));
  }
}
