// Fused gates (gate_kind::fused, circuits/fused.hpp) on a circuit small enough to check by
// hand: F = a ⊗ (W00 ⊗ S0 ⊕ W10 ⊗ S1), S_k = r_k ⊗ n_k, i.e. two edges a→k of one lower unit.
#include "circuits/fused.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <boost/crc.hpp>

#include "circuits/dot.hpp"
#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "circuits/expand.hpp"
#include "circuits/file_format.hpp"
#include "common/error.hpp"
#include "semirings/boolean.hpp"
#include "semirings/counting.hpp"
#include "semirings/fuzzy.hpp"
#include "semirings/max_plus.hpp"
#include "semirings/nx.hpp"
#include "semirings/real.hpp"
#include "semirings/viterbi.hpp"

using namespace provnn;

namespace {

struct two_edges {
  circuit c;
  token_index a, w00, w10, n0, n1, r0, r1;
  gate_id s0, s1, f;
  two_edges() {
    auto& tt = c.tokens();
    r0 = tt.intern(token_kind::target, token_variant::plain, 0, {0});
    r1 = tt.intern(token_kind::target, token_variant::plain, 0, {1});
    a = tt.intern(token_kind::activation, token_variant::plain, 1, {0});
    n0 = tt.intern(token_kind::normaliser, token_variant::plain, 2, {0}, 0);
    n1 = tt.intern(token_kind::normaliser, token_variant::plain, 2, {1}, 0);
    w00 = tt.intern(token_kind::parameter, token_variant::plain, 2, {0, 0});
    w10 = tt.intern(token_kind::parameter, token_variant::plain, 2, {1, 0});
    tt.set_value(r0, 4.0);
    tt.set_value(r1, 8.0);
    tt.set_value(a, 2.0);
    tt.set_value(n0, 0.5);
    tt.set_value(n1, 0.25);
    tt.set_value(w00, 3.0);
    tt.set_value(w10, -1.0);
    const gate_id gr0 = c.token(r0), gr1 = c.token(r1), ga = c.token(a);
    s0 = c.scale(gr0, c.token(n0), 0);
    s1 = c.scale(gr1, c.token(n1), 1);
    const token_index ps[] = {w00, w10};
    const gate_id ss[] = {s0, s1};
    f = c.fused(ga, ps, ss, {2, 0, 0});
    c.add_root({"R(a1[0])", f, root_kind::other});
  }
};

}  // namespace

TEST_CASE("fused gate: value by hand in ℝ, counting, Boolean, and with a deleted weight") {
  two_edges t;
  const auto& c = t.c;
  CHECK(c.kind(t.f) == gate_kind::fused);
  CHECK(c.fused_gates().size() == 1);
  CHECK(c.fused_edge_count() == 2);
  CHECK(c.children(t.f).size() == 3);  // φ and the two scale gates: every gate it depends on
  CHECK(c.scaled_unit(t.s1) == 1u);
  CHECK_FALSE(c.scaled_unit(t.f).has_value());
  // 2 · (3 · 0.5 · 4 + (−1) · 0.25 · 8) = 2 · (6 − 2) = 8
  CHECK(evaluate(c, real_semiring{})[to_index(t.f)] == doctest::Approx(8.0).epsilon(1e-15));
  CHECK(evaluate(c, counting_semiring{})[to_index(t.f)] == 2);
  CHECK(evaluate(c, boolean_semiring{})[to_index(t.f)] == 1);
  // Only the cone of F (masked loop).
  const gate_id roots[] = {t.f};
  CHECK(evaluate_gates(c, real_semiring{}, c.tokens().values(), roots)[0] == doctest::Approx(8.0));
  // Deleting W00 leaves 2 · (−2) = −4; deleting a leaves 0.
  auto v = lift_valuation(c, real_semiring{});
  const token_override del[] = {{"W2[0,0]", 0.0}};
  override_tokens(c, real_semiring{}, v, del);
  CHECK(evaluate(c, real_semiring{}, std::span<const double>(v))[to_index(t.f)] == doctest::Approx(-4.0));
}

TEST_CASE("fused gate: counting with a boxed weight count (past 2^63) is exact on the fast path's fall-back") {
  using big = counting_semiring::value_type;
  two_edges t;
  const auto& c = t.c;
  const circuit plain = expand_fused(c);
  auto f_at = [&](const circuit& k, const values_of<counting_semiring>& v) {
    return big(evaluate(k, counting_semiring{}, std::span<const packed_count>(v))[to_index(k.roots()[0].gate)]);
  };
  // Every token counts 1, except W2[0,0] = 2^70: F = a · (W00 · s0 + W10 · s1) = 2^70 + 1.
  auto v = lift_valuation(c, counting_semiring{});
  v[t.w00] = big(big(1) << 70);
  CHECK(f_at(c, v) == (big(1) << 70) + 1);
  // With r[0] = 0 the boxed weight meets a zero scale: F = 1, with or without the fall-back.
  v[t.r0] = 0;
  CHECK(f_at(c, v) == 1);
  // The expanded circuit reads the same counts through token gates, and agrees.
  auto pv = lift_valuation(plain, counting_semiring{});
  const auto w00 = *plain.tokens().find(c.tokens().name(t.w00));
  const auto r0 = *plain.tokens().find(c.tokens().name(t.r0));
  pv[w00] = big(big(1) << 70);
  CHECK(f_at(plain, pv) == (big(1) << 70) + 1);
  pv[r0] = 0;
  CHECK(f_at(plain, pv) == 1);
  // 2^62 per weight: the sum 2^63 is past the fast path's bound, still exact.
  v = lift_valuation(c, counting_semiring{});
  v[t.w00] = big(big(1) << 62);
  v[t.w10] = big(big(1) << 62);
  CHECK(f_at(c, v) == (big(1) << 63));
  v[t.w10] = big((big(1) << 62) - 1);
  CHECK(f_at(c, v) == (big(1) << 63) - 1);  // the largest the fast path keeps
  // A product past 2^64 (2^62 · 4), and products below 2^64 whose sum passes it
  // ((2^63 − 1) · 2 + (2^63 − 1)): neither may be truncated to 64 bits.
  v = lift_valuation(c, counting_semiring{});
  v[t.w00] = big(big(1) << 62);
  v[t.r0] = 4;
  CHECK(f_at(c, v) == (big(1) << 64) + 1);
  v[t.w00] = big((big(1) << 63) - 1);
  v[t.w10] = big((big(1) << 63) - 1);
  v[t.r0] = 2;
  CHECK(f_at(c, v) == 3 * ((big(1) << 63) - 1));
  // φ = 4 times a sum of 2^62 + 1: the product 2^64 + 4 must not be truncated either.
  v = lift_valuation(c, counting_semiring{});
  v[t.w00] = big(big(1) << 62);
  v[t.a] = 4;
  CHECK(f_at(c, v) == (big(1) << 64) + 4);
  // Both weights boxed: their raw bits must not pass for counts.
  v = lift_valuation(c, counting_semiring{});
  v[t.w00] = big(big(1) << 70);
  v[t.w10] = big(big(1) << 71);
  CHECK(f_at(c, v) == (big(3) << 70));
}

TEST_CASE("fused gate: scaled children read from the circuit's own child array (which may grow) stay intact") {
  circuit c;
  auto& tt = c.tokens();
  const auto a = tt.intern(token_kind::activation, token_variant::plain, 1, {0});
  std::vector<token_index> w;
  std::vector<gate_id> ss;
  for (std::uint32_t i = 0; i < 40; ++i) {
    w.push_back(tt.intern(token_kind::parameter, token_variant::plain, 2, {i, 0}));
    const auto r = tt.intern(token_kind::target, token_variant::plain, 0, {i});
    const auto n = tt.intern(token_kind::normaliser, token_variant::plain, 2, {i}, 0);
    ss.push_back(c.scale(c.token(r), c.token(n), i));
  }
  const gate_id f = c.fused(c.token(a), w, ss, {2, 0, 0});
  c.shrink_to_fit();  // no room left: the next append must grow the array it reads from
  const auto own = c.children(f).subspan(1);
  const gate_id g = c.fused(c.token(a), w, own, {2, 0, 1});
  const auto gs = c.children(g), fs = c.children(f);
  CHECK(std::vector<gate_id>(gs.begin(), gs.end()) == std::vector<gate_id>(fs.begin(), fs.end()));
  CHECK(std::vector<gate_id>(gs.begin() + 1, gs.end()) == ss);
}

TEST_CASE("fused gates in ℝ that share their scaled children (a dense layer): exact sums for 1 to 40 edges, all loops") {
  // A dense layer's fused gates list the same scale gates; evaluation gathers their values
  // once and takes a packed dot product with the ψ run. Every value here is a small dyadic
  // number, so each sum is exact in any order and must equal the sum computed here, term by
  // term. Per width n: three gates over the same n scale gates (the second and third reuse
  // the gathered values), then one over the same first n − 1 and another last one (same
  // width, same first child, different list: must not reuse them). The third gate's weights
  // are all 0.
  circuit c;
  auto& tt = c.tokens();
  std::vector<gate_id> scale_gates;
  std::vector<double> sigma;  // r_k · n_k
  for (std::uint32_t k = 0; k < 41; ++k) {
    const auto r = tt.intern(token_kind::target, token_variant::plain, 0, {k});
    const auto n = tt.intern(token_kind::normaliser, token_variant::plain, 2, {k}, 0);
    tt.set_value(r, static_cast<double>(k % 7) - 3.0);
    tt.set_value(n, k % 2 ? 0.5 : 0.25);
    scale_gates.push_back(c.scale(c.token(r), c.token(n), k));
    sigma.push_back((static_cast<double>(k % 7) - 3.0) * (k % 2 ? 0.5 : 0.25));
  }
  std::vector<gate_id> fs;
  std::vector<double> expected;
  std::uint32_t unit = 0;
  for (std::uint32_t n = 1; n <= 40; ++n) {
    for (int variant = 0; variant < 4; ++variant) {
      std::vector<gate_id> ss(scale_gates.begin(), scale_gates.begin() + n);
      if (variant == 3) ss.back() = scale_gates[40];
      const auto a = tt.intern(token_kind::activation, token_variant::plain, 1, {unit});
      tt.set_value(a, variant == 1 ? -2.0 : 1.0 + variant);
      std::vector<token_index> w;  // a run: interned one after the other
      double sum = 0.0;
      for (std::uint32_t i = 0; i < n; ++i) {
        w.push_back(tt.intern(token_kind::parameter, token_variant::plain, 2, {unit, i}));
        const double wv = variant == 2 ? 0.0 : static_cast<double>((unit * 5 + i * 3) % 11) - 5.0;
        tt.set_value(w.back(), wv);
        sum += wv * (variant == 3 && i + 1 == n ? sigma[40] : sigma[i]);
      }
      fs.push_back(c.fused(c.token(a), w, ss, {2, unit, 0}));
      expected.push_back((variant == 1 ? -2.0 : 1.0 + variant) * sum);
      ++unit;
    }
  }
  // Which gates share the children of the one before: the second and third of each width.
  const auto flags = c.fused_same_children();
  REQUIRE(flags.size() == fs.size());
  for (std::size_t i = 0; i < fs.size(); ++i) {
    CAPTURE(i);
    CHECK(flags[i] == (i % 4 == 1 || i % 4 == 2 ? 1 : 0));
  }
  // The file reader works them out again (they are not stored).
  const circuit back = deserialize_circuit(serialize_circuit(c));
  const auto back_flags = back.fused_same_children();
  CHECK(std::vector<std::uint8_t>(back_flags.begin(), back_flags.end()) ==
        std::vector<std::uint8_t>(flags.begin(), flags.end()));
  const auto all = evaluate(c, real_semiring{});
  const auto reloaded = evaluate(back, real_semiring{});
  for (std::size_t i = 0; i < fs.size(); ++i) {
    CAPTURE(i);
    CHECK(all[to_index(fs[i])] == expected[i]);
    CHECK(reloaded[to_index(fs[i])] == expected[i]);
  }
  // A masked loop over every other gate: the gates skipped in between must not leave
  // gathered values behind for a later gate with other children.
  std::vector<gate_id> some;
  for (std::size_t i = 1; i < fs.size(); i += 2) some.push_back(fs[i]);
  const auto part = evaluate_gates(c, real_semiring{}, c.tokens().values(), some);
  for (std::size_t i = 0; i < some.size(); ++i) {
    CAPTURE(i);
    CHECK(part[i] == expected[2 * i + 1]);
  }
  // Max-plus and Viterbi (run kernels in lanes of two): each gate equals the left fold of
  // plus and times over its edges, exactly (max is exactly associative). Zero weights and
  // zero targets make −∞ (max-plus) and 0 (Viterbi) terms; gates whose terms are all −∞
  // (all weights 0, at every width) must stay −∞.
  const auto fold_check = [&](const auto& sr) {
    const auto v = evaluate(c, sr);
    const auto valuation = lift_valuation(c, sr);
    std::size_t minus_infinity_gates = 0;
    for (std::size_t i = 0; i < fs.size(); ++i) {
      const auto ch = c.children(fs[i]);
      auto acc = sr.zero();
      std::size_t e = 1;  // fused gate i is fs[i]: they are the only ones
      for (const token_index t : c.fused_parameters(i)) acc = sr.plus(acc, sr.times(valuation[t], v[to_index(ch[e++])]));
      const auto want = sr.times(v[to_index(ch[0])], acc);
      CAPTURE(sr.name());
      CAPTURE(i);
      CHECK(v[to_index(fs[i])] == want);
      if (want == sr.zero()) ++minus_infinity_gates;
    }
    return minus_infinity_gates;
  };
  CHECK(fold_check(max_plus_semiring{}) >= 40);
  CHECK(fold_check(viterbi_semiring{}) >= 40);
  // Counting: the 64-bit path sums the σ whose ψ is 1 when every ψ is 0 or 1 (the third gate
  // of each width has all ψ = 0) and the counts are small; with targets counted 2^40,
  // 2^61 and 2^62 + 3 the bound test must send the gates to the checked products, and past
  // 2^63 to big integers (a sum of four or eight of 2^62 + 3 would wrap 64 bits to a small
  // count). Each gate equals the fold in big integers.
  using big = counting_semiring::value_type;
  const counting_semiring cs;
  for (const big& target : {big(1), big(1) << 40, big(1) << 61, (big(1) << 62) + 3}) {
    auto valuation = lift_valuation(c, cs);
    for (token_index t = 0; t < tt.size(); ++t)
      if (tt.kind(t) == token_kind::target && tt.value(t) != 0) valuation[t] = target;
    const auto v = evaluate(c, cs, std::span<const packed_count>(valuation));
    for (std::size_t i = 0; i < fs.size(); ++i) {
      const auto ch = c.children(fs[i]);
      big acc = 0;
      std::size_t e = 1;
      for (const token_index t : c.fused_parameters(i)) acc += big(valuation[t]) * big(v[to_index(ch[e++])]);
      CAPTURE(i);
      CHECK(big(v[to_index(fs[i])]) == big(v[to_index(ch[0])]) * acc);
      if (i % 4 == 2) CHECK(big(v[to_index(fs[i])]) == 0);
    }
  }
}

TEST_CASE("fused gates in counting: a shared-children sum that would wrap 64 bits goes to big integers") {
  // Two fused gates over the same 8 scale gates, each counted 2^62: the first has every
  // weight deleted (count 0, so its checked sum is 0 and flags nothing), the second every
  // weight present, so its count is 8 · 2^62 = 2^65. The 64-bit path must not take it (the
  // sum of its σ would wrap to 0): the value comes from big integers.
  using big = counting_semiring::value_type;
  circuit c;
  auto& tt = c.tokens();
  std::vector<gate_id> ss;
  for (std::uint32_t k = 0; k < 8; ++k) {
    const auto r = tt.intern(token_kind::target, token_variant::plain, 0, {k});
    const auto n = tt.intern(token_kind::normaliser, token_variant::plain, 2, {k}, 0);
    tt.set_value(r, 1.0);
    tt.set_value(n, 1.0);
    ss.push_back(c.scale(c.token(r), c.token(n), k));
  }
  std::vector<gate_id> fs;
  for (std::uint32_t j = 0; j < 2; ++j) {
    const auto a = tt.intern(token_kind::activation, token_variant::plain, 1, {j});
    tt.set_value(a, 1.0);
    std::vector<token_index> w;
    for (std::uint32_t k = 0; k < 8; ++k) {
      w.push_back(tt.intern(token_kind::parameter, token_variant::plain, 2, {j, k}));
      tt.set_value(w.back(), j == 0 ? 0.0 : 1.0);
    }
    fs.push_back(c.fused(c.token(a), w, ss, {2, j, 0}));
  }
  REQUIRE(c.fused_same_children()[1] == 1);
  const counting_semiring cs;
  auto valuation = lift_valuation(c, cs);
  for (token_index t = 0; t < tt.size(); ++t)
    if (tt.kind(t) == token_kind::target) valuation[t] = big(1) << 62;
  const auto v = evaluate(c, cs, std::span<const packed_count>(valuation));
  CHECK(big(v[to_index(fs[0])]) == 0);
  CHECK(big(v[to_index(fs[1])]) == big(1) << 65);
}

TEST_CASE("fused gate: an absorptive ⊕ may stop early, the value stays φ ⊗ Σ (Boolean and fuzzy by hand)") {
  // F = a ⊗ ⊕_{i<9} (W[i] ⊗ (r ⊗ n)): two blocks of four edges and one left over.
  circuit c;
  auto& tt = c.tokens();
  const auto r = tt.intern(token_kind::target, token_variant::plain, 0, {0});
  const auto n = tt.intern(token_kind::normaliser, token_variant::plain, 2, {0}, 0);
  const auto a = tt.intern(token_kind::activation, token_variant::plain, 1, {0});
  std::vector<token_index> w;
  for (std::uint32_t i = 0; i < 9; ++i) w.push_back(tt.intern(token_kind::parameter, token_variant::plain, 2, {0, i}));
  const gate_id s = c.scale(c.token(r), c.token(n), 0);
  const std::vector<gate_id> ss(9, s);
  const gate_id f = c.fused(c.token(a), w, ss, {2, 0, 0});
  c.add_root({"F", f, root_kind::other});
  auto at = [&](double va, double vr, std::vector<double> vw) {
    tt.set_value(a, va);
    tt.set_value(r, vr);
    tt.set_value(n, 1.0);
    for (std::size_t i = 0; i < 9; ++i) tt.set_value(w[i], vw[i]);
    // By hand: fuzzy lifts min(|v|, 1), ⊕ = max, ⊗ = min; Boolean is "non-zero".
    double fz = 0.0;
    for (double x : vw) fz = std::max(fz, std::min(std::min(std::fabs(x), 1.0), std::min(std::fabs(vr), 1.0)));
    fz = std::min(fz, std::min(std::fabs(va), 1.0));
    CHECK(evaluate(c, fuzzy_semiring{})[to_index(f)] == fz);
    return static_cast<bool>(evaluate(c, boolean_semiring{})[to_index(f)]);
  };
  const std::vector<double> all(9, 0.5);
  CHECK(at(1.0, 2.0, all));
  CHECK_FALSE(at(0.0, 2.0, all));  // φ = 0 after the first block already sums to 1
  CHECK_FALSE(at(1.0, 0.0, all));
  std::vector<double> last(9, 0.0);
  last[8] = -3.0;  // only the edge left over after the blocks
  CHECK(at(1.0, 2.0, last));
  CHECK_FALSE(at(0.0, 2.0, last));
  CHECK_FALSE(at(1.0, 2.0, std::vector<double>(9, 0.0)));
  std::vector<double> fifth(9, 0.25);
  fifth[5] = 4.0;  // fuzzy reaches 1 in the second block only
  CHECK(at(0.75, 1.0, fifth));
}

TEST_CASE("fused gate: its N[X] polynomial is the sum over its edges, as the expanded circuit's") {
  two_edges t;
  const auto p = expand(t.c, t.f, 100);
  CHECK(p.size() == 2);
  const auto text = nx_semiring{}.format(p, t.c.tokens().namer());
  CHECK(text.find("W2[0,0]") != std::string::npos);
  CHECK(text.find("W2[1,0]") != std::string::npos);
  std::vector<gate_id> map;
  const circuit e = expand_fused(t.c, &map);
  CHECK(expand(e, map[to_index(t.f)], 100) == p);
}

TEST_CASE("expand_fused: edge gates with their contexts, same tokens, roots and values") {
  two_edges t;
  std::vector<gate_id> map;
  const circuit e = expand_fused(t.c, &map);
  CHECK_FALSE(has_fused_gates(e));
  CHECK(e.tokens().size() == t.c.tokens().size());
  REQUIRE(e.edge_gates().size() == 2);
  const edge_context want0{2, 0, 0, 0, t.w00}, want1{2, 0, 1, 0, t.w10};
  CHECK(e.edge_contexts()[0] == want0);
  CHECK(e.edge_contexts()[1] == want1);
  // E = φ ⊗ ψ ⊗ n, factors in that order (as build_circuit makes them)
  const auto f0 = e.children(e.edge_gates()[0]);
  REQUIRE(f0.size() == 3);
  CHECK(e.token_of(f0[0]) == t.a);
  CHECK(e.token_of(f0[1]) == t.w00);
  CHECK(e.token_of(f0[2]) == t.n0);
  REQUIRE(e.roots().size() == 1);
  CHECK(e.roots()[0].name == "R(a1[0])");
  CHECK(e.roots()[0].gate == map[to_index(t.f)]);
  CHECK(evaluate(e, real_semiring{})[to_index(e.roots()[0].gate)] == doctest::Approx(8.0));
  // Scale gates only fused gates used are gone: the expansion holds no ⊗ of r and n alone.
  CHECK(e.scale_gates().empty());
  // Edge annotations work on the expansion: threshold 1 keeps the edge with d = 3, drops d = −0.5·… .
  const auto theta = threshold_annotation(e, 1.0);
  CHECK(evaluate(e, counting_semiring{}, &theta)[to_index(e.roots()[0].gate)] == 1);
  // DOT draws the expansion's edge gates.
  CHECK(to_dot(e).find("E2 0→1#0") != std::string::npos);
}

TEST_CASE("fused circuits refuse what needs edge gates, with a message that says what to do") {
  two_edges t;
  CHECK_THROWS_AS(to_dot(t.c), unsupported_error);
  CHECK_THROWS_WITH_AS(threshold_annotation(t.c, 0.5), doctest::Contains("expand_fused"), unsupported_error);
  const token_index one_param[] = {t.w00};
  const gate_id two_scaled[] = {t.s0, t.s1};
  CHECK_THROWS_AS(t.c.fused(t.c.token(t.a), one_param, two_scaled, {}), error);
  const token_index bad[] = {t.w00, 999};
  CHECK_THROWS_AS(t.c.fused(t.c.token(t.a), bad, two_scaled, {}), error);
  // A fused gate whose scaled child is not a scale gate evaluates, but cannot be expanded.
  circuit c2 = t.c;
  const gate_id not_scale[] = {c2.token(t.r0)};
  const token_index p1[] = {t.w00};
  c2.fused(c2.token(t.a), p1, not_scale, {});
  CHECK_THROWS_WITH_AS(expand_fused(c2), doctest::Contains("not a scale gate"), error);
}

TEST_CASE("file format: a fused circuit is written as version 3 and read back identical") {
  two_edges t;
  const std::string bytes = serialize_circuit(t.c);
  CHECK(static_cast<unsigned char>(bytes[8]) == 3);  // version
  const circuit back = deserialize_circuit(bytes);
  CHECK(back.fused_gates().size() == 1);
  CHECK(back.fused_contexts()[0] == t.c.fused_contexts()[0]);
  REQUIRE(back.fused_parameters(0).size() == 2);
  CHECK(back.fused_parameters(0)[1] == t.w10);
  CHECK(back.scale_gates().size() == 2);
  CHECK(back.scale_units()[1] == 1);
  CHECK(serialize_circuit(back) == bytes);
  CHECK(evaluate(back, real_semiring{})[to_index(t.f)] == doctest::Approx(8.0));
  // A plain circuit stays version 1.
  const std::string plain = serialize_circuit(expand_fused(t.c));
  CHECK(static_cast<unsigned char>(plain[8]) == 1);
  // Every flipped byte of the fused file is refused (checksum), never half-read.
  for (std::size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5A);
    CHECK_THROWS_AS(deserialize_circuit(bad), parse_error);
  }
  // Truncated anywhere: refused.
  for (std::size_t n = 0; n < bytes.size(); n += 5) CHECK_THROWS_AS(deserialize_circuit(bytes.substr(0, n)), parse_error);
}

TEST_CASE("file format: token blocks are written as block records and read back as blocks") {
  circuit c;
  auto& tt = c.tokens();
  const auto x = tt.intern(token_kind::input, token_variant::plain, 0, {0});
  tt.set_value(x, 2.0);
  const std::uint32_t shape[] = {3, 2};
  const std::uint8_t j_major[] = {1, 0};
  const auto w = tt.add_block(token_kind::parameter, token_variant::plain, 1, shape, j_major);
  for (token_index t = w; t < w + 6; ++t) tt.set_value(t, 0.5 * t);
  const std::uint32_t present[] = {1, 4};  // a sparse block too: W1+[1,0] and W1+[1,1]
  const auto sp = tt.add_block(token_kind::parameter, token_variant::pos, 1, shape, j_major, 0, present);
  tt.set_value(sp + 1, 9.0);
  const auto n = tt.intern(token_kind::normaliser, token_variant::plain, 1, {2}, 0);
  tt.set_value(n, 4.0);
  const gate_id g = c.times({c.token(x), c.token(w + 3), c.token(n)});
  c.add_root({"g", g});
  const std::string bytes = serialize_circuit(c);
  CHECK(static_cast<unsigned char>(bytes[8]) == 3);
  const circuit back = deserialize_circuit(bytes);
  REQUIRE(back.tokens().block_count() == 2);
  CHECK(back.tokens().block_at(0).first == w);
  CHECK(back.tokens().block_at(1).present.size() == 2);
  CHECK(back.tokens().name(sp + 1) == "W1+[1,1]");
  CHECK(back.tokens().value(sp + 1) == 9.0);
  CHECK(back.tokens().in_block(w + 5));
  for (token_index t = 0; t < tt.size(); ++t) {
    CHECK(back.tokens().name(t) == tt.name(t));
    CHECK(back.tokens().value(t) == tt.value(t));
  }
  CHECK(serialize_circuit(back) == bytes);
  // x · W1[1,1] · n = 2 · (0.5 · token 4) · 4 = 16 (token 4 = first + j·3 + k with k = j = 1)
  CHECK(back.tokens().name(w + 3) == "W1[0,1]");
  CHECK(evaluate(back, real_semiring{})[to_index(back.roots()[0].gate)] == doctest::Approx(2.0 * 0.5 * (w + 3) * 4.0));
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x21);
    CHECK_THROWS_AS(deserialize_circuit(bad), parse_error);
  }
  // Under a valid checksum: a block claiming more tokens than its shape holds is refused.
  auto u64_at = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(bytes[at + i])} << (8 * i);
    return v;
  };
  std::size_t sec8 = 24 + 8 * 8;
  for (int i = 0; i < 7; ++i) sec8 += u64_at(24 + 8 * i);
  std::string bad = bytes;
  bad[sec8 + 8 + 4] = 7;  // the first block's count: 6 → 7
  boost::crc_32_type crc;
  crc.process_bytes(bad.data(), bad.size() - 4);
  const auto sum = crc.checksum();
  for (int i = 0; i < 4; ++i) bad[bad.size() - 4 + i] = static_cast<char>((sum >> (8 * i)) & 0xFF);
  CHECK_THROWS_WITH_AS(deserialize_circuit(bad), doctest::Contains("claims 7 tokens but its shape holds 6"),
                       parse_error);
}

TEST_CASE("fused parameters: a run is stored as its first token, a narrow list as 16-bit offsets, a wide one as tokens") {
  two_edges t;
  circuit& c = t.c;
  // two_edges interned W2[0,0] and W2[1,0] one after the other: a run, no per-edge entry.
  REQUIRE(c.fused_parameters(0).is_run());
  CHECK(c.raw_fused_parameters().empty());
  // Reversed, the same tokens are a list; a single token is a run of one.
  const gate_id ga = c.token(t.a);
  const token_index rev[] = {t.w10, t.w00};
  const gate_id ss[] = {t.s0, t.s1};
  const gate_id f2 = c.fused(ga, rev, ss, {2, 0, 1});
  const token_index one[] = {t.w10};
  const gate_id s1only[] = {t.s1};
  const gate_id f3 = c.fused(ga, one, s1only, {2, 0, 2});
  // Tokens 69 999 apart do not fit 16-bit offsets: listed as tokens.
  const std::uint32_t wide_shape[] = {70000};
  const auto big = c.tokens().add_block(token_kind::parameter, token_variant::plain, 3, wide_shape);
  c.tokens().set_value(big, 0.5);
  c.tokens().set_value(big + 69999, 3.0);
  const token_index wide[] = {big, big + 69999};
  const gate_id f4 = c.fused(ga, wide, ss, {3, 0, 0});
  CHECK_FALSE(c.fused_parameters(1).is_run());
  CHECK(c.fused_parameters(1).is_offsets());
  CHECK(c.fused_parameters(2).is_run());
  CHECK_FALSE(c.fused_parameters(3).is_run());
  CHECK_FALSE(c.fused_parameters(3).is_offsets());
  CHECK(c.raw_fused_parameter_deltas().size() == 2);  // f2's
  CHECK(c.raw_fused_parameters().size() == 2);        // f4's
  CHECK(c.fused_parameters(3)[1] == big + 69999);
  CHECK(c.fused_edge_count() == 7);
  std::vector<token_index> got(c.fused_parameters(1).begin(), c.fused_parameters(1).end());
  CHECK(got == std::vector<token_index>{t.w10, t.w00});
  CHECK(c.fused_parameters(0)[1] == t.w10);
  c.add_root({"f2", f2, root_kind::other});
  c.add_root({"f3", f3, root_kind::other});
  c.add_root({"f4", f4, root_kind::other});
  // By hand: f2 = 2 · (−1 · 0.5 · 4 + 3 · 0.25 · 8) = 2 · (−2 + 6) = 8; f3 = 2 · (−1 · 0.25 · 8) = −4;
  // f4 = 2 · (0.5 · 0.5 · 4 + 3 · 0.25 · 8) = 2 · (1 + 6) = 14.
  const auto v = evaluate(c, real_semiring{});
  CHECK(v[to_index(f2)] == doctest::Approx(8.0).epsilon(1e-15));
  CHECK(v[to_index(f3)] == doctest::Approx(-4.0).epsilon(1e-15));
  CHECK(v[to_index(f4)] == doctest::Approx(14.0).epsilon(1e-15));
  // Both storages agree with the expanded (plain) circuit in every semiring tried.
  const circuit plain = expand_fused(c);
  for (const char* name : {"R(a1[0])", "f2", "f3", "f4"}) {
    const auto* r = c.find_root(name);
    const auto* p = plain.find_root(name);
    REQUIRE((r && p));
    CHECK(evaluate(c, real_semiring{})[to_index(r->gate)] == doctest::Approx(evaluate(plain, real_semiring{})[to_index(p->gate)]));
    CHECK(evaluate(c, counting_semiring{})[to_index(r->gate)] == evaluate(plain, counting_semiring{})[to_index(p->gate)]);
    CHECK(evaluate(c, nx_semiring{})[to_index(r->gate)] == evaluate(plain, nx_semiring{})[to_index(p->gate)]);
  }
  // The file keeps runs and lists as they are; reading it back restores both.
  const std::string bytes = serialize_circuit(c);
  const circuit back = deserialize_circuit(bytes);
  CHECK(back.fused_parameters(0).is_run());
  CHECK(back.fused_parameters(1).is_offsets());
  CHECK(back.fused_parameters(2).is_run());
  CHECK_FALSE(back.fused_parameters(3).is_offsets());
  CHECK(back.raw_fused_parameters().size() == 2);
  CHECK(back.raw_fused_parameter_deltas().size() == 2);
  CHECK(back.fused_edge_count() == 7);
  CHECK(std::vector<token_index>(back.fused_parameters(1).begin(), back.fused_parameters(1).end()) == got);
  CHECK(serialize_circuit(back) == bytes);
  const auto vb = evaluate(back, real_semiring{});
  CHECK(vb[to_index(f2)] == v[to_index(f2)]);
  CHECK(vb[to_index(f3)] == v[to_index(f3)]);
  CHECK(vb[to_index(f4)] == v[to_index(f4)]);
}

namespace {
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing fixture ", path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
std::uint64_t u64_at(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}
std::size_t fused_section(const std::string& s) {  // start of section 8
  std::size_t at = 24 + 8 * 8;
  for (int i = 0; i < 7; ++i) at += u64_at(s, 24 + 8 * i);
  return at;
}
void reseal(std::string& s) {
  boost::crc_32_type crc;
  crc.process_bytes(s.data(), s.size() - 4);
  const auto sum = crc.checksum();
  for (int i = 0; i < 4; ++i) s[s.size() - 4 + i] = static_cast<char>((sum >> (8 * i)) & 0xFF);
}
}  // namespace

TEST_CASE("file format: version 2 files (every parameter listed) still read, and rewrite as version 3") {
  const std::string dir = std::string(PROVNN_SOURCE_DIR) + "/fuzz/corpus/circuit_file/";
  for (const char* name : {"tiny_mlp_fused.pvc", "tiny_cnn_fused_ab.pvc"}) {
    CAPTURE(name);
    const std::string v2 = read_bytes(dir + name);
    REQUIRE(static_cast<unsigned char>(v2[8]) == 2);
    const circuit a = deserialize_circuit(v2, name);
    const std::string v3 = serialize_circuit(a);
    CHECK(static_cast<unsigned char>(v3[8]) == 3);
    // Per fused gate, version 2 holds 4n bytes of tokens; version 3 a run's first (4), or a
    // marker, a base and 16-bit offsets padded to 4 (8 + 2n + 2·(n odd)), or a marker and
    // the tokens (4 + 4n).
    std::size_t v2_params = 0, v3_params = 0;
    for (std::size_t i = 0; i < a.fused_gates().size(); ++i) {
      const auto ps = a.fused_parameters(i);
      const std::size_t n = ps.size();
      v2_params += 4 * n;
      v3_params += ps.is_run() ? 4 : ps.is_offsets() ? 8 + 2 * n + (n % 2 ? 2 : 0) : 4 + 4 * n;
    }
    // A bitmap block: ⌈Π shape / 64⌉ words instead of a u32 per token.
    std::size_t bitmap_bytes = 0, listed_offsets = 0;
    for (std::size_t i = 0; i < a.tokens().block_count(); ++i) {
      const auto blk = a.tokens().block_at(i);
      if (!blk.present.is_bitmap()) continue;
      bitmap_bytes += 8 * blk.present.words().size();
      listed_offsets += blk.count;
    }
    CHECK(v3.size() + v2_params + 4 * listed_offsets == v2.size() + v3_params + bitmap_bytes);
    const circuit b = deserialize_circuit(v3, name);
    REQUIRE(a.fused_gates().size() == b.fused_gates().size());
    REQUIRE(!a.fused_gates().empty());
    CHECK(a.fused_edge_count() == b.fused_edge_count());
    for (std::size_t i = 0; i < a.fused_gates().size(); ++i) {
      const auto pa = a.fused_parameters(i), pb = b.fused_parameters(i);
      CHECK(pa.is_run() == pb.is_run());
      CHECK(pa.is_offsets() == pb.is_offsets());
      CHECK(std::equal(pa.begin(), pa.end(), pb.begin(), pb.end()));
    }
    const auto va = evaluate(a, real_semiring{}), vb = evaluate(b, real_semiring{});
    for (const auto& r : a.roots()) CHECK(va[to_index(r.gate)] == vb[to_index(b.find_root(r.name)->gate)]);
    CHECK(serialize_circuit(b) == v3);
  }
}

TEST_CASE("file format: a bitmap block and a run record, and their damage refused under a valid checksum") {
  circuit c;
  auto& tt = c.tokens();
  const auto x = tt.intern(token_kind::input, token_variant::plain, 0, {0});
  tt.set_value(x, 2.0);
  const std::uint32_t shape[] = {3, 5};
  const std::uint8_t j_major[] = {1, 0};
  const std::uint32_t present[] = {0, 1, 2, 4, 6, 9, 11, 14};  // 8 of 15: a bitmap (12 bytes < 32)
  const auto w = tt.add_block(token_kind::parameter, token_variant::plain, 1, shape, j_major, 0, present);
  for (token_index t = w; t < w + 8; ++t) tt.set_value(t, 0.5 + t);
  REQUIRE(tt.block_at(0).present.is_bitmap());
  const auto n0 = tt.intern(token_kind::normaliser, token_variant::plain, 1, {0}, 0);
  const auto n1 = tt.intern(token_kind::normaliser, token_variant::plain, 1, {1}, 0);
  const auto r0 = tt.intern(token_kind::target, token_variant::plain, 0, {0});
  const auto r1 = tt.intern(token_kind::target, token_variant::plain, 0, {1});
  for (auto t : {n0, n1, r0, r1}) tt.set_value(t, 0.25 * t);
  const gate_id s0 = c.scale(c.token(r0), c.token(n0), 0), s1 = c.scale(c.token(r1), c.token(n1), 1);
  const token_index ps[] = {w + 2, w + 3};
  const gate_id ss[] = {s0, s1};
  const gate_id f = c.fused(c.token(x), ps, ss, {1, 0, 0});
  const token_index swapped[] = {w + 3, w + 2};  // not a run: a base and 16-bit offsets
  const gate_id f2 = c.fused(c.token(x), swapped, ss, {1, 0, 1});
  const token_index three[] = {w + 4, w + 2, w + 3};  // an odd count: two bytes of padding
  const gate_id sss[] = {s0, s1, s0};
  const gate_id f3 = c.fused(c.token(x), three, sss, {1, 0, 2});
  c.add_root({"R3", f3});
  REQUIRE(c.fused_parameters(1).is_offsets());
  c.add_root({"R", f});
  c.add_root({"R2", f2});
  const std::string bytes = serialize_circuit(c);
  const circuit back = deserialize_circuit(bytes);
  CHECK(back.tokens().block_at(0).present.is_bitmap());
  CHECK(back.fused_parameters(0).is_run());
  CHECK(back.fused_parameters(0).first() == w + 2);
  CHECK(back.tokens().name(w + 7) == tt.name(w + 7));
  CHECK(evaluate(back, real_semiring{})[to_index(f)] == evaluate(c, real_semiring{})[to_index(f)]);
  CHECK(back.fused_parameters(1).is_offsets());
  CHECK(back.fused_parameters(1)[0] == w + 3);
  CHECK(evaluate(back, real_semiring{})[to_index(f2)] == evaluate(c, real_semiring{})[to_index(f2)]);
  // Section 8: block count u64, then the block (first, count, kind/variant/rank/sparse, layer,
  // term, shape ×2, order ×2 + 2 padding = 32 bytes), its one bitmap word, the fused count u64,
  // then the fused record: gate, layer, lower, term, first.
  const std::size_t sec8 = fused_section(bytes);
  const std::size_t word = sec8 + 8 + 32;
  REQUIRE(static_cast<unsigned char>(bytes[sec8 + 8 + 11]) == 2);  // the sparse flag: bitmap
  REQUIRE(u64_at(bytes, word) == 0b100101001010111u);
  auto damaged = [&](std::size_t at, unsigned char value, const char* message) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(value);
    reseal(bad);
    CHECK_THROWS_WITH_AS(deserialize_circuit(bad, "<test>"), doctest::Contains(message), parse_error);
  };
  damaged(word + 1, 0b11000000 | (0b100101001010111u >> 8), "past its shape");  // bit 15: offset 15 of 15
  damaged(word, 0b01010110, "holds 7 offsets, the block claims 8");             // bit 0 cleared
  damaged(word, 0b01010111 | 0b1000, "more than its 8 tokens");                 // offset 3 added
  damaged(word + 8 + 8 + 16 + 3, 0x7F, "names parameter tokens");               // the run's first: huge
  // The run's bound exactly: first 11 reads tokens 11 and 12 of 13 (accepted), first 12 reads 13.
  {
    std::string edge = bytes;
    edge[word + 8 + 8 + 16] = 11;
    reseal(edge);
    CHECK(deserialize_circuit(edge, "<test>").fused_parameters(0).first() == 11);
  }
  damaged(word + 8 + 8 + 16, 12, "names parameter tokens 12…13, there are 13");
  // The second record: gate, layer, lower, term, the marker 0xFFFFFFFE, base 3, offsets 1 and 0.
  const std::size_t rec2 = word + 8 + 8 + 20;
  REQUIRE(static_cast<unsigned char>(bytes[rec2 + 16]) == 0xFE);
  REQUIRE(static_cast<unsigned char>(bytes[rec2 + 20]) == w + 2);
  REQUIRE(static_cast<unsigned char>(bytes[rec2 + 24]) == 1);
  damaged(rec2 + 25, 0xFF, "names parameter token");  // offset 0xFF01 from base 3: past the 13 tokens
  // The third record (after the second's 16 + 8 + 2·2 bytes): base 3, offsets 2, 0, 1, padding.
  const std::size_t rec3 = rec2 + 28;
  REQUIRE(static_cast<unsigned char>(bytes[rec3 + 16]) == 0xFE);
  REQUIRE(static_cast<unsigned char>(bytes[rec3 + 24]) == 2);
  damaged(rec3 + 31, 0x01, "non-zero padding");
  damaged(rec3 + 23, 0xFF, "names parameter token");  // base 0xFF000003: near 2^32, no wrap
  // A sparse block of no tokens (which add_block would take for a dense one of every
  // coordinate), and a count no values section backs, refused before anything is sized by it.
  damaged(sec8 + 8 + 4, 0, "holds no tokens");
  {
    std::string bad = bytes;
    bad[sec8 + 8 + 4] = static_cast<char>(0xE8);  // count 1000 (0x3E8)
    bad[sec8 + 8 + 5] = 0x03;
    reseal(bad);
    CHECK_THROWS_WITH_AS(deserialize_circuit(bad, "<test>"), doctest::Contains("claim 1000 tokens, the values section holds 13"),
                         parse_error);
  }
  // Flag 2 in a file that says version 2 is unknown there.
  std::string old = bytes;
  old[8] = 2;
  reseal(old);
  CHECK_THROWS_WITH_AS(deserialize_circuit(old, "<test>"), doctest::Contains("unknown sparse flag 2"), parse_error);
}
