// Top-k's fused-gate kernel (topk_semiring::fused_sum, issue 5) against the fold of the
// semiring's own plus and times that every other semiring takes through a fused gate
// (detail::fused_of's generic branch, reached here through a wrapper without fused_sum).
// The kernel prunes and builds monomials late; its values must still be equal, entry for
// entry, at every gate:
//   1. random fused circuits whose token values are drawn from {±½, ±1, ±2, ±4}, so that
//      products tie on |score| everywhere and the ranking falls back to monomials, for
//      k = 1, 2, 3, 10, with valuations whose parameter lists have several entries and with
//      deleted tokens (value 0);
//   2. products that underflow to 0 (values down to 1e-160; the test checks some did);
//   3. wide layers with values over decades and per-unit scales, so that the kernel's guess
//      of each gate's floor (from the previous gate's) fails, holds and lets every term in;
//   4. circuits built by the engine from the bundled models (fused layout), three rules;
//   5. the bundled CNN in the structured layout, whose conv stages top-k sums per lower unit
//      with topk_semiring::term_sums, natural and quantised valuations;
//   6. evaluate_into writing over a buffer left by another valuation and another k (fused
//      and structured gates write their values in place, reusing the lists they find);
//   7. structured stages made by hand: stages whose gates interleave, repeated lower units,
//      several-entry φ and σ, plain gates reading scale gates, a stage over structured
//      values; k within term_sums' budget and past it (the fold), cones and reused buffers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "circuits/circuit.hpp"
#include "circuits/evaluate.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "engine/rules.hpp"
#include "semirings/topk.hpp"

using namespace provnn;

namespace {

/// top-k without its fused kernel: fused gates take the generic fold of plus and times.
struct folded_topk {
  using value_type = topk_list;
  static constexpr std::uint32_t properties = topk_semiring::properties;
  topk_semiring s;
  explicit folded_topk(std::size_t k) : s(k) {}
  value_type zero() const { return s.zero(); }
  value_type one() const { return s.one(); }
  value_type plus(const value_type& a, const value_type& b) const { return s.plus(a, b); }
  value_type times(const value_type& a, const value_type& b) const { return s.times(a, b); }
  value_type lift(token_index t, double v) const { return s.lift(t, v); }
  std::string name() const { return "folded " + s.name(); }
  std::string format(const value_type& a, const token_namer& n = {}) const { return s.format(a, n); }
};
static_assert(semiring<folded_topk> && !has_fused_sum<folded_topk>);
static_assert(has_fused_sum<topk_semiring>);
static_assert(has_term_sums<topk_semiring> && !has_term_sums<folded_topk>);

/// A layered circuit of fused gates (dense, every edge present): widths[0] targets on top,
/// then one fused layer per further width. Token values from `pick`.
template <class Pick>
circuit random_fused(const std::vector<std::uint32_t>& widths, Pick&& pick) {
  circuit c;
  auto& tt = c.tokens();
  std::vector<gate_id> upper;
  for (std::uint32_t k = 0; k < widths[0]; ++k) {
    const auto t = tt.intern(token_kind::target, token_variant::plain, 0, {k});
    tt.set_value(t, pick());
    upper.push_back(c.token(t));
  }
  for (std::uint32_t l = 1; l < widths.size(); ++l) {
    std::vector<gate_id> scaled;
    for (std::uint32_t k = 0; k < upper.size(); ++k) {
      const auto n = tt.intern(token_kind::normaliser, token_variant::plain, l, {k}, 0);
      tt.set_value(n, pick());
      scaled.push_back(c.scale(upper[k], c.token(n), k));
    }
    std::vector<gate_id> lower;
    for (std::uint32_t j = 0; j < widths[l]; ++j) {
      const auto a = tt.intern(token_kind::activation, token_variant::plain, l, {j});
      tt.set_value(a, pick());
      std::vector<token_index> ps;
      for (std::uint32_t k = 0; k < upper.size(); ++k) {
        ps.push_back(tt.intern(token_kind::parameter, token_variant::plain, l, {k, j}));
        tt.set_value(ps.back(), pick());
      }
      lower.push_back(c.fused(c.token(a), ps, scaled, {l, j, 0}));
      c.add_root({fmt::format("R{}[{}]", l, j), lower.back(), root_kind::other});
    }
    upper = std::move(lower);
  }
  return c;
}

/// The circuit the engine builds for one rule everywhere, in the given layout.
circuit engine_circuit(const engine::network& net, const engine::forward_result& fwd, const char* rule,
                       engine::circuit_layout layout) {
  engine::composite comp;
  engine::add_rule_option(comp, rule);
  engine::circuit_options o;
  o.layer_rules = engine::resolve(comp, net);
  o.layout = layout;
  return engine::build_circuit(net, fwd, o);
}

/// The bundled CNN and its forward pass on the bundled input.
struct cnn_run {
  engine::network net;
  engine::forward_result fwd;
};
cnn_run bundled_cnn() {
  const std::filesystem::path data = PROVNN_TEST_DATA_DIR;
  cnn_run r;
  r.net = engine::load_onnx(data / "models/digits_cnn.onnx");
  const auto x = engine::select_sample(engine::read_npy(data / "inputs/cnn_input_0.npy"), r.net.input_shape,
                                       std::nullopt, "cnn_input_0.npy");
  r.fwd = engine::forward(r.net, x);
  return r;
}

/// The tokens' values quantised to {±½, ±1, ±2, ±4} (|score| ties everywhere), every 11th
/// parameter deleted (value 0); `deleted` counts the zero values.
values_of<topk_semiring> quantised_valuation(const circuit& c, const topk_semiring& s, std::size_t& deleted) {
  const double levels[] = {0.5, 1.0, 2.0, 4.0};
  values_of<topk_semiring> v;
  for (token_index t = 0; t < c.tokens().size(); ++t) {
    const double value = c.tokens().value(t);
    const bool zero = value == 0.0 || (t % 11 == 0 && c.tokens().kind(t) == token_kind::parameter);
    deleted += zero;
    v.push_back(s.lift(t, zero ? 0.0 : std::copysign(levels[t % 4], value)));
  }
  return v;
}

/// Every gate's value under the kernel equals the fold's, for the given valuation.
void check_all_gates(const circuit& c, std::size_t k, const values_of<topk_semiring>& valuation) {
  const topk_semiring fast(k);
  const folded_topk slow(k);
  const auto a = evaluate(c, fast, std::span<const packed_topk>(valuation));
  const auto b = evaluate(c, slow, std::span<const packed_topk>(valuation));
  REQUIRE(a.size() == b.size());
  std::size_t differing = 0, first = 0;
  for (std::size_t g = 0; g < a.size(); ++g)
    if (a[g] != b[g] && differing++ == 0) first = g;
  INFO("k = ", k, ", first differing gate ", first, ": kernel ", fast.format(a[first]), ", fold ",
       fast.format(b[first]));
  CHECK(differing == 0);
  // A cone only (evaluate_gates: masked loop, gathered children over skipped gates, stage
  // sums for the wanted lower units, values released after their last use): every third root.
  std::vector<gate_id> some;
  for (std::size_t r = 0; r < c.roots().size(); r += 3) some.push_back(c.roots()[r].gate);
  const auto ca = evaluate_gates(c, fast, std::span<const packed_topk>(valuation), some);
  const auto cb = evaluate_gates(c, slow, std::span<const packed_topk>(valuation), some);
  REQUIRE(ca.size() == some.size());
  std::size_t cone_differing = 0;
  for (std::size_t r = 0; r < some.size(); ++r) {
    cone_differing += ca[r] != cb[r];
    cone_differing += ca[r] != a[to_index(some[r])];
  }
  CHECK(cone_differing == 0);
}

}  // namespace

TEST_CASE("top-k fused kernel = fold of plus and times, with ties on |score| everywhere") {
  std::mt19937_64 rng(20261130);
  const double levels[] = {0.5, 1.0, 2.0, 4.0};
  auto pick = [&] { return levels[rng() % 4] * ((rng() & 1) ? 1.0 : -1.0); };
  std::size_t nonempty_roots = 0, ties = 0;
  for (int trial = 0; trial < 6; ++trial) {
    const circuit c = random_fused({3, 7, 9, 5}, pick);
    for (std::size_t k : {1, 2, 3, 10}) {
      const topk_semiring s(k);
      // The lifting of the natural valuation: one entry per token.
      auto v = lift_valuation(c, s);
      check_all_gates(c, k, v);
      // Parameters whose lists hold several entries (plus of two or three lifted tokens),
      // and some tokens deleted (value 0 lifts to the empty list).
      for (token_index t = 0; t < v.size(); ++t) {
        const auto r = rng() % 8;
        if (r == 0) v[t] = s.zero();
        if (r == 1 || r == 2) v[t] = s.plus(v[t], s.lift((t + 1) % v.size(), pick()));
        if (r == 3) v[t] = s.plus(s.plus(v[t], s.lift((t + 2) % v.size(), pick())), s.lift(t, pick()));
      }
      check_all_gates(c, k, v);
      const auto values = evaluate(c, s, std::span<const packed_topk>(v));
      for (const auto& root : c.roots()) {
        const auto e = topk_list(values[to_index(root.gate)]).entries;
        nonempty_roots += !e.empty();
        for (std::size_t i = 1; i < e.size(); ++i) ties += std::fabs(e[i].score) == std::fabs(e[i - 1].score);
      }
    }
  }
  // The test must exercise what it claims: lists reach the roots and the ranking ties.
  CHECK(nonempty_roots > 100);
  CHECK(ties > 100);
}

TEST_CASE("top-k fused kernel: products that underflow to 0 are dropped, as times drops them") {
  std::mt19937_64 rng(7);
  const double levels[] = {1e-160, 1e-150, 1.0, 3.0};
  auto pick = [&] { return levels[rng() % 4] * ((rng() & 1) ? 1.0 : -1.0); };
  const circuit c = random_fused({2, 6, 6}, pick);
  for (std::size_t k : {1, 4, 10}) check_all_gates(c, k, lift_valuation(c, topk_semiring(k)));
  // No token is zero, so a fused gate with an empty list lost every product to underflow;
  // the case must have happened (and not everywhere).
  const auto v = evaluate(c, topk_semiring(4));
  std::size_t empty = 0, full = 0;
  for (auto g : c.fused_gates()) (v[to_index(g)].empty() ? empty : full) += 1;
  CHECK(empty > 0);
  CHECK(full > 0);
}

TEST_CASE("top-k fused kernel = fold on wide layers, where the floor's guess fails, holds, or lets many through") {
  // Wide layers (n up to 64 terms per gate, more than k), continuous values over six decades
  // (few ties): the kernel finds each gate's floor among the terms that reach a guess from
  // the previous gate's floor. Parameters are scaled per lower unit j by scale(j): units
  // whose scale is far below the previous unit's get a guess above every one of their
  // bounds (the guess is lowered, then every term taken), units far above it let every term
  // through the guess, and equal scales hit it. k = 20 takes the general selection (k > 16).
  std::mt19937_64 rng(20261203);
  std::uniform_real_distribution<double> decades(-3.0, 3.0);
  auto pick = [&] { return std::pow(10.0, decades(rng)) * ((rng() & 1) ? 1.0 : -1.0); };
  const std::vector<std::uint32_t> widths{5, 64, 48, 40};
  const double scales[] = {1.0, 1e-40, 1.0, 1.0, 1e40, 1e-3, 1.0};  // by j mod 7
  for (int trial = 0; trial < 2; ++trial) {
    circuit c = random_fused(widths, pick);
    auto& tt = c.tokens();
    std::vector<std::uint32_t> buffer;
    for (token_index t = 0; t < tt.size(); ++t)
      if (tt.kind(t) == token_kind::parameter) tt.set_value(t, tt.value(t) * scales[tt.index(t, buffer)[1] % 7]);
    for (std::size_t k : {1, 3, 10, 16, 17, 20}) check_all_gates(c, k, lift_valuation(c, topk_semiring(k)));
    // The same values quantised to powers of two (ties on |score| everywhere), at the widths
    // of the selection's fixed lanes (16) and just past them (17).
    for (std::size_t k : {10, 16, 17}) {
      const topk_semiring s(k);
      values_of<topk_semiring> q;
      for (token_index t = 0; t < tt.size(); ++t)
        q.push_back(s.lift(t, std::exp2(std::round(std::log2(std::fabs(tt.value(t))) / 8)) *
                                  (tt.value(t) < 0 ? -1.0 : 1.0)));
      check_all_gates(c, k, q);
    }
  }
}

TEST_CASE("top-k fused kernel = fold on circuits the engine builds from the bundled models") {
  const std::filesystem::path data = PROVNN_TEST_DATA_DIR;
  const std::pair<const char*, const char*> models[] = {
      {"models/digits_mlp.onnx", "inputs/mlp_input_0.npy"},
      {"models/digits_cnn.onnx", "inputs/cnn_input_0.npy"},
  };
  for (const auto& [model, input] : models) {
    const auto net = engine::load_onnx(data / model);
    const auto x = engine::select_sample(engine::read_npy(data / input), net.input_shape, std::nullopt,
                                         input);
    const auto fwd = engine::forward(net, x);
    for (const char* rule : {"epsilon", "zplus", "alphabeta"}) {
      CAPTURE(model);
      CAPTURE(rule);
      const circuit c = engine_circuit(net, fwd, rule, engine::circuit_layout::fused);
      REQUIRE(has_fused_gates(c));
      check_all_gates(c, 10, lift_valuation(c, topk_semiring(10)));
    }
  }
}

TEST_CASE("top-k structured stages (term_sums) = fold, on the bundled CNN, with and without ties on |score|") {
  // The structured layout's conv stages visit their edges upper unit by upper unit; top-k
  // keeps each lower unit's k best candidates (topk_semiring::term_sums) where the fold
  // builds a list per edge. Every gate must agree, under the natural valuation and under one
  // quantised to {±½, ±1, ±2, ±4} with some tokens deleted (ties everywhere, zero lists).
  const auto [net, fwd] = bundled_cnn();
  for (const char* rule : {"epsilon", "zplus"}) {
    CAPTURE(rule);
    const circuit c = engine_circuit(net, fwd, rule, engine::circuit_layout::structured);
    REQUIRE(!c.structured_gates().empty());
    for (std::size_t k : {1, 3, 10, 17}) check_all_gates(c, k, lift_valuation(c, topk_semiring(k)));
    const topk_semiring s(10);
    std::size_t deleted = 0;
    const auto v = quantised_valuation(c, s, deleted);
    CHECK(deleted > 0);
    check_all_gates(c, 10, v);
    // The quantised sums must tie on |score| (else the ranking's monomial order is untested).
    // (Only weights are deleted: a deleted target or activation would empty whole cones.)
    const auto values = evaluate(c, s, std::span<const packed_topk>(v));
    std::size_t ties = 0, entries = 0;
    for (const auto g : c.structured_gates()) {
      const auto e = topk_list(values[to_index(g)]).entries;
      entries += e.size();
      for (std::size_t i = 1; i < e.size(); ++i) ties += std::fabs(e[i].score) == std::fabs(e[i - 1].score);
    }
    INFO("entries ", entries, " in ", c.structured_gates().size(), " structured gates");
    CHECK(ties > 100);
  }
}

TEST_CASE("top-k term_sums holds at most max_candidates candidates: a larger stage is folded instead") {
  using sums = topk_semiring::term_sums;
  const topk_semiring ten(10), big(topk_semiring::max_k);
  CHECK(sums::fits(ten, sums::max_candidates / 10));
  CHECK_FALSE(sums::fits(ten, sums::max_candidates / 10 + 1));
  CHECK(sums::fits(big, sums::max_candidates / topk_semiring::max_k));
  CHECK_FALSE(sums::fits(big, 4704));  // lenet5's first stage: 4 704 lower units × 100 000
}

TEST_CASE("top-k evaluate_into over a used buffer = a fresh evaluation, fused and structured") {
  // Fused and structured gates write their values into the slots they find (list_for_writing),
  // reusing the lists and monomials of the previous evaluation: a buffer left by another
  // valuation (other lengths, other monomials, empty and one-entry values) or another k must
  // not leak into the next values.
  const auto [net, fwd] = bundled_cnn();
  for (const auto layout : {engine::circuit_layout::fused, engine::circuit_layout::structured}) {
    CAPTURE(static_cast<int>(layout));
    const circuit c = engine_circuit(net, fwd, "epsilon", layout);
    values_of<topk_semiring> buf;
    std::size_t deleted = 0, runs = 0, differing = 0;
    for (const std::size_t k : {17, 3, 10, 1, 10}) {
      const topk_semiring s(k);
      const bool quantised = runs++ % 2 == 1;
      const auto v = quantised ? quantised_valuation(c, s, deleted) : lift_valuation(c, s);
      evaluate_into(c, s, std::span<const packed_topk>(v), buf);
      const auto fresh = evaluate(c, s, std::span<const packed_topk>(v));
      REQUIRE(buf.size() == fresh.size());
      for (std::size_t g = 0; g < buf.size(); ++g) differing += buf[g] != fresh[g];
    }
    CHECK(deleted > 0);
    CHECK(differing == 0);
  }
}

TEST_CASE("top-k structured stages by hand: interleaved stages, repeated units, long lists, term_sums and its fallback") {
  // Small conv stages (2×3×3 → 2×2×2, 2×2 kernels, 18 lower units) whose structured gates come
  // in random order across two or three stages (so several stages' term_sums are alive at
  // once), some twice for one lower unit; φ and the scaled values are tokens or sums of two or
  // three (lists of several entries), some tokens 0, values quantised every other trial (ties);
  // plain gates read scale gates between structured gates; a last stage reads sums of
  // structured values. k = 60 000 puts 18 × 60 000 candidates past term_sums' budget (2^20),
  // so those stages take the fold. Every gate, random cones and a reused buffer are compared
  // with the fold.
  std::mt19937_64 rng(20261203);
  std::size_t gates = 0, differing = 0, cones = 0;
  std::uint32_t next = 0;
  for (int trial = 0; trial < 60; ++trial) {
    circuit c;
    auto& tt = c.tokens();
    const bool quantised = trial % 2 == 1;
    const auto value = [&] {
      const double levels[] = {0.5, 1.0, 2.0, 4.0};
      double v = quantised ? levels[rng() % 4] : std::ldexp(static_cast<double>(rng() % 1000 + 1) / 1000.0, static_cast<int>(rng() % 5) - 2);
      if (rng() % 9 == 0) v = 0.0;
      return rng() % 2 ? v : -v;
    };
    const auto token = [&](token_kind kind) {
      const auto t = tt.intern(kind, token_variant::plain, 1, {next++});
      tt.set_value(t, value());
      return t;
    };
    const auto operand = [&] {  // a token, or a sum of two or three (a list of several entries)
      const std::size_t n = 1 + rng() % 3;
      std::vector<gate_id> ts;
      for (std::size_t i = 0; i < n; ++i) ts.push_back(c.token(token(token_kind::activation)));
      return n == 1 ? ts[0] : c.plus(std::span<const gate_id>(ts));
    };
    conv_geometry g;
    g.in_channels = 2, g.in_h = 3, g.in_w = 3, g.out_channels = 2, g.out_h = 2, g.out_w = 2;
    g.kernel_h = 2, g.kernel_w = 2;
    std::vector<gate_id> scaled;  // every scale gate made
    const auto stage = [&](const std::vector<gate_id>& upper) {
      conv_stage st;
      st.layer = 1;
      st.geometry = g;
      st.parameters = tt.size();
      for (std::size_t p = 0; p < g.weights(); ++p) token(token_kind::parameter);
      st.present.resize(g.weights());
      for (auto& x : st.present) x = rng() % 5 != 0;
      st.scaled.assign(g.outputs(), zero_gate);
      for (std::size_t k = 0; k < g.outputs(); ++k)
        if (rng() % 6 != 0) {
          st.scaled[k] = c.scale(upper[k], c.token(token(token_kind::normaliser)), k);
          scaled.push_back(st.scaled[k]);
        }
      return c.add_conv_stage(std::move(st));
    };
    std::vector<gate_id> upper;
    for (std::size_t k = 0; k < g.outputs(); ++k) upper.push_back(operand());
    std::vector<std::uint32_t> stages;
    for (std::size_t n = 2 + rng() % 2; stages.size() < n;) stages.push_back(stage(upper));
    std::vector<std::pair<std::uint32_t, std::uint32_t>> order;  // (stage, lower unit)
    for (const auto st : stages)
      for (std::uint32_t j = 0; j < g.inputs(); ++j) {
        if (rng() % 4 == 0) continue;
        order.push_back({st, j});
        if (rng() % 5 == 0) order.push_back({st, j});
      }
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<gate_id> lower(g.inputs(), zero_gate), structured;
    for (const auto& [st, j] : order) {
      const gate_id x = c.structured(rng() % 4 == 0 ? operand() : c.token(token(token_kind::activation)), st, j);
      structured.push_back(x);
      if (rng() % 7 == 0) {  // a plain gate reading a scale gate between structured gates
        const gate_id y = c.times({scaled[rng() % scaled.size()], operand()});
        c.add_root({fmt::format("p{}", to_index(y)), y, root_kind::other});
      }
      lower[j] = lower[j] == zero_gate ? x : c.plus({lower[j], x});
    }
    std::vector<gate_id> upper2;  // a stage over structured values
    for (std::size_t k = 0; k < g.outputs(); ++k) {
      const gate_id x = lower[(k * 7 + static_cast<std::size_t>(trial)) % lower.size()];
      upper2.push_back(x == zero_gate ? operand() : x);
    }
    const auto last = stage(upper2);
    for (std::uint32_t j = 0; j < g.inputs(); ++j)
      if (rng() % 3 != 0) {
        const gate_id x = c.structured(c.token(token(token_kind::activation)), last, j);
        c.add_root({fmt::format("s{}", to_index(x)), x, root_kind::other});
      }
    for (const auto x : structured)
      if (rng() % 3 == 0) c.add_root({fmt::format("r{}", to_index(x)), x, root_kind::other});
    if (c.roots().empty()) continue;
    for (const std::size_t k : {1, 2, 3, 7, 60000}) {
      CHECK(topk_semiring::term_sums::fits(topk_semiring(k), g.inputs()) == (k != 60000));
      const topk_semiring fast(k);
      const auto v = lift_valuation(c, fast);
      const std::span<const packed_topk> vs(v);
      const auto a = evaluate(c, fast, vs);
      const auto b = evaluate(c, folded_topk(k), vs);
      gates += a.size();
      for (std::size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i];
      auto buf = evaluate(c, topk_semiring(k == 1 ? 5 : 1), vs);
      evaluate_into(c, fast, vs, buf);
      for (std::size_t i = 0; i < a.size(); ++i) differing += buf[i] != b[i];
      for (int r = 0; r < 3; ++r, ++cones) {
        std::vector<gate_id> some;
        for (const auto& root : c.roots())
          if (rng() % 3 == 0) some.push_back(root.gate);
        if (some.empty()) some.push_back(c.roots()[0].gate);
        const auto part = evaluate_gates(c, fast, vs, some);
        for (std::size_t i = 0; i < some.size(); ++i) differing += part[i] != b[to_index(some[i])];
      }
    }
  }
  INFO(gates, " gates, ", cones, " cones");
  CHECK(gates > 10000);
  CHECK(differing == 0);
}
