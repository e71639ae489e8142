// Rule and composite parsing, and which rule each linear layer gets (engine/rules.hpp).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "engine/rules.hpp"

using namespace provnn::engine;

namespace {

/// The message of the parse_error thrown by f (fails the test when none is thrown).
template <class F>
std::string parse_error_message(F&& f) {
  try {
    f();
  } catch (const provnn::parse_error& e) {
    return e.what();
  } catch (...) {
    FAIL("threw something other than provnn::parse_error");
    return {};
  }
  FAIL("no exception thrown");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

layer dense_layer(std::string name, std::size_t in, std::size_t out) {
  layer l;
  l.name = std::move(name);
  l.op_type = "Gemm";
  dense_op d;
  d.in = in;
  d.out = out;
  d.weight.assign(in * out, 0.0);
  d.bias.assign(out, 0.0);
  l.op = d;
  l.in_shape = {in};
  l.out_shape = {out};
  return l;
}

layer conv_layer(std::string name, std::size_t cin, std::size_t cout, std::size_t hw) {
  layer l;
  l.name = std::move(name);
  l.op_type = "Conv";
  conv2d_op c;
  c.in_channels = cin;
  c.out_channels = cout;
  c.kernel_h = c.kernel_w = 1;
  c.weight.assign(cin * cout, 0.0);
  c.bias.assign(cout, 0.0);
  l.op = c;
  l.in_shape = {cin, hw, hw};
  l.out_shape = {cout, hw, hw};
  return l;
}

layer simple_layer(std::string name, std::string op_type, shape_t s) {
  layer l;
  l.name = std::move(name);
  l.op_type = std::move(op_type);
  l.op = relu_op{};
  l.in_shape = s;
  l.out_shape = s;
  return l;
}

/// conv1, relu1, conv2, relu2, flatten, fc1, relu3, fc2: linear layers 0=conv1 1=conv2 2=fc1 3=fc2.
network conv_first_net() {
  network n;
  n.source = "convnet.onnx";
  n.input_shape = {1, 4, 4};
  n.layers.push_back(conv_layer("conv1", 1, 2, 4));
  n.layers.push_back(simple_layer("relu1", "Relu", {2, 4, 4}));
  n.layers.push_back(conv_layer("conv2", 2, 2, 4));
  n.layers.push_back(simple_layer("relu2", "Relu", {2, 4, 4}));
  layer f = simple_layer("flatten", "Flatten", {2, 4, 4});
  f.op = reshape_op{};
  f.out_shape = {32};
  n.layers.push_back(f);
  n.layers.push_back(dense_layer("fc1", 32, 8));
  n.layers.push_back(simple_layer("relu3", "Relu", {8}));
  n.layers.push_back(dense_layer("fc2", 8, 3));
  return n;
}

/// fc1, relu, fc2: linear layers 0=fc1 1=fc2.
network dense_first_net() {
  network n;
  n.source = "mlp.onnx";
  n.input_shape = {4};
  n.layers.push_back(dense_layer("fc1", 4, 3));
  n.layers.push_back(simple_layer("relu", "Relu", {3}));
  n.layers.push_back(dense_layer("fc2", 3, 2));
  return n;
}

}  // namespace

TEST_CASE("parse_rule: every valid form and its defaults") {
  rule r = parse_rule("zero");
  CHECK(r.kind == rule_kind::zero);
  CHECK(r.epsilon == 0.0);

  r = parse_rule("epsilon");
  CHECK(r.kind == rule_kind::epsilon);
  CHECK(r.epsilon == 1e-6);
  CHECK(parse_rule("epsilon:0.25").epsilon == 0.25);
  CHECK(parse_rule("epsilon:1e-3").epsilon == 1e-3);
  CHECK(parse_rule("epsilon:0").epsilon == 0.0);

  r = parse_rule("gamma");
  CHECK(r.kind == rule_kind::gamma);
  CHECK(r.gamma == 0.25);
  CHECK(r.epsilon == 1e-6);  // the stabiliser of every non-ε rule
  CHECK(parse_rule("gamma:0.5").gamma == 0.5);

  r = parse_rule("zplus");
  CHECK(r.kind == rule_kind::zplus);
  CHECK(r.epsilon == 1e-6);

  r = parse_rule("alphabeta");
  CHECK(r.kind == rule_kind::alphabeta);
  CHECK(r.alpha == 2.0);
  CHECK(r.beta == 1.0);
  CHECK(r.epsilon == 1e-6);
  r = parse_rule("alphabeta:1,0");
  CHECK(r.alpha == 1.0);
  CHECK(r.beta == 0.0);
  r = parse_rule("alphabeta:2.5,1.5");
  CHECK(r.alpha == 2.5);
  CHECK(r.beta == 1.5);

  r = parse_rule("zbox:-1,2.5");
  CHECK(r.kind == rule_kind::zbox);
  CHECK(r.epsilon == 1e-6);
  CHECK(r.low.scalar == -1.0);
  CHECK(r.high.scalar == 2.5);
  CHECK_FALSE(r.low.per_feature());
  CHECK(r.low.loaded());

  r = parse_rule("zbox:data/low.npy,data/high.npy");
  CHECK(r.low.path == "data/low.npy");
  CHECK(r.high.path == "data/high.npy");
  CHECK(r.low.per_feature());
  CHECK_FALSE(r.low.loaded());
  r = parse_rule("zbox:0,high.npy");  // mixed: scalar low, per-feature high
  CHECK(r.low.scalar == 0.0);
  CHECK(r.high.path == "high.npy");

  CHECK(parse_rule("flat").kind == rule_kind::flat);
  CHECK(parse_rule("flat").epsilon == 1e-6);
  CHECK(parse_rule("wsquare").kind == rule_kind::wsquare);
  CHECK(parse_rule("  wsquare ").kind == rule_kind::wsquare);

  CHECK(parse_rule("epsilon") == rules::epsilon());
  CHECK(parse_rule("gamma:0.5") == rules::gamma(0.5));
  CHECK(parse_rule("zbox:0,1") == rules::zbox(0, 1));
}

TEST_CASE("parse_rule: invalid forms are refused with the list of valid forms") {
  const std::vector<std::string> bad = {
      "",            "eps",         "Epsilon",       "epsilon:",      "epsilon:x",    "epsilon:-1",
      "epsilon:nan", "epsilon:inf", "epsilon:1,2",   "gamma:",        "gamma:-0.1",   "gamma:abc",
      "zplus:1",     "flat:2",      "wsquare:0",     "zero:1",        "alphabeta:2",  "alphabeta:2,1,0",
      "alphabeta:a,b", "alphabeta:-1,-2", "zbox",    "zbox:",         "zbox:0",       "zbox:0,1,2",
      "zbox:1,0",    "zbox:lo,hi",  "zbox:0,high.txt", "lrp0",        "alphabeta:2;1"};
  for (const auto& text : bad) {
    CAPTURE(text);
    const std::string msg = parse_error_message([&] { parse_rule(text); });
    CHECK(contains(msg, "'" + text + "'"));
    CHECK(contains(msg, "valid rules: zero, epsilon[:E]"));
    CHECK(contains(msg, "zbox:L,H"));
    CHECK(contains(msg, "wsquare"));
  }
}

TEST_CASE("parse_rule: alphabeta with alpha - beta != 1 names the constraint") {
  const std::string msg = parse_error_message([] { parse_rule("alphabeta:3,1"); });
  CHECK(contains(msg, "alpha - beta = 1"));
  CHECK(contains(msg, "alpha=3, beta=1"));
  CHECK_THROWS_AS(rules::alphabeta(1, 1), provnn::parse_error);
  CHECK_NOTHROW(rules::alphabeta(1, 0));
}

TEST_CASE("to_string round-trips through parse_rule") {
  for (const char* text : {"zero", "epsilon", "epsilon:0.1", "epsilon:1e-09", "gamma", "gamma:0.5", "zplus",
                           "alphabeta", "alphabeta:1,0", "zbox:0,1", "zbox:-2.5,3", "zbox:lo.npy,hi.npy", "flat",
                           "wsquare"}) {
    CAPTURE(text);
    const rule r = parse_rule(text);
    CHECK(parse_rule(to_string(r)) == r);
  }
  CHECK(to_string(parse_rule("zbox:lo.npy,1")) == "zbox:lo.npy,1");
  CHECK(to_string(rules::zplus()) == "zplus");
}

TEST_CASE("resolve_bounds loads per-feature bounds through the callback, once") {
  rule r = parse_rule("zbox:lo.npy,3");
  std::vector<std::string> asked;
  auto loader = [&](const std::string& path) {
    asked.push_back(path);
    return std::vector<double>{1.0, 2.0};
  };
  resolve_bounds(r, loader);
  REQUIRE(asked.size() == 1);
  CHECK(asked[0] == "lo.npy");
  CHECK(r.low.loaded());
  CHECK(r.low.at(1) == 2.0);
  CHECK(r.high.at(1) == 3.0);  // the scalar applies to every feature
  resolve_bounds(r, loader);   // already loaded: not read again
  CHECK(asked.size() == 1);

  rule empty = parse_rule("zbox:e.npy,1");
  CHECK_THROWS_AS(resolve_bounds(empty, [](const std::string&) { return std::vector<double>{}; }), provnn::error);
}

TEST_CASE("composites: presets parse, unknown ones list the presets") {
  composite c = parse_composite("epsilon-plus");
  CHECK(c.kind == preset::epsilon_plus);
  c = parse_composite("epsilon-gamma-box:-1,1");
  CHECK(c.kind == preset::epsilon_gamma_box);
  REQUIRE(c.first_rule);
  CHECK(*c.first_rule == rules::zbox(-1, 1));
  c = parse_composite("epsilon-gamma-box:lo.npy,hi.npy");
  CHECK(c.first_rule->low.path == "lo.npy");
  CHECK(to_string(c) == "epsilon-gamma-box:lo.npy,hi.npy");

  for (const char* bad : {"epsilon", "epsilonplus", "epsilon-gamma-box", "epsilon-gamma-box:1", "epsilon-plus:1",
                          "epsilon-gamma-box:1,0", "EpsilonPlus"}) {
    CAPTURE(bad);
    const std::string msg = parse_error_message([&] { parse_composite(bad); });
    CHECK(contains(msg, bad));
    CHECK(contains(msg, "valid composites: epsilon-plus, epsilon-gamma-box:L,H, epsilon-alpha2-beta1, epsilon-plus-flat"));
  }
}

TEST_CASE("composites: which rule each layer gets, per preset, on a conv-first network") {
  const network net = conv_first_net();  // linear: 0 conv1, 1 conv2, 2 fc1, 3 fc2
  auto rs = resolve(parse_composite("epsilon-plus"), net);
  CHECK(rs == std::vector<rule>{rules::zplus(), rules::zplus(), rules::epsilon(), rules::epsilon()});

  rs = resolve(parse_composite("epsilon-alpha2-beta1"), net);
  CHECK(rs == std::vector<rule>{rules::alphabeta(2, 1), rules::alphabeta(2, 1), rules::epsilon(), rules::epsilon()});

  rs = resolve(parse_composite("epsilon-plus-flat"), net);
  CHECK(rs == std::vector<rule>{rules::flat(), rules::zplus(), rules::epsilon(), rules::epsilon()});

  rs = resolve(parse_composite("epsilon-gamma-box:0,1"), net);
  CHECK(rs == std::vector<rule>{rules::zbox(0, 1), rules::gamma(0.25), rules::epsilon(), rules::epsilon()});

  composite none;  // no preset: the default rule (ε = 1e-6) everywhere
  CHECK(resolve(none, net) == std::vector<rule>(4, rules::epsilon()));
}

TEST_CASE("composites: dense-first networks (z^B only when the first layer is a convolution)") {
  const network net = dense_first_net();  // linear: 0 fc1, 1 fc2
  CHECK(resolve(parse_composite("epsilon-gamma-box:0,1"), net) == std::vector<rule>{rules::epsilon(), rules::epsilon()});
  CHECK(resolve(parse_composite("epsilon-plus"), net) == std::vector<rule>{rules::epsilon(), rules::epsilon()});
  CHECK(resolve(parse_composite("epsilon-alpha2-beta1"), net) == std::vector<rule>{rules::epsilon(), rules::epsilon()});
  // Flat goes to the first linear layer, dense or not.
  CHECK(resolve(parse_composite("epsilon-plus-flat"), net) == std::vector<rule>{rules::flat(), rules::epsilon()});
}

TEST_CASE("--rule options: default, first, index, node name, and later overrides win") {
  const network net = conv_first_net();
  composite c;
  add_rule_option(c, "gamma");  // default
  CHECK(resolve(c, net) == std::vector<rule>(4, rules::gamma()));

  add_rule_option(c, "first=zbox:0,1");
  add_rule_option(c, "3=zero");
  add_rule_option(c, "fc1=epsilon:0.1");
  CHECK(resolve(c, net) == std::vector<rule>{rules::zbox(0, 1), rules::gamma(), rules::epsilon(0.1), rules::zero()});

  add_rule_option(c, "conv1=flat");  // later override of the same layer wins over `first`
  CHECK(resolve(c, net)[0] == rules::flat());

  // Overrides on top of a preset.
  composite p = parse_composite("epsilon-plus");
  add_rule_option(p, "2=alphabeta:1,0");
  CHECK(resolve(p, net) == std::vector<rule>{rules::zplus(), rules::zplus(), rules::alphabeta(1, 0), rules::epsilon()});

  // A bare default rule would never apply under a preset: refused, with the way out.
  const std::string msg = parse_error_message([&] { add_rule_option(p, "gamma"); });
  CHECK(contains(msg, "--rule LAYER=gamma"));
  CHECK(resolve(p, net)[2] == rules::alphabeta(1, 0));  // unchanged

  // Node names may contain '=' or ':' (split at the last '=').
  network odd = dense_first_net();
  odd.layers[2].name = "/head/Gemm:a=b";
  composite o;
  add_rule_option(o, "/head/Gemm:a=b=wsquare");
  CHECK(resolve(o, odd) == std::vector<rule>{rules::epsilon(), rules::wsquare()});

  CHECK(to_string(c) == "default=gamma:0.25; first=zbox:0,1; 3=zero; fc1=epsilon:0.1; conv1=flat");
}

TEST_CASE("--rule options: unknown layers are named, with the linear layers listed") {
  const network net = conv_first_net();
  auto msg_for = [&](const char* opt) {
    composite c;
    add_rule_option(c, opt);
    return parse_error_message([&] { resolve(c, net); });
  };
  const std::string listing = "0='conv1' (Conv), 1='conv2' (Conv), 2='fc1' (Gemm), 3='fc2' (Gemm)";

  std::string msg = msg_for("fc9=zero");
  CHECK(contains(msg, "'fc9'"));
  CHECK(contains(msg, listing));
  CHECK(contains(msg, "convnet.onnx"));

  msg = msg_for("4=zero");
  CHECK(contains(msg, "index 4 is out of range (0..3)"));
  CHECK(contains(msg, listing));

  msg = msg_for("relu1=zero");
  CHECK(contains(msg, "'relu1' is a Relu layer"));
  CHECK(contains(msg, listing));

  network empty;
  empty.source = "empty.onnx";
  composite c;
  add_rule_option(c, "first=flat");
  CHECK(contains(parse_error_message([&] { resolve(c, empty); }), "no linear"));

  CHECK_THROWS_AS(add_rule_option(c, "=zero"), provnn::parse_error);
  CHECK_THROWS_AS(add_rule_option(c, "fc1=bogus"), provnn::parse_error);
}
