// The fused layout of build_circuit (circuit_layout::fused, DESIGN §5, issue 5) against the
// plain layout and against engine::lrp(), over every rule × bundled model × bias mode:
//   1. real evaluation = lrp() (and = the plain circuit) to floating-point accuracy;
//   2. exact semirings (counting, Boolean) give the plain circuit's values exactly;
//   3. expand_fused() gives the plain circuit's edges: the same multiset of edge contexts,
//      and K-LRP under edge annotations (threshold, viterbi-maxnorm) equal to the plain's;
//   4. N[X]: the polynomials of every root equal the plain circuit's (small synthetic MLPs);
//   5. several targets share parameter tokens; a fused circuit round-trips through a file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "circuits/expand.hpp"
#include "circuits/file_format.hpp"
#include "circuits/fused.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"
#include "semirings/boolean.hpp"
#include "semirings/counting.hpp"
#include "semirings/fuzzy.hpp"
#include "semirings/homomorphism.hpp"
#include "semirings/nx.hpp"
#include "semirings/real.hpp"
#include "semirings/security.hpp"
#include "semirings/viterbi.hpp"
#include "tests/engine/engine_test_util.hpp"

using namespace provnn;
using namespace provnn::engine;

namespace {

using test::sorted_contexts;

const std::filesystem::path data = PROVNN_TEST_DATA_DIR;

struct model_case {
  std::string file, input;
};
const std::vector<model_case> models = {
    {"models/digits_mlp.onnx", "inputs/mlp_input_0.npy"},
    {"models/digits_cnn.onnx", "inputs/cnn_input_0.npy"},
    {"models/digits_cnn_maxpool.onnx", "inputs/cnn_input_0.npy"},
    {"models/digits_cnn_bn.onnx", "inputs/cnn_input_0.npy"},
};
// Every rule kind, and the presets that mix them (z^B on the first layer).
const std::vector<std::string> rule_specs = {"zero",   "epsilon", "epsilon:0.1", "gamma",   "zplus",
                                             "alphabeta", "flat", "wsquare",     "preset:epsilon-plus",
                                             "preset:epsilon-gamma-box:0,1",      "preset:epsilon-alpha2-beta1"};

std::vector<rule> rules_of(const std::string& spec, const network& net) { return test::rules_from_spec(spec, net); }

// The ε circuit of a synthetic network in the fused layout, and issue 5's memory target on it.
struct fused_epsilon {
  explicit fused_epsilon(const std::string& spec) : net(synthetic_network(spec)), fwd(forward(net, synthetic_input(net))) {
    o.layer_rules = rules_of("epsilon", net);
    o.layout = circuit_layout::fused;
    c = build_circuit(net, fwd, o, &info);
  }
  // ≤ 16 bytes per active edge in memory (token table included), the file no larger.
  void check_bytes_per_edge() const {
    const std::size_t held = c.bytes() + c.tokens().bytes();
    CHECK(held <= 16 * info.edges);
    CHECK(serialize_circuit(c).size() <= held);
  }
  network net;
  forward_result fwd;
  circuit_options o;
  circuit_build_info info;
  circuit c;
};

std::vector<double> roots_real(const circuit& c) { return evaluate_roots(c, real_semiring{}, c.tokens().values()); }

template <class S>
auto roots_in(const circuit& c, const S& s, const edge_annotation* theta = nullptr) {
  const auto v = lift_valuation(c, s);
  return evaluate_roots(c, s, std::span<const stored_value_t<S>>(v), theta);
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}


}  // namespace

namespace {

/// The edges of every fused gate in stage order: for a fixed lower unit, the parameters it
/// meets in the weight tensor's own row-major order (dense W[k, j]: k ascending; convolution
/// W[co, ci, ky, kx]: (co, ky, kx) ascending), so their coordinates strictly increase. This is
/// the order the builder's bucketing keeps whichever way it visits the edges; returns how many
/// gates broke it.
std::size_t gates_out_of_stage_order(const circuit& c) {
  std::size_t bad = 0;
  std::vector<std::uint32_t> buf_a, buf_b;
  for (std::size_t i = 0; i < c.fused_gates().size(); ++i) {
    const auto ps = c.fused_parameters(i);
    for (std::size_t e = 1; e < ps.size(); ++e) {
      const auto a = c.tokens().index(ps[e - 1], buf_a);
      const std::vector<std::uint32_t> prev(a.begin(), a.end());
      const auto b = c.tokens().index(ps[e], buf_b);
      if (!std::lexicographical_compare(prev.begin(), prev.end(), b.begin(), b.end())) {
        ++bad;
        break;
      }
    }
  }
  return bad;
}

}  // namespace

TEST_CASE("fused layout: = lrp() and = the plain circuit, every rule × model × bias mode, and expansion = plain edges") {
  std::size_t cases = 0, edges = 0;
  double worst_lrp = 0, worst_plain = 0, worst_viterbi = 0;
  for (const auto& m : models) {
    const network net = load_onnx(data / m.file);
    const auto x = select_sample(read_npy(data / m.input), net.input_shape, std::nullopt, m.input);
    const auto fwd = forward(net, x);
    for (const auto& spec : rule_specs)
      for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
        INFO(m.file, " ", spec, std::string(b == bias_mode::kept ? " bias kept" : " bias zeroed"));
        circuit_options o;
        o.layer_rules = rules_of(spec, net);
        o.bias = b;
        circuit_build_info plain_info, fused_info;
        const circuit plain = build_circuit(net, fwd, o, &plain_info);
        o.layout = circuit_layout::fused;
        const circuit fused = build_circuit(net, fwd, o, &fused_info);
        CHECK(has_fused_gates(fused));
        {
          // Dense stages are bucketed from their weight rows (bucket_dense_edges), other
          // stages from a record of their edges; a stage over max_recorded_edges is traversed
          // twice instead. Every way gives the same bytes.
          circuit_options twice = o;
          twice.max_recorded_edges = 0;
          CHECK(serialize_circuit(build_circuit(net, fwd, twice)) == serialize_circuit(fused));
          CHECK(gates_out_of_stage_order(fused) == 0);
        }
        CHECK(fused_info.edges == plain_info.edges);
        CHECK(fused.metadata().at("layout") == "fused");
        REQUIRE(fused.roots().size() == plain.roots().size());
        for (std::size_t r = 0; r < plain.roots().size(); ++r) CHECK(fused.roots()[r].name == plain.roots()[r].name);

        // 1. real = lrp() on the feature roots, = plain on every root
        lrp_options lo;
        lo.layer_rules = o.layer_rules;
        lo.bias = b;
        const auto expect = lrp(net, fwd, lo).input_relevance();
        const auto fv = roots_real(fused), pv = roots_real(plain);
        const double scale = std::max(1e-300, max_abs(expect));
        for (std::size_t r = 0; r < fv.size(); ++r) {
          const auto& root = fused.roots()[r];
          if (root.kind == root_kind::feature) worst_lrp = std::max(worst_lrp, std::fabs(fv[r] - expect[root.index]) / scale);
          worst_plain = std::max(worst_plain, std::fabs(fv[r] - pv[r]) / scale);
        }
        CHECK(worst_lrp <= 1e-9);
        CHECK(worst_plain <= 1e-9);

        // 2. exact semirings: identical
        CHECK(roots_in(fused, counting_semiring{}) == roots_in(plain, counting_semiring{}));
        CHECK(roots_in(fused, boolean_semiring{}) == roots_in(plain, boolean_semiring{}));
        CHECK(roots_in(fused, fuzzy_semiring{}) == roots_in(plain, fuzzy_semiring{}));  // max/min: no rounding
        CHECK(roots_in(fused, security_semiring{}) == roots_in(plain, security_semiring{}));

        // 3. the expansion has the plain circuit's edges, and K-LRP on it equals the plain's
        const circuit e = expand_fused(fused);
        CHECK_FALSE(has_fused_gates(e));
        CHECK(e.edge_gates().size() == plain.edge_gates().size());
        CHECK(sorted_contexts(e) == sorted_contexts(plain));
        CHECK(roots_in(e, counting_semiring{}) == roots_in(plain, counting_semiring{}));
        const auto th_e = threshold_annotation(e, 0.0), th_p = threshold_annotation(plain, 0.0);
        CHECK(roots_in(e, counting_semiring{}, &th_e) == roots_in(plain, counting_semiring{}, &th_p));
        CHECK(roots_in(e, boolean_semiring{}, &th_e) == roots_in(plain, boolean_semiring{}, &th_p));
        const auto vm_e = viterbi_maxnorm_annotation(e), vm_p = viterbi_maxnorm_annotation(plain);
        const auto ve = roots_in(e, viterbi_semiring{}, &vm_e), vp = roots_in(plain, viterbi_semiring{}, &vm_p);
        REQUIRE(ve.size() == vp.size());
        for (std::size_t r = 0; r < ve.size(); ++r) worst_viterbi = std::max(worst_viterbi, std::fabs(ve[r] - vp[r]));
        CHECK(worst_viterbi <= 1e-12);
        ++cases;
        edges += plain_info.edges;
      }
  }
  CHECK(cases == models.size() * rule_specs.size() * 2);
  MESSAGE(fmt::format("{} cases, {} edges; worst relative error fused vs lrp() {:.3g}, fused vs plain {:.3g}, "
                      "Viterbi (max-norm) expansion vs plain {:.3g}",
                      cases, edges, worst_lrp, worst_plain, worst_viterbi));
}

TEST_CASE("fused layout: the N[X] polynomial of every root equals the plain circuit's (small MLPs, every rule)") {
  std::size_t compared = 0, monomials = 0;
  for (const char* spec_net : {"mlp:5-4-3-2", "mlp:8-6-5-3", "mlp:10-8-6"}) {
    const network net = synthetic_network(spec_net);
    const auto fwd = forward(net, synthetic_input(net));
    for (const auto& spec : {"zero", "epsilon", "gamma", "zplus", "alphabeta", "flat", "wsquare"}) {
      INFO(std::string(spec_net), " ", std::string(spec));
      circuit_options o;
      o.layer_rules = rules_of(spec, net);
      o.targets = {0, 1};  // two targets share the circuit
      const circuit plain = build_circuit(net, fwd, o);
      o.layout = circuit_layout::fused;
      const circuit fused = build_circuit(net, fwd, o);
      {
        circuit_options twice = o;  // (as in the test above, with two targets)
        twice.max_recorded_edges = 0;
        CHECK(serialize_circuit(build_circuit(net, fwd, twice)) == serialize_circuit(fused));
      }
      std::vector<gate_id> pr, fr;
      for (const auto& r : plain.roots()) pr.push_back(r.gate);
      for (const auto& r : fused.roots()) fr.push_back(r.gate);
      const auto pp = expand(plain, pr, 100000), fp = expand(fused, fr, 100000);
      REQUIRE(pp.size() == fp.size());
      // The layouts intern tokens in different orders: rename the fused circuit's tokens into
      // the plain circuit's by name (a renaming is a homomorphism N[X] → N[X]).
      const auto rename = [&](token_index t) {
        const auto u = plain.tokens().find(fused.tokens().name(t));
        REQUIRE(u.has_value());
        return polynomial::variable(*u);
      };
      for (std::size_t i = 0; i < pp.size(); ++i) {
        CHECK(evaluate_polynomial(nx_semiring{}, fp[i], rename) == pp[i]);
        monomials += pp[i].size();
      }
      compared += pp.size();
      // Several targets share the parameter tokens: one block per stage and variant holds
      // every parameter once (also those of inactive edges), so each of the plain circuit's
      // tokens exists in the fused one under the same name, with the same value.
      for (token_index t = 0; t < plain.tokens().size(); ++t) {
        const auto u = fused.tokens().find(plain.tokens().name(t));
        REQUIRE(u.has_value());
        CHECK(fused.tokens().value(*u) == plain.tokens().value(t));
      }
    }
  }
  CHECK(monomials > 1000);
  MESSAGE(fmt::format("{} root polynomials compared, {} monomials", compared, monomials));
}

TEST_CASE("fused layout: dense layers of 70, 40 and 33 inputs (full tiles of 32 and a partial one) give the bytes "
          "of the stage-order traversal, every rule, two targets") {
  const network net = synthetic_network("mlp:70-40-33-7");
  const auto fwd = forward(net, synthetic_input(net));
  for (const auto& spec : {"zero", "epsilon", "gamma", "zplus", "alphabeta", "flat", "wsquare"}) {
    INFO(std::string(spec));
    circuit_options o;
    o.layer_rules = rules_of(spec, net);
    o.targets = {0, 3};
    o.layout = circuit_layout::fused;
    circuit_build_info info;
    const circuit fused = build_circuit(net, fwd, o, &info);
    CHECK(info.edges > 500);  // (z⁺: 775, the fewest)
    circuit_options twice = o;
    twice.max_recorded_edges = 0;
    CHECK(serialize_circuit(build_circuit(net, fwd, twice)) == serialize_circuit(fused));
    o.layout = circuit_layout::plain;
    CHECK(roots_in(fused, counting_semiring{}) == roots_in(build_circuit(net, fwd, o), counting_semiring{}));
  }
}

TEST_CASE("fused layout: a saved fused circuit loads back with the same values, and ≤ 16 bytes per active edge") {
  const fused_epsilon f("mlp:784-300-100-10");
  const auto& [net, fwd, o, info, c] = f;
  const circuit back = deserialize_circuit(serialize_circuit(c));
  CHECK(roots_real(back) == roots_real(c));
  // One child reference per edge, plus O(units) gates; a dense layer's parameters are runs,
  // so no parameter entries at all.
  CHECK(c.fused_edge_count() == info.edges);
  CHECK(c.size() < 4000);
  CHECK(c.raw_children().size() < info.edges + 4000);
  CHECK(c.raw_fused_parameters().empty());
  f.check_bytes_per_edge();
  // The numeric reference, again, at this size.
  lrp_options lo;
  lo.layer_rules = o.layer_rules;
  const auto expect = lrp(net, fwd, lo).input_relevance();
  const auto v = roots_real(c);
  double err = 0;
  for (std::size_t r = 0; r < c.roots().size(); ++r)
    if (c.roots()[r].kind == root_kind::feature)
      err = std::max(err, std::fabs(v[r] - expect[c.roots()[r].index]) / std::max(1e-300, max_abs(expect)));
  CHECK(err <= 1e-9);
}

TEST_CASE("fused layout: grouped and non-square convolutions keep their weights as 16-bit offsets, = the plain "
          "circuit, and recording active edges or traversing twice gives the same bytes") {
  struct geometry {
    const char* what;
    std::size_t cin, cout, h, w, kh, kw, stride, pad, group, dilation = 1;
  };
  const geometry gs[] = {
      {"groups 2, 3x2 kernel", 4, 6, 6, 5, 3, 2, 1, 1, 2},
      {"depthwise 2x3, stride 2", 3, 3, 7, 6, 2, 3, 2, 0, 3},
      {"dense 5x5", 2, 4, 8, 8, 5, 5, 1, 2, 1},
      {"3x3 dilated 2, stride 2, padded", 2, 3, 9, 8, 3, 3, 2, 1, 1, 2},
  };
  std::uint32_t seed = 7;
  for (const auto& gm : gs) {
    CAPTURE(gm.what);
    conv2d_op c;
    c.in_channels = gm.cin, c.out_channels = gm.cout, c.kernel_h = gm.kh, c.kernel_w = gm.kw;
    c.stride_h = c.stride_w = gm.stride;
    c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = gm.pad;
    c.group = gm.group;
    c.dilation_h = c.dilation_w = gm.dilation;
    c.weight = test::pseudo_random(gm.cout * (gm.cin / gm.group) * gm.kh * gm.kw, seed++);
    c.bias = test::pseudo_random(gm.cout, seed++, -0.1, 0.1);
    network net;
    net.source = gm.what;
    net.input_shape = {gm.cin, gm.h, gm.w};
    net.layers.push_back(test::conv_layer(c, net.input_shape));
    const std::vector<double> x = test::pseudo_random(gm.cin * gm.h * gm.w, seed++);
    const auto fwd = forward(net, x);
    for (const std::string rule : {"epsilon", "alphabeta", "gamma"}) {
      CAPTURE(rule);
      circuit_options o;
      o.layer_rules = rules_of(rule, net);
      // Every output unit relevant (an initial vector of ones): a class target would give each
      // input unit one edge, to that unit, and no gate would need offsets.
      o.target = std::vector<double>(fwd.output().size(), 1.0);
      const circuit plain = build_circuit(net, fwd, o);
      o.layout = circuit_layout::fused;
      const circuit fused = build_circuit(net, fwd, o);
      o.max_recorded_edges = 0;
      const circuit twice = build_circuit(net, fwd, o);
      CHECK(serialize_circuit(fused) == serialize_circuit(twice));
      // Both ways visit the edges from the needed output units (not in stage order): the
      // bucketing must still keep each gate's edges in stage order.
      CHECK(gates_out_of_stage_order(fused) == 0);
      CHECK(gates_out_of_stage_order(twice) == 0);
      REQUIRE(!fused.fused_gates().empty());
      std::size_t offsets = 0;
      for (std::size_t i = 0; i < fused.fused_gates().size(); ++i) {
        const auto ps = fused.fused_parameters(i);
        CHECK((ps.is_offsets() || ps.is_run()));
        offsets += ps.is_offsets();
      }
      CHECK(offsets > 0);
      // Every edge names the same weight W[co, ci, ky, kx] in both layouts (the block's
      // input-channel-major storage must not change which coordinates a token stands for).
      CHECK(sorted_contexts(expand_fused(fused)) == sorted_contexts(plain));
      const auto vp = roots_real(plain), vf = roots_real(fused);
      for (std::size_t r = 0; r < plain.roots().size(); ++r) {
        const auto* fr = fused.find_root(plain.roots()[r].name);
        REQUIRE(fr);
        CHECK(vf[static_cast<std::size_t>(fr - fused.roots().data())] == doctest::Approx(vp[r]).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("fused layout: lenet5 ≤ 16 bytes per active edge, its convolutions as 16-bit offsets, the file no larger") {
  const fused_epsilon f("lenet5");
  const auto& [net, fwd, o, info, c] = f;
  f.check_bytes_per_edge();
  CHECK(c.raw_fused_parameters().empty());  // no 32-bit lists: every conv gate fits 16-bit offsets
  CHECK(c.raw_fused_parameter_deltas().size() > info.edges / 2);
}

TEST_CASE("fused layout: a one-term dense layer whose tiles of 128 inputs are full, or not (a zero weight, a zero "
          "input), gives the bytes of the stage-order traversal and the plain circuit's values") {
  // 300 inputs: tiles j 0–127, 128–255 and a partial one, 256–299. A full tile's ψ values go
  // straight to the token table; a tile with a zero ψ is bucketed edge by edge, and so are the
  // tiles after it. Zeroing column j of the first layer's weights puts a zero into j's tile;
  // zeroing input features leaves lower units without φ (gaps in a full tile).
  struct variant {
    const char* what;
    std::vector<std::size_t> zero_columns, zero_inputs;
  };
  const std::vector<variant> variants = {{"every tile full", {}, {}},
                                         {"a zero weight in the first tile", {5}, {}},
                                         {"a zero weight in the second tile", {200}, {}},
                                         {"a zero weight in the partial tile", {299}, {}},
                                         {"zero inputs in full tiles", {}, {0, 1, 127, 128, 290}}};
  for (const auto& vr : variants) {
    INFO(vr.what);
    network net = synthetic_network("mlp:300-24-6");
    auto& d = std::get<dense_op>(net.layers.front().op);
    REQUIRE(d.in == 300);
    for (std::size_t j : vr.zero_columns)
      for (std::size_t k = 0; k < d.out; ++k) d.weight[k * d.in + j] = 0;
    std::vector<double> x = synthetic_input(net);
    for (std::size_t j : vr.zero_inputs) x[j] = 0;
    const auto fwd = forward(net, x);
    for (const auto& spec : {"epsilon", "zero", "wsquare"}) {
      INFO(std::string(spec));
      circuit_options o;
      o.layer_rules = rules_of(spec, net);
      o.layout = circuit_layout::fused;
      circuit_build_info info;
      const circuit fused = build_circuit(net, fwd, o, &info);
      circuit_options twice = o;
      twice.max_recorded_edges = 0;  // no direct bucketing: the counting pass and sort
      CHECK(serialize_circuit(build_circuit(net, fwd, twice)) == serialize_circuit(fused));
      o.layout = circuit_layout::plain;
      const circuit plain = build_circuit(net, fwd, o);
      CHECK(roots_in(fused, counting_semiring{}) == roots_in(plain, counting_semiring{}));
      const auto rf = roots_real(fused), rp = roots_real(plain);
      REQUIRE(rf.size() == rp.size());
      for (std::size_t i = 0; i < rf.size(); ++i) CHECK(rf[i] == doctest::Approx(rp[i]).epsilon(1e-12));
      // A zero column: that lower unit has no edge; a zero input: no fused gate either, but
      // for w² (φ = 1).
      std::size_t lower_units = 0;
      for (const auto& ctx : fused.fused_contexts()) lower_units += ctx.layer == 1;
      const bool phi_one = std::string(spec) == "wsquare";
      CHECK(lower_units == 300 - vr.zero_columns.size() - (phi_one ? 0 : vr.zero_inputs.size()));
    }
  }
}
