// The circuit builder on hand-made networks: the worked 2-2-1 example of docs/mathematics.md
// (every token value, gate and relevance computed by hand), token names and sharing, pruning
// of zero factors, several targets, bias roots, errors.
#include "engine/circuit_builder.hpp"

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "common/error.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "semirings/boolean.hpp"
#include "semirings/counting.hpp"
#include "semirings/nx.hpp"
#include "semirings/viterbi.hpp"

using namespace provnn;
using namespace provnn::engine;

namespace {

layer make_dense(std::vector<double> w, std::vector<double> b, std::size_t in, std::size_t out) {
  layer l;
  l.name = "fc";
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

// The 2-2-1 network of docs/mathematics.md: x = (2, −1), W1 = [[1, −2], [3, 1]],
// b1 = (−1, 0.5), z1 = (3, 5.5), ReLU, W2 = [[1, −0.5]], b2 = 0.25, y = 0.5.
network net221() {
  network n;
  n.source = "net221";
  n.input_shape = {2};
  n.layers.push_back(make_dense({1, -2, 3, 1}, {-1, 0.5}, 2, 2));
  n.layers.push_back(make_relu({2}));
  n.layers.push_back(make_dense({1, -0.5}, {0.25}, 2, 1));
  return n;
}

const std::vector<double> x221 = {2, -1};

double value_of(const circuit& c, const std::string& root) {
  const auto* r = c.find_root(root);
  REQUIRE_MESSAGE(r != nullptr, "no root ", root);
  const gate_id g[] = {r->gate};
  return evaluate_gates(c, real_semiring{}, c.tokens().values(), g)[0];
}

double token_value(const circuit& c, const std::string& name) { return c.tokens().value(c.tokens().at(name)); }

circuit_options opts(rule r, bias_mode b = bias_mode::kept) {
  circuit_options o;
  o.layer_rules = {r, r};
  o.bias = b;
  return o;
}

}  // namespace

TEST_CASE("2-2-1, LRP-0: the worked example of docs/mathematics.md, token by token") {
  const network net = net221();
  const auto fwd = forward(net, x221);
  const circuit c = build_circuit(net, fwd, opts(rules::zero()));
  // Natural valuation: every token its own value, the divisions in n.
  CHECK(token_value(c, "r[0]") == 0.5);
  CHECK(token_value(c, "n2[0]#0") == 2.0);  // 1 / z2 = 1 / 0.5
  CHECK(token_value(c, "a1[0]") == 3.0);
  CHECK(token_value(c, "a1[1]") == 5.5);
  CHECK(token_value(c, "W2[0,1]") == -0.5);
  CHECK(token_value(c, "n1[0]#0") == doctest::Approx(1.0 / 3));
  CHECK(token_value(c, "n1[1]#0") == doctest::Approx(2.0 / 11));
  CHECK(token_value(c, "x[1]") == -1.0);
  CHECK(token_value(c, "W1[1,0]") == 3.0);  // row = output unit, as the ONNX/PyTorch tensor
  CHECK(token_value(c, "b1[0]") == -1.0);
  // Relevance by hand: R(a1) = (3, −2.75); R(x) = (−1, 2.5); bias shares −1, −0.25, 0.25.
  CHECK(value_of(c, "R(x[0])") == doctest::Approx(-1.0).epsilon(1e-14));
  CHECK(value_of(c, "R(x[1])") == doctest::Approx(2.5).epsilon(1e-14));
  CHECK(value_of(c, "R(b1[0])") == doctest::Approx(-1.0).epsilon(1e-14));
  CHECK(value_of(c, "R(b1[1])") == doctest::Approx(-0.25).epsilon(1e-14));
  CHECK(value_of(c, "R(b2[0])") == doctest::Approx(0.25).epsilon(1e-14));
  // Shape: 4 edges in stage 1, 2 in stage 2, each an edge gate with its context.
  REQUIRE(c.edge_gates().size() == 6);
  const auto& ctx = c.edge_contexts();
  CHECK(std::count_if(ctx.begin(), ctx.end(), [](const edge_context& e) { return e.layer == 1; }) == 4);
  CHECK(std::count_if(ctx.begin(), ctx.end(), [](const edge_context& e) { return e.layer == 2; }) == 2);
  const auto d = edge_coefficients(c);
  // Stage 2 coefficients d_j0 = a_j w_j0 / z2: 3·1·2 = 6 and 5.5·(−0.5)·2 = −5.5.
  std::vector<double> top;
  for (std::size_t i = 0; i < d.size(); ++i)
    if (ctx[i].layer == 2) top.push_back(d[i]);
  std::sort(top.begin(), top.end());
  CHECK(top == std::vector<double>{-5.5, 6.0});
  // The polynomial of R(x[0]): one monomial per path, two paths.
  const nx_semiring nx;
  const auto* r0 = c.find_root("R(x[0])");
  const gate_id g0[] = {r0->gate};
  const auto lifted = lift_valuation(c, nx);
  const auto p = evaluate_gates(c, nx, std::span<const polynomial>(lifted), g0)[0];
  // (Factors print in token-creation order: the builder works from the output down.)
  CHECK(nx.format(p, c.tokens().namer()) ==
        "r[0]·a1[0]·n2[0]#0·W2[0,0]·x[0]·n1[0]#0·W1[0,0] + r[0]·n2[0]#0·a1[1]·W2[0,1]·x[0]·n1[1]#0·W1[1,0]");
  // Counting: two paths; Viterbi (|values|): max(2·1·⅓·3·1·2·0.5, 2·3·(2/11)·5.5·0.5·2·0.5) = 3.
  const counting_semiring cnt;
  const auto cv = lift_valuation(c, cnt);
  CHECK(evaluate_gates(c, cnt, std::span<const stored_value_t<counting_semiring>>(cv), g0)[0] == 2);
  const viterbi_semiring vit;
  const auto vv = lift_valuation(c, vit);
  CHECK(evaluate_gates(c, vit, std::span<const double>(vv), g0)[0] == doctest::Approx(3.0));
  // Edge annotations (docs/mathematics.md §5): threshold 0.5 keeps 6, 2/3, 2/3, 12/11, so each
  // feature has one passing path; threshold 1 leaves none; viterbi-maxnorm gives 0.5 for both.
  std::vector<gate_id> feats = {c.find_root("R(x[0])")->gate, c.find_root("R(x[1])")->gate};
  const boolean_semiring bs;
  const auto bv = lift_valuation(c, bs);
  for (double theta : {0.5, 1.0}) {
    const auto th = threshold_annotation(c, theta);
    const auto b = evaluate_gates(c, bs, std::span<const std::uint8_t>(bv), feats, &th);
    const auto n = evaluate_gates(c, cnt, std::span<const stored_value_t<counting_semiring>>(cv), feats, &th);
    CHECK(static_cast<bool>(b[0]) == (theta == 0.5));
    CHECK(static_cast<bool>(b[1]) == (theta == 0.5));
    CHECK(n[0] == (theta == 0.5 ? 1 : 0));
    CHECK(n[1] == (theta == 0.5 ? 1 : 0));
  }
  const auto vt = viterbi_maxnorm_annotation(c);
  const auto vm = evaluate_gates(c, vit, std::span<const double>(vv), feats, &vt);
  CHECK(vm[0] == doctest::Approx(0.5));
  CHECK(vm[1] == doctest::Approx(0.5));
  // Metadata.
  CHECK(c.metadata().at("model") == "net221");
  CHECK(c.metadata().at("targets") == "0");
  CHECK(c.metadata().at("rules") == "1=zero; 2=zero");
  CHECK(c.metadata().at("bias") == "kept");
}

TEST_CASE("2-2-1: deleting a token is the relevance without it (valuation override)") {
  const network net = net221();
  const circuit c = build_circuit(net, forward(net, x221), opts(rules::zero()));
  auto v = std::vector<double>(c.tokens().values().begin(), c.tokens().values().end());
  const token_override del[] = {{"a1[1]", 0.0}};
  override_tokens(c, real_semiring{}, v, del);
  const auto* r0 = c.find_root("R(x[0])");
  const gate_id g0[] = {r0->gate};
  // Only the path through a1[0] is left: 2·1·⅓·3·1·2·0.5 = 2.
  CHECK(evaluate_gates(c, real_semiring{}, v, g0)[0] == doctest::Approx(2.0));
}

TEST_CASE("2-2-1: z+ drops zero factors (x- of a positive input, w+ of a negative weight)") {
  const network net = net221();
  const circuit c = build_circuit(net, forward(net, x221), opts(rules::zplus()));
  // x[0] = 2 > 0: no x-[0] token; x[1] = −1 < 0: no x+[1]; W1[0,1] = −2: no W1+[0,1].
  CHECK_FALSE(c.tokens().find("x-[0]").has_value());
  CHECK_FALSE(c.tokens().find("x+[1]").has_value());
  CHECK_FALSE(c.tokens().find("W1+[0,1]").has_value());
  CHECK(c.tokens().find("W1-[0,1]").has_value());
  CHECK(c.tokens().find("x-[1]").has_value());
  // Hidden units are positive: a1-[j] never appears; W2-[0,1] only pairs with a1-: absent.
  CHECK(c.tokens().match("a1-*").empty());
  CHECK_FALSE(c.tokens().find("W2-[0,1]").has_value());
  lrp_options lo;
  lo.layer_rules = {rules::zplus(), rules::zplus()};
  const auto ref = lrp(net, forward(net, x221), lo);
  CHECK(value_of(c, "R(x[0])") == doctest::Approx(ref.relevance[0][0]).epsilon(1e-12));
  CHECK(value_of(c, "R(x[1])") == doctest::Approx(ref.relevance[0][1]).epsilon(1e-12));
  CHECK(value_of(c, "R(b1[1])") == doctest::Approx(ref.bias_relevance[0][1]).epsilon(1e-12));
}

TEST_CASE("2-2-1: an inactive unit has no gate, and flat still reaches it through its constant token") {
  // b1 = (−10, 0.5) switches unit 0 off: z1 = (−6, 5.5).
  network net = net221();
  std::get<dense_op>(net.layers[0].op).bias = {-10, 0.5};
  const auto fwd = forward(net, x221);
  REQUIRE(fwd.activations[2][0] == 0.0);
  const circuit eps = build_circuit(net, fwd, opts(rules::epsilon()));
  CHECK_FALSE(eps.tokens().find("a1[0]").has_value());
  CHECK_FALSE(eps.tokens().find("n1[0]#0").has_value());  // no relevance reaches unit 0
  CHECK(eps.edge_gates().size() == 3);
  circuit_options o = opts(rules::flat());
  const circuit flat = build_circuit(net, fwd, o);
  CHECK(token_value(flat, "a1^0[0]") == 1.0);
  CHECK(token_value(flat, "W2^0[0,0]") == 1.0);
  CHECK(token_value(flat, "n2[0]#0") == doctest::Approx(1.0 / (2 + 1e-6)));
  CHECK(flat.edge_gates().size() == 6);
  lrp_options lo;
  lo.layer_rules = {rules::flat(), rules::flat()};
  const auto ref = lrp(net, fwd, lo);
  CHECK(value_of(flat, "R(x[0])") == doctest::Approx(ref.relevance[0][0]).epsilon(1e-12));
  CHECK(flat.find_root("R(b1[0])") == nullptr);  // flat gives biases nothing
}

TEST_CASE("several targets share tokens and edge gates, and roots are named per target") {
  // 2 → 3 → 2, two outputs with nonzero scores.
  network n;
  n.source = "two";
  n.input_shape = {2};
  n.layers.push_back(make_dense({1, 0.5, -1, 2, 0.25, 0.75}, {0.1, 0.2, 0.3}, 2, 3));
  n.layers.push_back(make_relu({3}));
  n.layers.push_back(make_dense({1, -1, 0.5, 0.5, 1, -2}, {0, 0}, 3, 2));
  const auto fwd = forward(n, std::vector<double>{1.0, 2.0});
  circuit_options o;
  o.layer_rules = {rules::epsilon(), rules::epsilon()};
  o.targets = {0, 1};
  circuit_build_info info;
  const circuit both = build_circuit(n, fwd, o, &info);
  CHECK(info.targets == std::vector<std::size_t>{0, 1});
  CHECK(both.metadata().at("targets") == "0,1");
  for (std::size_t y : {0u, 1u}) {
    circuit_options one = o;
    one.targets = {y};
    const circuit single = build_circuit(n, fwd, one);
    lrp_options lo;
    lo.layer_rules = o.layer_rules;
    lo.target = y;
    const auto ref = lrp(n, fwd, lo);
    for (std::size_t i = 0; i < 2; ++i) {
      const std::string suffixed = "R(x[" + std::to_string(i) + "]|r[" + std::to_string(y) + "])";
      CHECK(value_of(both, suffixed) == doctest::Approx(ref.relevance[0][i]).epsilon(1e-12));
      CHECK(value_of(single, "R(x[" + std::to_string(i) + "])") == doctest::Approx(ref.relevance[0][i]).epsilon(1e-12));
      CHECK(both.find_root(suffixed)->target == y);
    }
    CHECK(value_of(both, "R(b1[2]|r[" + std::to_string(y) + "])") ==
          doctest::Approx(ref.bias_relevance[0][2]).epsilon(1e-12));
    // The hidden stage's edge gates are shared: two targets cost fewer edges than two circuits.
    CHECK(both.edge_gates().size() < 2 * single.edge_gates().size());
  }
  // Edges: stage 1 has 2×3 edges (shared), stage 2 has 3 per target.
  CHECK(both.edge_gates().size() == 6 + 6);
}

TEST_CASE("an initial relevance vector: one r[y] per nonzero entry, one set of roots") {
  const network net = net221();
  const auto fwd = forward(net, x221);
  circuit_options o = opts(rules::epsilon());
  o.target = std::vector<double>{2.0};
  const circuit c = build_circuit(net, fwd, o);
  CHECK(token_value(c, "r[0]") == 2.0);
  CHECK(c.metadata().at("targets") == "initial relevance vector");
  lrp_options lo;
  lo.layer_rules = o.layer_rules;
  lo.target = std::vector<double>{2.0};
  const auto ref = lrp(net, fwd, lo);
  CHECK(value_of(c, "R(x[1])") == doctest::Approx(ref.relevance[0][1]).epsilon(1e-12));
}

TEST_CASE("a convolution weight is one token however many edges use it") {
  // 1×3×3 input, conv 1→1 k2 (4 weights, 4 positions: 16 edges), flatten, dense 4→1.
  network n;
  n.source = "conv";
  n.input_shape = {1, 3, 3};
  layer cv;
  cv.name = "conv";
  cv.op_type = "Conv";
  conv2d_op op;
  op.in_channels = op.out_channels = 1;
  op.kernel_h = op.kernel_w = 2;
  op.weight = {0.5, 1.0, 1.5, 2.0};
  op.bias = {0.1};
  cv.op = op;
  cv.in_shape = {1, 3, 3};
  cv.out_shape = {1, 2, 2};
  n.layers.push_back(cv);
  layer fl;
  fl.name = "flatten";
  fl.op_type = "Flatten";
  fl.op = reshape_op{};
  fl.in_shape = {1, 2, 2};
  fl.out_shape = {4};
  n.layers.push_back(fl);
  n.layers.push_back(make_dense({1, 1, 1, 1}, {0}, 4, 1));
  std::vector<double> x(9);
  for (std::size_t i = 0; i < 9; ++i) x[i] = 0.1 * static_cast<double>(i + 1);
  const auto fwd = forward(n, x);
  circuit_options o;
  o.layer_rules = {rules::epsilon(), rules::epsilon()};
  const circuit c = build_circuit(n, fwd, o);
  CHECK(c.tokens().match("W1[*]").size() == 4);
  CHECK(c.tokens().find("W1[0,0,1,1]").has_value());
  std::size_t uses = 0;
  const auto w = *c.tokens().find("W1[0,0,1,1]");
  for (const auto& e : c.edge_contexts()) uses += e.parameter == w;
  CHECK(uses == 4);
  CHECK(c.tokens().find("x[0,2,2]").has_value());
  CHECK(c.tokens().find("a1[3]").has_value());  // the dense layer reads the flattened (4,)
  CHECK(c.tokens().find("n1[0,1,1]#0").has_value());
  lrp_options lo;
  lo.layer_rules = o.layer_rules;
  const auto ref = lrp(n, fwd, lo);
  for (std::size_t i = 0; i < 9; ++i) {
    const auto& root = c.roots()[i];
    CHECK(root.index == i);
    const gate_id g[] = {root.gate};
    CHECK(evaluate_gates(c, real_semiring{}, c.tokens().values(), g)[0] ==
          doctest::Approx(ref.relevance[0][i]).epsilon(1e-12));
  }
  // One bias root per bias parameter (per channel), summing the channel's positions.
  double b = 0;
  for (double v : ref.bias_relevance[0]) b += v;
  CHECK(value_of(c, "R(b1[0])") == doctest::Approx(b).epsilon(1e-12));
}

TEST_CASE("errors name what is wrong") {
  const network net = net221();
  const auto fwd = forward(net, x221);
  circuit_options o = opts(rules::epsilon());
  o.layer_rules.pop_back();
  CHECK_THROWS_WITH_AS(build_circuit(net, fwd, o), doctest::Contains("1 rules given"), provnn::error);
  o = opts(rules::epsilon());
  o.target = std::size_t{3};
  CHECK_THROWS_WITH_AS(build_circuit(net, fwd, o), doctest::Contains("target class 3 is out of range"), provnn::error);
  o = opts(rules::epsilon());
  o.layer_rules[1] = rules::zbox(0, 1);
  CHECK_THROWS_WITH_AS(build_circuit(net, fwd, o), doctest::Contains("first linear layer only"),
                       provnn::unsupported_error);
  o = opts(rules::epsilon());
  o.layer_rules[0] = rules::zbox(0, 1);
  o.layer_rules[0].high.values = {1.0, std::nan("")};
  CHECK_THROWS_WITH_AS(build_circuit(net, fwd, o), doctest::Contains("non-finite value at flat index 1"),
                       provnn::error);
  o.layer_rules[0].high.values = {1.0};
  CHECK_THROWS_WITH_AS(build_circuit(net, fwd, o), doctest::Contains("has 1 values but linear layer 0"),
                       provnn::error);
  o = opts(rules::epsilon());
  o.targets = {0, 0};
  CHECK_THROWS_WITH_AS(build_circuit(net, fwd, o), doctest::Contains("listed twice"), provnn::error);
  forward_result bad = fwd;
  bad.activations.pop_back();
  CHECK_THROWS_WITH_AS(build_circuit(net, bad, opts(rules::epsilon())), doctest::Contains("activation arrays"),
                       provnn::error);
}

TEST_CASE("a 784-300-100-10 MLP: real evaluation = lrp(), and the build cost per edge") {
  // Random weights (fixed seed), input in [0, 1): about half the hidden units are active.
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto uniform = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<double>(state >> 11) * 0x1.0p-53;
  };
  auto weights = [&](std::size_t in, std::size_t out) {
    std::vector<double> w(in * out);
    for (auto& v : w) v = (uniform() - 0.5) * 2.0 / std::sqrt(static_cast<double>(in));
    return w;
  };
  auto biases = [&](std::size_t out) {
    std::vector<double> b(out);
    for (auto& v : b) v = (uniform() - 0.5) * 0.1;
    return b;
  };
  network n;
  n.source = "mlp-784-300-100-10";
  n.input_shape = {784};
  n.layers.push_back(make_dense(weights(784, 300), biases(300), 784, 300));
  n.layers.push_back(make_relu({300}));
  n.layers.push_back(make_dense(weights(300, 100), biases(100), 300, 100));
  n.layers.push_back(make_relu({100}));
  n.layers.push_back(make_dense(weights(100, 10), biases(10), 100, 10));
  std::vector<double> x(784);
  for (auto& v : x) v = uniform();
  const auto fwd = forward(n, x);
  for (const rule& r : {rules::epsilon(), rules::alphabeta()}) {
    INFO(to_string(r));
    circuit_options o;
    o.layer_rules = {r, r, r};
    circuit_build_info info;
    const auto t0 = std::chrono::steady_clock::now();
    const circuit c = build_circuit(n, fwd, o, &info);
    const auto t1 = std::chrono::steady_clock::now();
    const auto vals = evaluate_roots(c, real_semiring{}, c.tokens().values());
    const auto t2 = std::chrono::steady_clock::now();
    lrp_options lo;
    lo.layer_rules = o.layer_rules;
    const auto ref = lrp(n, fwd, lo);
    double scale = 0, err = 0;
    for (double v : ref.input_relevance()) scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < 784; ++i) err = std::max(err, std::fabs(vals[i] - ref.input_relevance()[i]));
    CHECK(err <= 1e-9 * scale);
    CHECK(info.edges == c.edge_gates().size());
    CHECK(info.edges > 100000);
    const double build_ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    const double eval_ns = std::chrono::duration<double, std::nano>(t2 - t1).count();
    MESSAGE(fmt::format("{}: {} edge gates, {} gates, {} child refs, {:.1f} MB; build {:.1f} ms = {:.1f} ns/edge; "
                        "real evaluation {:.1f} ms; max error {:.2g}",
                        to_string(r), info.edges, c.size(), c.child_count(), (c.bytes() + c.tokens().bytes()) / 1e6,
                        build_ns / 1e6, build_ns / static_cast<double>(info.edges), eval_ns / 1e6, err / scale));
  }
}

TEST_CASE("budget: a build above max_gates or max_memory stops with a limit_error naming the layer and the option") {
  const network net = net221();
  const auto fwd = forward(net, x221);
  circuit_options o = opts(rules::epsilon());
  const circuit full = build_circuit(net, fwd, o);
  o.max_gates = full.size();  // exactly enough
  CHECK(build_circuit(net, fwd, o).size() == full.size());
  o.max_gates = full.size() - 1;
  try {
    (void)build_circuit(net, fwd, o);
    FAIL("no limit_error");
  } catch (const limit_error& e) {
    const std::string m = e.what();
    CHECK(m.find(fmt::format("max_gates = {}", full.size() - 1)) != std::string::npos);
    CHECK(m.find("--max-gates") != std::string::npos);
    CHECK(m.find("building the circuit stopped at layer") != std::string::npos);
  }
  o.max_gates = default_max_gates;
  o.max_memory = 1024;
  try {
    (void)build_circuit(net, fwd, o);
    FAIL("no limit_error");
  } catch (const limit_error& e) {
    CHECK(std::string(e.what()).find("--max-memory") != std::string::npos);
  }
}
