// Numeric LRP (engine/lrp.hpp) on hand-built networks with hand-written forward passes:
// every rule and bias mode worked out by hand, conservation identities, convolutions
// against their unrolled dense matrix, pooling.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "engine/conv_gemm.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "tests/engine/engine_test_util.hpp"

using namespace provnn::engine;

namespace {

constexpr double e = 1e-6;  // the stabiliser of every non-ε rule and the default ε

doctest::Approx near(double v) { return doctest::Approx(v).epsilon(1e-12); }

layer make_dense(std::vector<double> w, std::vector<double> b, std::size_t in, std::size_t out,
                 std::string name = "fc") {
  layer l;
  l.name = std::move(name);
  l.op_type = "Gemm";
  dense_op d;
  d.in = in;
  d.out = out;
  d.weight = std::move(w);
  d.bias = std::move(b);
  l.op = std::move(d);
  l.in_shape = {in};
  l.out_shape = {out};
  return l;
}

layer make_relu(shape_t s) {
  layer l;
  l.name = "relu";
  l.op_type = "Relu";
  l.op = relu_op{};
  l.in_shape = s;
  l.out_shape = s;
  return l;
}

// ---- the 2-2-1 network used for the hand computations ---------------------------------
//
//   x = (2, −1)
//   layer 0 (dense): W0 = [[1, −2], [3, 1]] (row k = weights of unit k), b0 = (−1, 0.5)
//       z0 = (1·2 + (−2)(−1) − 1, 3·2 + 1·(−1) + 0.5) = (3, 5.5)
//   layer 1 (ReLU): h = (3, 5.5)
//   layer 2 (dense): W1 = [[1, −0.5]], b1 = (0.25):  y = 3 − 2.75 + 0.25 = 0.5
// Target: the only class, score 0.5, initial relevance R_y = 0.5.
network net221() {
  network n;
  n.source = "net221";
  n.input_shape = {2};
  n.layers.push_back(make_dense({1, -2, 3, 1}, {-1, 0.5}, 2, 2, "fc0"));
  n.layers.push_back(make_relu({2}));
  n.layers.push_back(make_dense({1, -0.5}, {0.25}, 2, 1, "fc1"));
  return n;
}

forward_result fwd221() {
  forward_result f;
  f.activations = {{2, -1}, {3, 5.5}, {3, 5.5}, {0.5}};
  f.argmax.resize(3);
  return f;
}

lrp_result run221(const rule& r0, const rule& r1, bias_mode b) {
  lrp_options o;
  o.layer_rules = {r0, r1};
  o.bias = b;
  return lrp(net221(), fwd221(), o);
}

/// Checks input relevance, hidden relevance (both sides of the ReLU), per-unit bias shares
/// and their total against hand values.
void check221(const lrp_result& r, std::vector<double> rx, std::vector<double> rh, std::vector<double> b0,
              double b1) {
  REQUIRE(r.relevance.size() == 4);
  REQUIRE(r.target.has_value());
  CHECK(*r.target == 0);
  CHECK(r.score == 0.5);
  CHECK(r.relevance[3] == std::vector<double>{0.5});
  for (int i : {1, 2}) {
    REQUIRE(r.relevance[i].size() == 2);
    CHECK(r.relevance[i][0] == near(rh[0]));
    CHECK(r.relevance[i][1] == near(rh[1]));
  }
  REQUIRE(r.relevance[0].size() == 2);
  CHECK(r.relevance[0][0] == near(rx[0]));
  CHECK(r.relevance[0][1] == near(rx[1]));
  REQUIRE(r.bias_relevance.size() == 2);
  REQUIRE(r.bias_relevance[0].size() == 2);
  REQUIRE(r.bias_relevance[1].size() == 1);
  CHECK(r.bias_relevance[0][0] == near(b0[0]));
  CHECK(r.bias_relevance[0][1] == near(b0[1]));
  CHECK(r.bias_relevance[1][0] == near(b1));
  CHECK(r.bias_share == near(b0[0] + b0[1] + b1));
}

// ---- a one-layer network 2 → 4 with units of every sign --------------------------------
//
//   x = (2, −1), W = [[1, −2], [−3, 1], [1, 2], [1, 1]], b = (−1, 0.5, 0, −2)
//   z = (2 + 2 − 1, −6 − 1 + 0.5, 2 − 2 + 0, 2 − 1 − 2) = (3, −6.5, 0, −1)
// Initial relevance (given as a vector): (1, 1, 1, 1).
network net24() {
  network n;
  n.source = "net24";
  n.input_shape = {2};
  n.layers.push_back(make_dense({1, -2, -3, 1, 1, 2, 1, 1}, {-1, 0.5, 0, -2}, 2, 4));
  return n;
}

forward_result fwd24() {
  forward_result f;
  f.activations = {{2, -1}, {3, -6.5, 0, -1}};
  f.argmax.resize(1);
  return f;
}

lrp_result run24(const rule& r, bias_mode b) {
  lrp_options o;
  o.layer_rules = {r};
  o.bias = b;
  o.target = std::vector<double>{1, 1, 1, 1};
  return lrp(net24(), fwd24(), o);
}

}  // namespace

TEST_CASE("2-2-1, LRP-0 (zero): hand values, and with biases kept it is gradient x input") {
  // Biases kept. Top: c = R_y / z_y = 0.5 / 0.5 = 1, R_h = h·w·c = (3, −2.75), bias 0.25.
  // Layer 0: c0 = 3/3 = 1, c1 = −2.75/5.5 = −0.5.
  //   R_x0 = 2·(1·c0 + 3·c1) = −1,  R_x1 = −1·(−2·c0 + 1·c1) = 2.5,  bias = (−c0, 0.5·c1) = (−1, −0.25).
  // Gradient × input: ∂y/∂x = [1, −0.5]·W0 = (−0.5, −2.5), times x = (−1, 2.5). Same.
  check221(run221(rules::zero(), rules::zero(), bias_mode::kept), {-1, 2.5}, {3, -2.75}, {-1, -0.25}, 0.25);
  // Biases zeroed. Top: z = 3 − 2.75 = 0.25, c = 2, R_h = (6, −5.5).
  // Layer 0: z = (2 + 2, 6 − 1) = (4, 5): c0 = 6/4 = 1.5, c1 = −5.5/5 = −1.1.
  //   R_x0 = 2·(1.5 − 3.3) = −3.6,  R_x1 = −1·(−3 − 1.1) = 4.1   (Σ = 0.5: exact conservation).
  check221(run221(rules::zero(), rules::zero(), bias_mode::zeroed), {-3.6, 4.1}, {6, -5.5}, {0, 0}, 0);
}

TEST_CASE("2-2-1 in fp32: LRP-0's hand values (exact in float with biases kept), and fp32's own errors") {
  const network net = net221();
  const float32_parameters p = to_float32(net);
  const forward_result_f32 f = forward(net, p, std::vector<double>{2, -1});
  REQUIRE(f.activations.size() == 4);
  CHECK(f.activations[1] == std::vector<float>{3, 5.5});
  CHECK(f.output() == std::vector<float>{0.5});
  lrp_options o;
  o.layer_rules = {rules::zero(), rules::zero()};
  // The values of the LRP-0 case above: every step is exact in float (1, −0.5, −1, 2.5).
  lrp_result_f32 r = lrp(net, p, f, o);
  CHECK(r.score == 0.5);
  CHECK(r.relevance[2] == std::vector<float>{3, -2.75});
  CHECK(r.input_relevance() == std::vector<float>{-1, 2.5});
  CHECK(r.bias_relevance[0] == std::vector<float>{-1, -0.25});
  CHECK(r.bias_share == 0.25 - 1.25);
  // Biases zeroed: c1 = −5.5/5 = −1.1 is not a float, so R_x are float's rounding of (−3.6, 4.1).
  o.bias = bias_mode::zeroed;
  r = lrp(net, p, f, o);
  // Replayed in float by hand: c1 = fl(−5.5/5) = −1.10000002, acc = fl(1·1.5 + fl(3·c1)) =
  // fl(1.5 − 3.30000019) = −1.80000019, R_x0 = 2·acc = −3.60000038 — where double arithmetic
  // rounded to float once would give fl(−3.6) = −3.5999999.
  CHECK(r.input_relevance()[0] == -3.60000038f);
  CHECK(r.input_relevance()[0] != static_cast<float>(-3.6));
  CHECK(r.input_relevance()[1] == doctest::Approx(4.1).epsilon(1e-6));

  // Rule parameters must be floats too: beyond float's range, or a nonzero one rounding to 0.
  o.bias = bias_mode::kept;
  o.layer_rules = {rules::gamma(1e39), rules::zero()};
  provnn::test::check_throws_with<provnn::error>([&] { lrp(net, p, f, o); },
                                                 {"linear layer 0", "'fc0'", "gamma 1e+39 is beyond float32's range"});
  o.layer_rules = {rules::zero(), rules::epsilon(1e-50)};
  provnn::test::check_throws_with<provnn::error>([&] { lrp(net, p, f, o); },
                                                 {"linear layer 1", "'fc1'", "epsilon 1e-50 rounds to 0", "fp64"});
  o.layer_rules = {rules::zbox(zbox_bound{-1e39, {}, {}}, zbox_bound{1, {}, {}}), rules::zero()};
  provnn::test::check_throws_with<provnn::error>([&] { lrp(net, p, f, o); }, {"linear layer 0", "zbox bound L -1e+39"});
  o.layer_rules = {rules::zero(), rules::zero()};
  o.pool_epsilon = 1e-50;
  provnn::test::check_throws_with<provnn::error>([&] { lrp(net, p, f, o); }, {"pool_epsilon 1e-50 rounds to 0"});
  o.pool_epsilon = 1e-6;
  // In fp64 the same parameters are fine.
  o.layer_rules = {rules::gamma(1e39), rules::epsilon(1e-50)};
  CHECK_NOTHROW(lrp(net, fwd221(), o));
  o.layer_rules = {rules::zero(), rules::zero()};

  o.target = std::vector<double>{1e39};
  provnn::test::check_throws_with<provnn::error>([&] { lrp(net, p, f, o); }, {"initial relevance value 0", "float32"});
  o.target = predicted_class{};
  provnn::test::check_throws_with<provnn::error>([&] { lrp(net, float32_parameters{}, f, o); },
                                         {"float32 parameters have 0 weight", "to_float32"});
}

TEST_CASE("2-2-1, epsilon: default 1e-6 and 0.1, both bias modes") {
  {  // ε = 1e-6, kept: c = 0.5/(0.5+ε), R_h = (3c, −2.75c); c0 = 3c/(3+ε), c1 = −2.75c/(5.5+ε).
    const double c = 0.5 / (0.5 + e), c0 = 3 * c / (3 + e), c1 = -2.75 * c / (5.5 + e);
    check221(run221(rules::epsilon(), rules::epsilon(), bias_mode::kept), {2 * (c0 + 3 * c1), 2 * c0 - c1},
             {3 * c, -2.75 * c}, {-c0, 0.5 * c1}, 0.25 * c);
  }
  {  // ε = 0.1, kept.
    const double c = 0.5 / 0.6, c0 = 3 * c / 3.1, c1 = -2.75 * c / 5.6;
    check221(run221(rules::epsilon(0.1), rules::epsilon(0.1), bias_mode::kept), {2 * (c0 + 3 * c1), 2 * c0 - c1},
             {3 * c, -2.75 * c}, {-c0, 0.5 * c1}, 0.25 * c);
  }
  {  // ε = 0.1, zeroed: denominators 0.25, 4, 5 (see the zero test) plus ε.
    const double c = 0.5 / 0.35, c0 = 3 * c / 4.1, c1 = -2.75 * c / 5.1;
    check221(run221(rules::epsilon(0.1), rules::epsilon(0.1), bias_mode::zeroed), {2 * (c0 + 3 * c1), 2 * c0 - c1},
             {3 * c, -2.75 * c}, {0, 0}, 0);
  }
}

TEST_CASE("2-2-1, zplus: only positive contributions, bias b+ only") {
  // Top: inputs h ≥ 0, z⁺ = 3·1 + 5.5·0 + b⁺ = 3.25 (kept) or 3 (zeroed); R_h = (3c, 0).
  // Layer 0, unit 0 (w = (1, −2), b = −1): z⁺ = a⁺w⁺ + a⁻w⁻ = 2·1 + (−1)(−2) + b⁺(0) = 4;
  // unit 1 has no relevance. R_x0 = a⁺·w⁺·c0 = 2c0, R_x1 = a⁻·w⁻·c0 = 2c0; b⁺ = 0 absorbs nothing.
  {
    const double c = 0.5 / (3.25 + e), c0 = 3 * c / (4 + e);
    check221(run221(rules::zplus(), rules::zplus(), bias_mode::kept), {2 * c0, 2 * c0}, {3 * c, 0}, {0, 0}, 0.25 * c);
  }
  {
    const double c = 0.5 / (3 + e), c0 = 3 * c / (4 + e);
    check221(run221(rules::zplus(), rules::zplus(), bias_mode::zeroed), {2 * c0, 2 * c0}, {3 * c, 0}, {0, 0}, 0);
  }
}

TEST_CASE("2-2-1, alphabeta 2,1: positive and negative shares, and a unit with z- = 0 has no negative share") {
  {
    // Kept. Top: z⁺ = 3 + 0.25 = 3.25, z⁻ = 5.5·(−0.5) = −2.75.
    //   cp = α·R/stab(z⁺) = 1/(3.25+ε), cn = −β·R/stab(z⁻) = 0.5/(2.75+ε).
    //   R_h0 = 3·(w⁺cp) = 3cp, R_h1 = 5.5·(w⁻cn) = −2.75cn, bias b⁺cp = 0.25cp.
    // Layer 0 (a = (2, −1)): unit 0 (w = (1, −2), b = −1): z⁺ = 2 + 2 = 4, z⁻ = b⁻ = −1;
    //   unit 1 (w = (3, 1), b = 0.5): z⁺ = 6 + 0.5 = 6.5, z⁻ = a⁻w⁺ = −1.
    //   cp_k = 2r_k/stab(z⁺_k), cn_k = −r_k/stab(z⁻_k) = r_k/(1+ε).
    //   R_x0 = a⁺·Σ(w⁺cp + w⁻cn) = 2(cp0 + 3cp1); R_x1 = a⁻·Σ(w⁻cp + w⁺cn) = −(−2cp0 + cn1).
    //   bias: unit 0 b⁻cn0 = −cn0, unit 1 b⁺cp1 = 0.5cp1.
    const double cp = 1 / (3.25 + e), cn = 0.5 / (2.75 + e);
    const double r0 = 3 * cp, r1 = -2.75 * cn;
    const double cp0 = 2 * r0 / (4 + e), cn0 = r0 / (1 + e), cp1 = 2 * r1 / (6.5 + e), cn1 = r1 / (1 + e);
    check221(run221(rules::alphabeta(), rules::alphabeta(), bias_mode::kept), {2 * (cp0 + 3 * cp1), 2 * cp0 - cn1},
             {r0, r1}, {-cn0, 0.5 * cp1}, 0.25 * cp);
  }
  {
    // Zeroed. Top: z⁺ = 3, z⁻ = −2.75. Layer 0: unit 0 has z⁻ = 0 (no negative part at all):
    // it contributes α·r0 through its positive part only; unit 1: z⁺ = 6, z⁻ = −1.
    const double cp = 1 / (3 + e), cn = 0.5 / (2.75 + e);
    const double r0 = 3 * cp, r1 = -2.75 * cn;
    const double cp0 = 2 * r0 / (4 + e), cp1 = 2 * r1 / (6 + e), cn1 = r1 / (1 + e);
    check221(run221(rules::alphabeta(), rules::alphabeta(), bias_mode::zeroed), {2 * (cp0 + 3 * cp1), 2 * cp0 - cn1},
             {r0, r1}, {0, 0}, 0);
  }
  {  // alphabeta:1,0 is zplus.
    const auto ab = run221(rules::alphabeta(1, 0), rules::alphabeta(1, 0), bias_mode::kept);
    const auto zp = run221(rules::zplus(), rules::zplus(), bias_mode::kept);
    CHECK(ab.relevance[0][0] == near(zp.relevance[0][0]));
    CHECK(ab.relevance[0][1] == near(zp.relevance[0][1]));
    CHECK(ab.bias_share == near(zp.bias_share));
  }
}

TEST_CASE("2-2-1, gamma 0.25: boosted positive weights and bias") {
  {
    // Kept. Top (z = 0.5 > 0, h ≥ 0): d = 3·(1 + 0.25) + 5.5·(−0.5) + (0.25 + 0.25·0.25) = 1.3125,
    //   c = 0.5/(d+ε), R_h = (3·1.25c, 5.5·(−0.5)c) = (3.75c, −2.75c), bias 0.3125c.
    // Layer 0 (both z > 0): unit 0: 2·1.25 + (−1)·(−2 − 0.5) + (−1) = 4; unit 1: 2·3.75 + (−1)·1 + 0.625 = 7.125.
    //   R_x0 = a⁺·Σ(w+γw⁺)c = 2(1.25c0 + 3.75c1); R_x1 = a⁻·Σ(w+γw⁻)c = −(−2.5c0 + c1).
    //   bias (b+γb⁺)c: (−c0, 0.625c1).
    const double c = 0.5 / (1.3125 + e), r0 = 3.75 * c, r1 = -2.75 * c;
    const double c0 = r0 / (4 + e), c1 = r1 / (7.125 + e);
    check221(run221(rules::gamma(), rules::gamma(), bias_mode::kept), {2 * (1.25 * c0 + 3.75 * c1), 2.5 * c0 - c1},
             {r0, r1}, {-c0, 0.625 * c1}, 0.3125 * c);
  }
  {
    // Zeroed: top d = 3.75 − 2.75 = 1; layer 0: d0 = 2.5 + 2.5 = 5, d1 = 7.5 − 1 = 6.5.
    const double c = 0.5 / (1 + e), r0 = 3.75 * c, r1 = -2.75 * c;
    const double c0 = r0 / (5 + e), c1 = r1 / (6.5 + e);
    check221(run221(rules::gamma(), rules::gamma(), bias_mode::zeroed), {2 * (1.25 * c0 + 3.75 * c1), 2.5 * c0 - c1},
             {r0, r1}, {0, 0}, 0);
  }
}

TEST_CASE("2-2-1, zbox on the first layer (scalar and per-feature bounds), LRP-0 above") {
  // Above: LRP-0, R_h = (3, −2.75) kept / (6, −5.5) zeroed (see the zero test).
  // z^B with l = −1, h = 2: unit 0 (w = (1, −2)): (2·1 + 1·1 − 0) + (2 − 0 + 2·2) = 9;
  //   unit 1 (w = (3, 1)): (6 + 3) + (−1 + 1) = 9.
  //   R_x0 = a0Σwc − l0Σw⁺c − h0Σw⁻c = 2(c0 + 3c1) + (c0 + 3c1) = 3(c0 + 3c1);
  //   R_x1 = −(−2c0 + c1) + (c1) − 2(−2c0) = 6c0. No bias share in either mode.
  for (bias_mode bm : {bias_mode::kept, bias_mode::zeroed}) {
    const bool kept = bm == bias_mode::kept;
    const double r0 = kept ? 3 : 6, r1 = kept ? -2.75 : -5.5;
    const double c0 = r0 / (9 + e), c1 = r1 / (9 + e);
    check221(run221(rules::zbox(-1, 2), rules::zero(), bm), {3 * (c0 + 3 * c1), 6 * c0}, {r0, r1}, {0, 0},
             kept ? 0.25 : 0);
  }
  // Per-feature l = (−1, −3), h = (2, 0.5): unit 0: (2 + 1) + (2 + 0.5·2) = 6; unit 1: (6 + 3) + (−1 + 3) = 11.
  //   R_x0 = 3(c0 + 3c1) (as above: l0, h0 unchanged); R_x1 = −(−2c0 + c1) + 3c1 − 0.5(−2c0) = 3c0 + 2c1.
  zbox_bound lo, hi;
  lo.values = {-1, -3};
  hi.values = {2, 0.5};
  const double c0 = 3 / (6 + e), c1 = -2.75 / (11 + e);
  check221(run221(rules::zbox(lo, hi), rules::zero(), bias_mode::kept), {3 * (c0 + 3 * c1), 3 * c0 + 2 * c1},
           {3, -2.75}, {0, 0}, 0.25);
}

TEST_CASE("2-2-1, flat and wsquare") {
  // flat: fan-in 2 everywhere; top c = 0.5/(2+ε), R_h = (c, c); layer 0: c_k = c/(2+ε), R_x_j = Σ_k c_k.
  for (bias_mode bm : {bias_mode::kept, bias_mode::zeroed}) {
    const double c = 0.5 / (2 + e), ck = c / (2 + e);
    check221(run221(rules::flat(), rules::flat(), bm), {2 * ck, 2 * ck}, {c, c}, {0, 0}, 0);
  }
  {
    // wsquare kept. Top: d = 1 + 0.25 + 0.25² = 1.3125, c = 0.5/(d+ε), R_h = (1·c, 0.25c), bias 0.0625c.
    // Layer 0: d0 = 1 + 4 + 1 = 6, d1 = 9 + 1 + 0.25 = 10.25; R_x0 = 1·c0 + 9c1, R_x1 = 4c0 + 1·c1;
    // bias b²c = (c0, 0.25c1).
    const double c = 0.5 / (1.3125 + e), c0 = c / (6 + e), c1 = 0.25 * c / (10.25 + e);
    check221(run221(rules::wsquare(), rules::wsquare(), bias_mode::kept), {c0 + 9 * c1, 4 * c0 + c1}, {c, 0.25 * c},
             {c0, 0.25 * c1}, 0.0625 * c);
  }
  {  // wsquare zeroed: d = 1.25; d0 = 5, d1 = 10.
    const double c = 0.5 / (1.25 + e), c0 = c / (5 + e), c1 = 0.25 * c / (10 + e);
    check221(run221(rules::wsquare(), rules::wsquare(), bias_mode::zeroed), {c0 + 9 * c1, 4 * c0 + c1}, {c, 0.25 * c},
             {0, 0}, 0);
  }
}

TEST_CASE("stabiliser sign: s(z) = +1 for z >= 0 (z = 0 included), -1 below, and zero denominators pass nothing") {
  // ε = 0.5 on net24 (z = (3, −6.5, 0, −1), R = 1 each): c = (1/3.5, 1/(−7), 1/(+0.5), 1/(−1.5)).
  const double c0 = 1 / 3.5, c1 = -1 / 7.0, c2 = 2.0, c3 = -1 / 1.5;
  auto r = run24(rules::epsilon(0.5), bias_mode::kept);
  CHECK(!r.target.has_value());
  CHECK(r.score == 4.0);  // Σ of the given initial relevance
  CHECK(r.relevance[0][0] == near(2 * (c0 - 3 * c1 + c2 + c3)));
  CHECK(r.relevance[0][1] == near(-(-2 * c0 + c1 + 2 * c2 + c3)));
  CHECK(r.bias_relevance[0] == std::vector<double>{-c0, 0.5 * c1, 0.0, -2 * c3});

  // LRP-0: unit 2 (z = 0, ε = 0) has a zero denominator and passes nothing.
  r = run24(rules::zero(), bias_mode::kept);
  const double d0 = 1 / 3.0, d1 = -1 / 6.5, d3 = -1.0;
  CHECK(r.relevance[0][0] == near(2 * (d0 - 3 * d1 + d3)));
  CHECK(r.relevance[0][1] == near(-(-2 * d0 + d1 + d3)));
  CHECK(std::isfinite(r.bias_share));
}

TEST_CASE("gamma: mirrored for z < 0, nothing for z = 0, sign test on the forward z in both bias modes") {
  // Kept. unit 0 (z = 3 > 0): d = 2·1.25 + (−1)(−2.5) − 1 = 4.
  //   unit 1 (z = −6.5 < 0): (a⁺, w+γw⁻), (a⁻, w+γw⁺), b+γb⁻: 2·(−3.75) + (−1)(1.25) + 0.5 = −8.25.
  //   unit 2 (z = 0): nothing.  unit 3 (z = −1 < 0, w = (1, 1), b = −2): 2·1 + (−1)(1.25) − 2.5 = −1.75.
  //   R_x0 = a⁺·[(w+γw⁺)cp + (w+γw⁻)cn] = 2(1.25c0 − 3.75c1 + 1·c3)
  //   R_x1 = a⁻·[(w+γw⁻)cp + (w+γw⁺)cn] = −(−2.5c0 + 1.25c1 + 1.25c3)
  //   bias: (−1·c0, 0.5·c1, 0, −2.5·c3).
  {
    const double c0 = 1 / (4 + e), c1 = 1 / (-8.25 - e), c3 = 1 / (-1.75 - e);
    const auto r = run24(rules::gamma(), bias_mode::kept);
    CHECK(r.relevance[0][0] == near(2 * (1.25 * c0 - 3.75 * c1 + c3)));
    CHECK(r.relevance[0][1] == near(-(-2.5 * c0 + 1.25 * c1 + 1.25 * c3)));
    CHECK(r.bias_relevance[0][0] == near(-c0));
    CHECK(r.bias_relevance[0][1] == near(0.5 * c1));
    CHECK(r.bias_relevance[0][2] == 0.0);
    CHECK(r.bias_relevance[0][3] == near(-2.5 * c3));
  }
  // Zeroed: unit 3's weights alone give Σ a w = 1 > 0, but its forward z = −1 < 0 still picks
  // the mirrored branch: d = 2·1 + (−1)(1.25) = 0.75 > 0, so stab adds +ε. d0 = 5, d1 = −8.75.
  {
    const double c0 = 1 / (5 + e), c1 = 1 / (-8.75 - e), c3 = 1 / (0.75 + e);
    const auto r = run24(rules::gamma(), bias_mode::zeroed);
    CHECK(r.relevance[0][0] == near(2 * (1.25 * c0 - 3.75 * c1 + c3)));
    CHECK(r.relevance[0][1] == near(-(-2.5 * c0 + 1.25 * c1 + 1.25 * c3)));
    CHECK(r.bias_share == 0.0);
  }
}

namespace {

/// Deterministic pseudo-random values in [lo, hi) (a 64-bit LCG; no std::rand state).
struct lcg {
  std::uint64_t s;
  double next(double lo, double hi) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  std::vector<double> vec(std::size_t n, double lo, double hi) {
    std::vector<double> v(n);
    for (auto& x : v) x = next(lo, hi);
    return v;
  }
};

/// A plain forward pass for dense/ReLU chains, written here so these tests do not depend on
/// engine/forward.cpp.
forward_result dense_forward(const network& n, const std::vector<double>& x) {
  forward_result f;
  f.activations.push_back(x);
  for (const auto& l : n.layers) {
    const auto& a = f.activations.back();
    std::vector<double> out;
    if (const auto* d = std::get_if<dense_op>(&l.op)) {
      out.assign(d->out, 0.0);
      for (std::size_t k = 0; k < d->out; ++k) {
        double z = d->bias[k];
        for (std::size_t j = 0; j < d->in; ++j) z += d->weight[k * d->in + j] * a[j];
        out[k] = z;
      }
    } else {
      out = a;
      for (auto& v : out) v = std::max(v, 0.0);
    }
    f.activations.push_back(out);
    f.argmax.emplace_back();
  }
  return f;
}

/// 12-10-8-5 ReLU MLP with random weights and biases.
network random_mlp(lcg& g) {
  network n;
  n.source = "random_mlp";
  n.input_shape = {12};
  const std::size_t sizes[] = {12, 10, 8, 5};
  for (int i = 0; i < 3; ++i) {
    n.layers.push_back(make_dense(g.vec(sizes[i] * sizes[i + 1], -1, 1), g.vec(sizes[i + 1], -0.5, 0.5), sizes[i],
                                  sizes[i + 1], "fc" + std::to_string(i)));
    if (i < 2) n.layers.push_back(make_relu({sizes[i + 1]}));
  }
  return n;
}

double sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

}  // namespace

TEST_CASE("conservation: LRP-0 exactly (with and without bias), and zplus and epsilon up to the stabiliser") {
  lcg g{42};
  for (int trial = 0; trial < 5; ++trial) {
    CAPTURE(trial);
    const network net = random_mlp(g);
    const forward_result f = dense_forward(net, g.vec(12, 0.0, 1.0));  // positive inputs
    const double out = f.output()[predicted(f)];
    lrp_options o;
    o.layer_rules.assign(3, rules::zero());
    o.bias = bias_mode::zeroed;
    auto r = lrp(net, f, o);
    CHECK(r.score == out);
    for (const auto& layer_r : r.relevance) CHECK(std::abs(sum(layer_r) - out) <= 1e-12 * std::abs(out));
    CHECK(r.bias_share == 0.0);

    o.bias = bias_mode::kept;
    r = lrp(net, f, o);
    CHECK(std::abs(sum(r.input_relevance()) + r.bias_share - out) <= 1e-12 * std::abs(out));

    // z⁺ on positive inputs without bias: every layer keeps Σ R up to R_k·ε/(z⁺_k+ε).
    o.layer_rules.assign(3, rules::zplus());
    o.bias = bias_mode::zeroed;
    r = lrp(net, f, o);
    for (const auto& layer_r : r.relevance) CHECK(std::abs(sum(layer_r) - out) <= 1e-5 * std::abs(out));
    CHECK(r.bias_share == 0.0);

    // ε with bias: Σ inputs + Σ biases = output, up to the ε leak.
    o.layer_rules.assign(3, rules::epsilon());
    o.bias = bias_mode::kept;
    r = lrp(net, f, o);
    CHECK(std::abs(sum(r.input_relevance()) + r.bias_share - out) <= 1e-5 * std::abs(out));
    CHECK(std::abs(r.bias_share) > 0.0);
  }
}

TEST_CASE("LRP-0 with biases equals gradient x input on a random ReLU MLP") {
  lcg g{7};
  const network net = random_mlp(g);
  const std::vector<double> x = g.vec(12, -1.0, 1.0);
  const forward_result f = dense_forward(net, x);
  const std::size_t t = predicted(f);
  // Gradient by the chain rule, written out: g3 = e_t·W2, masked by ReLU 1, ·W1, masked, ·W0.
  std::vector<double> grad(5, 0.0);
  grad[t] = 1.0;
  for (int li = 4; li >= 0; --li) {
    const layer& l = net.layers[static_cast<std::size_t>(li)];
    if (const auto* d = std::get_if<dense_op>(&l.op)) {
      std::vector<double> below(d->in, 0.0);
      for (std::size_t k = 0; k < d->out; ++k)
        for (std::size_t j = 0; j < d->in; ++j) below[j] += d->weight[k * d->in + j] * grad[k];
      grad = below;
    } else {
      const auto& z = f.activations[static_cast<std::size_t>(li)];
      for (std::size_t j = 0; j < grad.size(); ++j)
        if (z[j] <= 0) grad[j] = 0;
    }
  }
  lrp_options o;
  o.layer_rules.assign(3, rules::zero());
  const auto r = lrp(net, f, o);
  for (std::size_t j = 0; j < 12; ++j) CHECK(r.input_relevance()[j] == near(grad[j] * x[j]));
}

// ---- convolutions ---------------------------------------------------------------------

namespace {

/// The conv as a dense (out × in) matrix, by the ONNX definition, one output at a time.
std::vector<double> unroll(const conv2d_op& c, const shape_t& in, const shape_t& out) {
  const std::size_t H = in[1], W = in[2], OH = out[1], OW = out[2];
  const std::size_t n_in = c.in_channels * H * W, icg = c.in_channels / c.group, ocg = c.out_channels / c.group;
  std::vector<double> m(c.out_channels * OH * OW * n_in, 0.0);
  for (std::size_t oc = 0; oc < c.out_channels; ++oc)
    for (std::size_t oy = 0; oy < OH; ++oy)
      for (std::size_t ox = 0; ox < OW; ++ox)
        for (std::size_t icl = 0; icl < icg; ++icl)
          for (std::size_t ky = 0; ky < c.kernel_h; ++ky)
            for (std::size_t kx = 0; kx < c.kernel_w; ++kx) {
              const long iy = long(oy * c.stride_h + ky * c.dilation_h) - long(c.pad_top);
              const long ix = long(ox * c.stride_w + kx * c.dilation_w) - long(c.pad_left);
              if (iy < 0 || ix < 0 || iy >= long(H) || ix >= long(W)) continue;
              const std::size_t ic = (oc / ocg) * icg + icl;
              const std::size_t k = (oc * OH + oy) * OW + ox, j = (ic * H + std::size_t(iy)) * W + std::size_t(ix);
              m[k * n_in + j] += c.weight[((oc * icg + icl) * c.kernel_h + ky) * c.kernel_w + kx];
            }
  return m;
}

}  // namespace

TEST_CASE("convolution = its unrolled dense matrix, for every rule but flat (padding, stride, dilation, groups), inputs of both signs and non-negative") {
  struct geometry {
    const char* what;
    std::size_t cin, cout, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group;
  };
  const geometry gs[] = {
      {"3x3 pad 1", 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
      {"stride 2, asymmetric pads", 2, 2, 6, 5, 3, 3, 2, 2, 1, 1, 1, 0, 0, 2, 1},
      {"dilation 2", 1, 2, 6, 6, 2, 3, 1, 1, 2, 2, 1, 2, 0, 1, 1},
      {"groups 2", 4, 6, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},
      {"depthwise 3x2", 3, 3, 5, 4, 3, 2, 1, 2, 1, 1, 0, 1, 2, 0, 3},
  };
  lcg g{2024};
  for (const auto& gm : gs) {
    CAPTURE(gm.what);
    conv2d_op c;
    c.in_channels = gm.cin;
    c.out_channels = gm.cout;
    c.kernel_h = gm.kh;
    c.kernel_w = gm.kw;
    c.stride_h = gm.sh;
    c.stride_w = gm.sw;
    c.dilation_h = gm.dh;
    c.dilation_w = gm.dw;
    c.pad_top = gm.pt;
    c.pad_left = gm.pl;
    c.pad_bottom = gm.pb;
    c.pad_right = gm.pr;
    c.group = gm.group;
    c.weight = g.vec(gm.cout * (gm.cin / gm.group) * gm.kh * gm.kw, -1, 1);
    c.bias = g.vec(gm.cout, -0.5, 0.5);
    network cn;
    cn.source = "conv";
    cn.input_shape = {gm.cin, gm.h, gm.w};
    cn.layers.push_back(provnn::test::conv_layer(c, cn.input_shape));
    const shape_t out_shape = cn.layers[0].out_shape;
    const std::size_t n_in = element_count(cn.input_shape), n_out = element_count(out_shape);

    network dn;
    dn.source = "unrolled";
    dn.input_shape = {n_in};
    std::vector<double> unit_bias(n_out);
    for (std::size_t k = 0; k < n_out; ++k) unit_bias[k] = c.bias[k / (out_shape[1] * out_shape[2])];
    dn.layers.push_back(make_dense(unroll(c, cn.input_shape, out_shape), unit_bias, n_in, n_out));

    // Mixed signs, then x ≥ 0 (γ's one-multiply-add form: weights split by sign, GEMM); the
    // matrix products in one block of columns, then in blocks of 3 output positions (blocks
    // that end mid-row, as a large image's do).
    for (const std::size_t block : {std::size_t{1} << 20, std::size_t{3} * (gm.cin / gm.group) * gm.kh * gm.kw})
    for (const double x_low : {-1.0, 0.0}) {
    CAPTURE(block);
    CAPTURE(x_low);
    provnn::engine::detail::set_conv_gemm_block(block);
    const std::vector<double> x = g.vec(n_in, x_low, 1);
    const forward_result f = dense_forward(dn, x);  // z of the conv = M·x + b
    forward_result fc = f;
    // The convolution's own forward pass (im2col + GEMM) gives the same z.
    const forward_result own = forward(cn, x);
    REQUIRE(own.output().size() == n_out);
    for (std::size_t k = 0; k < n_out; ++k) CHECK(own.output()[k] == near(f.output()[k]));

    zbox_bound lo, hi;
    lo.values = g.vec(n_in, -2, -1);
    hi.values = g.vec(n_in, 1, 2);
    const std::vector<rule> rs = {rules::zero(),         rules::epsilon(),   rules::epsilon(0.3),
                                  rules::gamma(),        rules::gamma(0.7),  rules::zplus(),
                                  rules::alphabeta(),    rules::alphabeta(1.5, 0.5),
                                  rules::zbox(-1.5, 1.5), rules::zbox(lo, hi), rules::wsquare()};
    for (const rule& r : rs) {
      for (bias_mode bm : {bias_mode::kept, bias_mode::zeroed}) {
        CAPTURE(to_string(r));
        CAPTURE(bm == bias_mode::kept);
        lrp_options o;
        o.layer_rules = {r};
        o.bias = bm;
        o.target = g.vec(n_out, -1, 1);
        const auto rc = lrp(cn, fc, o);
        const auto rd = lrp(dn, f, o);
        double scale = 0;
        for (double v : rd.input_relevance()) scale = std::max(scale, std::abs(v));
        REQUIRE(scale > 0);
        for (std::size_t j = 0; j < n_in; ++j) CHECK(std::abs(rc.input_relevance()[j] - rd.input_relevance()[j]) <= 1e-12 * scale);
        for (std::size_t k = 0; k < n_out; ++k)
          CHECK(rc.bias_relevance[0][k] == near(rd.bias_relevance[0][k]));
      }
    }
    }
  }
  provnn::engine::detail::set_conv_gemm_block(std::size_t{1} << 20);
}

TEST_CASE("flat in a padded convolution: the fan-in counts real inputs only") {
  // 1×3×3 input, one 3×3 kernel, padding 1: output units see 4 (corners), 6 (edges) or 9
  // (centre) real inputs. With R = 1 on every output, c = 1/(fan-in + ε) and each input
  // collects the c of every window it is in:
  //   corner input: 1 corner + 2 edges + the centre;  edge input: 2 corners + 3 edges + the centre;
  //   centre input: 4 corners + 4 edges + the centre.  Σ = 9 (up to ε).
  conv2d_op c;
  c.in_channels = c.out_channels = 1;
  c.kernel_h = c.kernel_w = 3;
  c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = 1;
  c.weight.assign(9, 0.5);
  c.bias = {0.3};
  network n;
  n.source = "conv3";
  n.input_shape = {1, 3, 3};
  n.layers.push_back(provnn::test::conv_layer(c, n.input_shape));
  REQUIRE(n.layers[0].out_shape == shape_t{1, 3, 3});
  forward_result f;
  f.activations = {std::vector<double>(9, 1.0), std::vector<double>(9, 1.0)};
  f.argmax.resize(1);
  lrp_options o;
  o.layer_rules = {rules::flat()};
  o.target = std::vector<double>(9, 1.0);
  const auto r = lrp(n, f, o);
  const double corner = 1 / (4 + e), edge = 1 / (6 + e), centre = 1 / (9 + e);
  const double rc = corner + 2 * edge + centre, re = 2 * corner + 3 * edge + centre, rm = 4 * corner + 4 * edge + centre;
  const std::vector<double> expected = {rc, re, rc, re, rm, re, rc, re, rc};
  for (std::size_t j = 0; j < 9; ++j) CHECK(r.input_relevance()[j] == near(expected[j]));
  CHECK(r.bias_share == 0.0);

  // Two input channels: every fan-in doubles, every input gets half.
  c.in_channels = 2;
  c.weight.assign(18, 0.5);
  n.input_shape = {2, 3, 3};
  n.layers[0] = provnn::test::conv_layer(c, n.input_shape);
  f.activations[0].assign(18, 1.0);
  const auto r2 = lrp(n, f, o);
  const double corner2 = 1 / (8 + e), edge2 = 1 / (12 + e), centre2 = 1 / (18 + e);
  CHECK(r2.input_relevance()[0] == near(corner2 + 2 * edge2 + centre2));
  CHECK(r2.input_relevance()[9 + 4] == near(4 * corner2 + 4 * edge2 + centre2));
}

// ---- pooling, reshape -----------------------------------------------------------------

namespace {

layer make_pool(pool_op p, shape_t in, shape_t out) {
  layer l;
  l.name = "pool";
  l.op_type = p.mode == pool_op::kind::max ? "MaxPool" : "AveragePool";
  l.op = p;
  l.in_shape = std::move(in);
  l.out_shape = std::move(out);
  return l;
}

}  // namespace

TEST_CASE("max-pool sends relevance to the recorded winner (the first maximum on ties)") {
  // 1×2×4 input [[1, 3, 3, 0], [2, 3, −1, 0]], 2×2 windows, stride 2 → 1×1×2.
  // Window 0: {1, 3, 2, 3} at flat inputs {0, 1, 4, 5}: maxima at 1 and 5, the first is 1.
  // Window 1: {3, 0, −1, 0} at {2, 3, 6, 7}: winner 2.
  pool_op p;
  p.kernel_h = p.kernel_w = 2;
  p.stride_h = p.stride_w = 2;
  network n;
  n.source = "maxpool";
  n.input_shape = {1, 2, 4};
  n.layers.push_back(make_pool(p, {1, 2, 4}, {1, 1, 2}));
  const std::vector<double> x = {1, 3, 3, 0, 2, 3, -1, 0};

  forward_result f;
  f.activations = {x, {3, 3}};
  f.argmax = {{1, 2}};
  lrp_options o;
  o.layer_rules = {};
  o.target = std::vector<double>{0.7, -0.2};
  const auto r = lrp(n, f, o);
  CHECK(r.input_relevance() == std::vector<double>{0, 0.7, -0.2, 0, 0, 0, 0, 0});

  // The library's forward pass records the same winners.
  const forward_result lib = forward(n, x);
  REQUIRE(lib.argmax.size() == 1);
  CHECK(lib.argmax[0] == std::vector<std::uint32_t>{1, 2});
  CHECK(lrp(n, lib, o).input_relevance() == r.input_relevance());

  // Overlapping windows (1×1×3 input [1, 5, 2], kernel 1×2, stride 1): both pick input 1.
  pool_op q;
  q.kernel_h = 1;
  q.kernel_w = 2;
  network m;
  m.source = "overlap";
  m.input_shape = {1, 1, 3};
  m.layers.push_back(make_pool(q, {1, 1, 3}, {1, 1, 2}));
  forward_result g;
  g.activations = {{1, 5, 2}, {5, 5}};
  g.argmax = {{1, 1}};
  o.target = std::vector<double>{0.25, 0.5};
  CHECK(lrp(m, g, o).input_relevance() == std::vector<double>{0, 0.75, 0});
}

TEST_CASE("average pool: a linear layer with weights 1/N under epsilon (1e-6), N = real inputs unless count_include_pad") {
  // 1×1×2 input a = (2, 4); kernel 1×2, stride 1, one column of padding on the left → 2 outputs.
  //   output 0 sees {pad, a0}: N = 1, z = 2;  output 1 sees {a0, a1}: N = 2, z = 3.
  //   R = (1, 1): c0 = 1/(2+ε)/1, c1 = 1/(3+ε)/2; R_a0 = 2(c0 + c1), R_a1 = 4c1.
  pool_op p;
  p.mode = pool_op::kind::average;
  p.kernel_h = 1;
  p.kernel_w = 2;
  p.pad_left = 1;
  network n;
  n.source = "avgpool";
  n.input_shape = {1, 1, 2};
  n.layers.push_back(make_pool(p, {1, 1, 2}, {1, 1, 2}));
  forward_result f;
  f.activations = {{2, 4}, {2, 3}};
  f.argmax.resize(1);
  lrp_options o;
  o.target = std::vector<double>{1, 1};
  auto r = lrp(n, f, o);
  double c0 = 1 / (2 + e), c1 = 1 / (3 + e) / 2;
  CHECK(r.input_relevance()[0] == near(2 * (c0 + c1)));
  CHECK(r.input_relevance()[1] == near(4 * c1));

  // pool_epsilon = 0: exact conservation, Σ R = 2.
  o.pool_epsilon = 0;
  r = lrp(n, f, o);
  CHECK(r.input_relevance()[0] + r.input_relevance()[1] == near(2.0));
  o.pool_epsilon = 1e-6;

  // count_include_pad: both windows divide by 2; output 0 is z = 2/2 = 1.
  n.layers[0] = make_pool([&] { pool_op q = p; q.count_include_pad = true; return q; }(), {1, 1, 2}, {1, 1, 2});
  f.activations[1] = {1, 3};
  r = lrp(n, f, o);
  c0 = 1 / (1 + e) / 2;
  c1 = 1 / (3 + e) / 2;
  CHECK(r.input_relevance()[0] == near(2 * (c0 + c1)));
  CHECK(r.input_relevance()[1] == near(4 * c1));
}

TEST_CASE("relu and reshape pass relevance unchanged, also to units that are off") {
  network n;
  n.source = "passthrough";
  n.input_shape = {2, 1, 2};
  n.layers.push_back(make_relu({2, 1, 2}));
  layer flat;
  flat.name = "flatten";
  flat.op_type = "Flatten";
  flat.op = reshape_op{};
  flat.in_shape = {2, 1, 2};
  flat.out_shape = {4};
  n.layers.push_back(flat);
  forward_result f;
  f.activations = {{1, -2, 3, 0}, {1, 0, 3, 0}, {1, 0, 3, 0}};
  f.argmax.resize(2);
  lrp_options o;
  o.target = std::vector<double>{0.5, 0.25, -1, 2};
  const auto r = lrp(n, f, o);
  for (const auto& rel : r.relevance) CHECK(rel == std::vector<double>{0.5, 0.25, -1, 2});
  CHECK(r.bias_relevance.empty());
}

TEST_CASE("targets: predicted class, a class index, an initial vector, and errors name what is wrong") {
  const network net = net221();
  forward_result f = fwd221();
  lrp_options o;
  o.layer_rules = {rules::zero(), rules::zero()};
  auto r = lrp(net, f, o);
  CHECK(r.target == std::optional<std::size_t>{0});

  // A 3-class head to tell the target from the prediction.
  network n3;
  n3.source = "three";
  n3.input_shape = {2};
  n3.layers.push_back(make_dense({1, 0, 0, 1, 1, 1}, {0, 0, 0}, 2, 3));
  forward_result f3;
  f3.activations = {{2, -1}, {2, -1, 1}};
  f3.argmax.resize(1);
  lrp_options o3;
  o3.layer_rules = {rules::zero()};
  r = lrp(n3, f3, o3);
  CHECK(r.target == std::optional<std::size_t>{0});
  CHECK(r.score == 2.0);
  CHECK(r.relevance[1] == std::vector<double>{2, 0, 0});
  CHECK(r.input_relevance() == std::vector<double>{2, 0});
  o3.target = std::size_t{2};  // unit 2 = x0 + x1 = 1: LRP-0 gives (2, −1)
  r = lrp(n3, f3, o3);
  CHECK(r.target == std::optional<std::size_t>{2});
  CHECK(r.score == 1.0);
  CHECK(r.input_relevance() == std::vector<double>{2, -1});
  o3.target = std::vector<double>{1, 1, 0};  // x0 gets 1 (unit 0), x1 gets 1 (unit 1)
  r = lrp(n3, f3, o3);
  CHECK_FALSE(r.target.has_value());
  CHECK(r.input_relevance() == std::vector<double>{1, 1});

  auto message = [&](const lrp_options& opts, const network& nn, const forward_result& ff) -> std::string {
    try {
      lrp(nn, ff, opts);
    } catch (const provnn::error& ex) {
      return ex.what();
    }
    return "(no error)";
  };
  o3.target = std::size_t{3};
  CHECK(message(o3, n3, f3).find("target class 3 is out of range") != std::string::npos);
  o3.target = std::vector<double>{1, 2};
  CHECK(message(o3, n3, f3).find("initial relevance has 2 values but the network output has 3") != std::string::npos);
  o3.target = std::vector<double>{1, NAN, 0};
  CHECK(message(o3, n3, f3).find("value 1 is not finite") != std::string::npos);
  o3.target = predicted_class{};
  o3.layer_rules = {};
  CHECK(message(o3, n3, f3).find("0 rules given but network 'three' has 1 linear layers") != std::string::npos);
  o3.layer_rules = {rules::zero()};
  o3.pool_epsilon = -1;
  CHECK(message(o3, n3, f3).find("pool_epsilon") != std::string::npos);
  o3.pool_epsilon = 1e-6;

  forward_result bad = f3;
  bad.activations.pop_back();
  CHECK(message(o3, n3, bad).find("forward result has 1 activation arrays") != std::string::npos);
  bad = f3;
  bad.activations[1].push_back(0);
  CHECK(message(o3, n3, bad).find("activations[1] has 4 values") != std::string::npos);

  // zbox bounds: not loaded, or the wrong number of values.
  o3.layer_rules = {parse_rule("zbox:lo.npy,1")};
  CHECK(message(o3, n3, f3).find("'lo.npy' of linear layer 0 ('fc') is not loaded") != std::string::npos);
  resolve_bounds(o3.layer_rules, [](const std::string&) { return std::vector<double>{0, 0, 0}; });
  CHECK(message(o3, n3, f3).find("has 3 values but linear layer 0 ('fc') has 2 inputs of shape (2)") !=
        std::string::npos);
  o3.layer_rules[0].low.values = {0, NAN};
  CHECK(message(o3, n3, f3).find("'lo.npy' of linear layer 0 ('fc') has a non-finite value at flat index 1") !=
        std::string::npos);
}
