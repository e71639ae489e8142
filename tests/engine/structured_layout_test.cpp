// The structured layout of build_circuit (circuit_layout::structured, DESIGN §5, issue 5):
// a convolution's edges are implied by its geometry (conv stages + one structured gate per
// lower unit) instead of stored. Checked against the fused layout, which stores every edge:
//   1. the same active edges (count and, after expand_fused, the same multiset of edge
//      contexts), the same values in ℝ (to rounding: the sums run k-major), the same values
//      exactly in counting, Boolean, fuzzy and security, the same N[X] polynomials;
//   2. lazily expanded (expand_fused), the same circuit as the fused layout's expansion:
//      identical DOT once tokens are named, identical values;
//   3. masked evaluation (one root's cone), a non-finite valuation (ℝ's matrix product is
//      bypassed: 0·∞ is not 0), a file round trip and damaged version-4 files;
//   4. memory O(units + parameters): far below the fused layout on lenet5.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "circuits/dot.hpp"
#include "circuits/evaluate.hpp"
#include "circuits/expand.hpp"
#include "circuits/file_format.hpp"
#include "circuits/fused.hpp"
#include "common/error.hpp"
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
#include "semirings/max_plus.hpp"
#include "semirings/nx.hpp"
#include "semirings/real.hpp"
#include "semirings/security.hpp"
#include "semirings/topk.hpp"
#include "semirings/viterbi.hpp"
#include "tests/common/pvc_bytes.hpp"
#include "tests/engine/engine_test_util.hpp"

using namespace provnn;
using namespace provnn::engine;

namespace {

using test::sorted_contexts;

const std::filesystem::path data = PROVNN_TEST_DATA_DIR;

std::vector<rule> rules_named(const std::string& spec, const network& net) { return test::rules_from_spec(spec, net); }

template <class S>
auto roots_in(const circuit& c, const S& s) {
  const auto v = lift_valuation(c, s);
  return evaluate_roots(c, s, std::span<const stored_value_t<S>>(v));
}

// Each root's top-3 entries as "score tokens", the token names sorted (layouts number their
// tokens differently).
std::vector<std::vector<std::string>> topk_by_name(const circuit& c) {
  const auto values = roots_in(c, topk_semiring(3));
  const auto names = c.tokens().namer();
  std::vector<std::vector<std::string>> out;
  for (const auto& v : values) {
    auto& entries = out.emplace_back();
    for (const auto& e : topk_list(v).entries) {
      std::vector<std::string> ts;
      for (const auto& f : e.mono) ts.push_back(fmt::format("{}^{}", names(f.token), f.exponent));
      std::sort(ts.begin(), ts.end());
      entries.push_back(fmt::format("{} {}", e.score, fmt::join(ts, "·")));
    }
  }
  return out;
}

std::vector<double> roots_real(const circuit& c) { return evaluate_roots(c, real_semiring{}, c.tokens().values()); }

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Largest |a − b| over the roots, relative to the largest |a|; both circuits list the same roots.
double relative_gap(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double gap = 0;
  for (std::size_t i = 0; i < a.size(); ++i) gap = std::max(gap, std::fabs(a[i] - b[i]));
  return gap / std::max(1e-300, max_abs(a));
}


// The fused and structured circuits of one network, rule and target, with the checks of 1.–2.
struct layouts {
  layouts(const network& net, const forward_result& fwd, circuit_options o) {
    o.layout = circuit_layout::fused;
    fused = build_circuit(net, fwd, o, &fused_info);
    o.layout = circuit_layout::structured;
    structured = build_circuit(net, fwd, o, &structured_info);
  }

  void check_same() const {
    CHECK(structured.metadata().at("layout") == "structured");
    CHECK(structured_info.edges == fused_info.edges);
    CHECK(structured.structured_edge_count() + structured.fused_edge_count() == fused.fused_edge_count());
    REQUIRE(structured.roots().size() == fused.roots().size());
    for (std::size_t r = 0; r < fused.roots().size(); ++r) CHECK(structured.roots()[r].name == fused.roots()[r].name);
    CHECK(relative_gap(roots_real(fused), roots_real(structured)) <= 1e-12);
    CHECK(roots_in(structured, counting_semiring{}) == roots_in(fused, counting_semiring{}));
    CHECK(roots_in(structured, boolean_semiring{}) == roots_in(fused, boolean_semiring{}));
    CHECK(roots_in(structured, fuzzy_semiring{}) == roots_in(fused, fuzzy_semiring{}));
    CHECK(roots_in(structured, security_semiring{}) == roots_in(fused, security_semiring{}));
    CHECK(roots_in(structured, max_plus_semiring{}) == roots_in(fused, max_plus_semiring{}));
    CHECK(roots_in(structured, viterbi_semiring{}) == roots_in(fused, viterbi_semiring{}));
    // Top-k: structured stages by term_sums against the fused layout's kernel (stages of
    // several targets and rule terms alive at once). The layouts number their tokens
    // differently, so entries are compared by score and token names.
    CHECK(topk_by_name(structured) == topk_by_name(fused));
    // Lazily expanded: the fused layout's expansion, edge for edge.
    const circuit es = expand_fused(structured), ef = expand_fused(fused);
    CHECK_FALSE(has_fused_gates(es));
    CHECK(es.edge_gates().size() == fused_info.edges);
    CHECK(sorted_contexts(es) == sorted_contexts(ef));
    CHECK(roots_in(es, counting_semiring{}) == roots_in(ef, counting_semiring{}));
  }

  circuit fused, structured;
  circuit_build_info fused_info, structured_info;
};

struct conv_geometry_case {
  const char* what;
  std::size_t cin, cout, h, w, kh, kw, stride, pad, group, dilation = 1;
  // width and the other sides, where they differ (0 / npos: as stride, dilation, pad)
  std::size_t stride_w = 0, dilation_w = 0, pad_left = npos, pad_bottom = npos, pad_right = npos;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};
const conv_geometry_case geometries[] = {
    {"groups 2, 3x2 kernel", 4, 6, 6, 5, 3, 2, 1, 1, 2},
    {"depthwise 2x3, stride 2", 3, 3, 7, 6, 2, 3, 2, 0, 3},
    {"dense 5x5, padded 2", 2, 4, 8, 8, 5, 5, 1, 2, 1},
    {"3x3 dilated 2, stride 2, padded", 2, 3, 9, 8, 3, 3, 2, 1, 1, 2},
    {"1x1", 3, 5, 4, 3, 1, 1, 1, 0, 1},
    {"stride 2x1, dilation 1x2, pads top 1 left 0 bottom 2 right 1", 2, 3, 7, 9, 3, 2, 2, 1, 1, 1, 1, 2, 0, 2, 1},
};

conv2d_op conv_of(const conv_geometry_case& gm, std::uint32_t& seed) {
  conv2d_op c;
  c.in_channels = gm.cin, c.out_channels = gm.cout, c.kernel_h = gm.kh, c.kernel_w = gm.kw;
  const auto npos = conv_geometry_case::npos;
  c.stride_h = gm.stride, c.stride_w = gm.stride_w ? gm.stride_w : gm.stride;
  c.pad_top = gm.pad, c.pad_left = gm.pad_left != npos ? gm.pad_left : gm.pad;
  c.pad_bottom = gm.pad_bottom != npos ? gm.pad_bottom : gm.pad, c.pad_right = gm.pad_right != npos ? gm.pad_right : gm.pad;
  c.group = gm.group;
  c.dilation_h = gm.dilation, c.dilation_w = gm.dilation_w ? gm.dilation_w : gm.dilation;
  c.weight = test::pseudo_random(gm.cout * (gm.cin / gm.group) * gm.kh * gm.kw, seed++);
  c.bias = test::pseudo_random(gm.cout, seed++, -0.1, 0.1);
  return c;
}

using test::read_u64;
using test::reseal;
using test::write_u32;

}  // namespace

TEST_CASE("structured layout: = the fused layout on the bundled CNNs, every rule kind × bias mode, and = lrp()") {
  struct model_case {
    std::string file, input;
  };
  const model_case models[] = {{"models/digits_cnn.onnx", "inputs/cnn_input_0.npy"},
                               {"models/digits_cnn_maxpool.onnx", "inputs/cnn_input_0.npy"},
                               {"models/digits_cnn_bn.onnx", "inputs/cnn_input_0.npy"}};
  std::size_t cases = 0, structured_gates = 0;
  double worst_lrp = 0;
  for (const auto& m : models) {
    const network net = load_onnx(data / m.file);
    const auto x = select_sample(read_npy(data / m.input), net.input_shape, std::nullopt, m.input);
    const auto fwd = forward(net, x);
    for (const std::string spec : {"zero", "epsilon", "gamma", "zplus", "alphabeta", "flat", "wsquare",
                                   "preset:epsilon-gamma-box:0,1", "preset:epsilon-alpha2-beta1"})
      for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
        INFO(m.file, " ", spec, std::string(b == bias_mode::kept ? " bias kept" : " bias zeroed"));
        circuit_options o;
        o.layer_rules = rules_named(spec, net);
        o.bias = b;
        const layouts L(net, fwd, o);
        L.check_same();
        CHECK_FALSE(L.structured.structured_gates().empty());
        CHECK_FALSE(L.structured.conv_stages().empty());
        structured_gates += L.structured.structured_gates().size();
        lrp_options lo;
        lo.layer_rules = o.layer_rules;
        lo.bias = b;
        const auto expect = lrp(net, fwd, lo).input_relevance();
        const auto v = roots_real(L.structured);
        for (std::size_t r = 0; r < v.size(); ++r) {
          const auto& root = L.structured.roots()[r];
          if (root.kind == root_kind::feature)
            worst_lrp = std::max(worst_lrp, std::fabs(v[r] - expect[root.index]) / std::max(1e-300, max_abs(expect)));
        }
        CHECK(worst_lrp <= 1e-9);
        ++cases;
      }
  }
  CHECK(cases == 3 * 9 * 2);
  MESSAGE(fmt::format("{} cases, {} structured gates; worst relative error structured vs lrp() {:.3g}", cases,
                      structured_gates, worst_lrp));
}

TEST_CASE("structured layout: grouped, depthwise, strided, dilated, padded and 1x1 convolutions, three rules, every "
          "output unit relevant and two class targets") {
  std::uint32_t seed = 11;
  std::size_t shared = 0;  // pairs of stages of one term, for two explanations
  for (const auto& gm : geometries) {
    CAPTURE(gm.what);
    network net;
    net.source = gm.what;
    net.input_shape = {gm.cin, gm.h, gm.w};
    net.layers.push_back(test::conv_layer(conv_of(gm, seed), net.input_shape));
    const std::vector<double> x = test::pseudo_random(gm.cin * gm.h * gm.w, seed++);
    const auto fwd = forward(net, x);
    for (const std::string spec : {"epsilon", "alphabeta", "gamma", "zplus"}) {
      CAPTURE(spec);
      circuit_options o;
      o.layer_rules = rules_named(spec, net);
      o.target = std::vector<double>(fwd.output().size(), 1.0);
      layouts(net, fwd, o).check_same();
      circuit_options two = o;
      two.target = predicted_class{};
      two.targets = {0, 2};
      const layouts L(net, fwd, two);
      L.check_same();
      // Two explanations: one conv stage per explanation and term with an edge, the
      // parameters shared.
      const auto& stages = L.structured.conv_stages();
      for (std::size_t a = 0; a < stages.size(); ++a)
        for (std::size_t b = a + 1; b < stages.size(); ++b)
          if (stages[a].term == stages[b].term) {
            CHECK(stages[a].parameters == stages[b].parameters);
            ++shared;
          }
    }
  }
  CHECK(shared >= 10);
  MESSAGE(shared, " pairs of stages share their parameter tokens");
}

TEST_CASE("structured layout: the N[X] polynomial of every root equals the fused layout's (two stacked convolutions)") {
  std::uint32_t seed = 29;
  const conv_geometry_case first{"3x3 on 5x5, 2→3 channels", 2, 3, 5, 5, 3, 3, 1, 1, 1};
  const conv_geometry_case second{"2x2 stride 2, 3→2 channels", 3, 2, 5, 5, 2, 2, 2, 0, 1};
  network net;
  net.source = "two convolutions";
  net.input_shape = {2, 5, 5};
  net.layers.push_back(test::conv_layer(conv_of(first, seed), net.input_shape));
  net.layers.push_back(test::conv_layer(conv_of(second, seed), net.layers.back().out_shape));
  const auto fwd = forward(net, test::pseudo_random(50, seed++));
  std::size_t monomials = 0;
  for (const std::string spec : {"zero", "epsilon", "gamma", "alphabeta", "flat", "wsquare"}) {
    CAPTURE(spec);
    circuit_options o;
    o.layer_rules = rules_named(spec, net);
    o.targets = {0, 3};
    const layouts L(net, fwd, o);
    std::vector<gate_id> fr, sr;
    for (const auto& r : L.fused.roots()) fr.push_back(r.gate);
    for (const auto& r : L.structured.roots()) sr.push_back(r.gate);
    const auto fp = expand(L.fused, fr, 200000), sp = expand(L.structured, sr, 200000);
    REQUIRE(fp.size() == sp.size());
    // Token numbers differ between the layouts: rename by name (a homomorphism N[X] → N[X]).
    const auto rename = [&](token_index t) {
      const auto u = L.fused.tokens().find(L.structured.tokens().name(t));
      REQUIRE(u.has_value());
      return polynomial::variable(*u);
    };
    for (std::size_t i = 0; i < fp.size(); ++i) {
      CHECK(evaluate_polynomial(nx_semiring{}, sp[i], rename) == fp[i]);
      monomials += fp[i].size();
    }
  }
  CHECK(monomials > 1000);
  MESSAGE(fmt::format("{} monomials compared", monomials));
}

TEST_CASE("structured layout: expanded lazily it is the fused layout's expansion, DOT for DOT") {
  const network net = load_onnx(data / "models/digits_cnn.onnx");
  const auto fwd = forward(net, select_sample(read_npy(data / "inputs/cnn_input_0.npy"), net.input_shape, std::nullopt,
                                              "cnn_input_0.npy"));
  for (const std::string spec : {"epsilon", "alphabeta"}) {
    CAPTURE(spec);
    circuit_options o;
    o.layer_rules = rules_named(spec, net);
    const layouts L(net, fwd, o);
    circuit es = expand_fused(L.structured);
    const circuit ef = expand_fused(L.fused);
    CHECK(es.metadata().at("layout") == "plain, expanded from structured");
    CHECK(ef.metadata().at("layout") == "plain, expanded from fused");
    es.metadata()["layout"] = ef.metadata().at("layout");
    REQUIRE(es.size() == ef.size());
    CHECK(es.raw_children().size() == ef.raw_children().size());
    // The structured layout makes a stage's scale gates before its structured gates, the
    // fused one as its fused gates first need them: the same gates, numbered differently.
    // So the DOT of each root's cone is compared with every node named by what it computes
    // (a hash of its kind, token name and children's names, in order) and its lines sorted.
    const auto canonical = [](const circuit& c) {
      std::vector<std::uint64_t> h(c.size());
      for (std::uint32_t g = 0; g < c.size(); ++g) {
        std::uint64_t x = 1469598103934665603ull ^ static_cast<std::uint64_t>(c.kind(gate_id{g}));
        const auto mix = [&x](std::uint64_t v) { x = (x ^ v) * 1099511628211ull; };
        if (c.kind(gate_id{g}) == gate_kind::token) {
          for (char ch : c.tokens().name(c.token_of(gate_id{g}))) mix(static_cast<unsigned char>(ch));
        } else {
          for (auto ch : c.children(gate_id{g})) mix(h[to_index(ch)] * 0x9E3779B97F4A7C15ull + 1);
        }
        h[g] = x;
      }
      return h;
    };
    const auto dot_of = [&](const circuit& c, std::size_t r) {
      const auto h = canonical(c);
      dot_options d;
      d.roots = {c.roots()[r].gate};
      d.max_gates = 100000;
      d.token_values = real_labels(c.tokens().values());
      const auto values = evaluate(c, real_semiring{});
      d.gate_values = real_labels(values);
      std::string text = to_dot(c, d), out;
      // g<id> → h<hash>, then the lines sorted.
      for (std::size_t i = 0; i < text.size();) {
        if (text[i] == 'g' && (i == 0 || !std::isalnum(static_cast<unsigned char>(text[i - 1]))) && i + 1 < text.size() &&
            std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
          std::size_t e = i + 1;
          while (e < text.size() && std::isdigit(static_cast<unsigned char>(text[e]))) ++e;
          out += fmt::format("h{:016x}", h.at(std::stoul(text.substr(i + 1, e - i - 1))));
          i = e;
        } else {
          out += text[i++];
        }
      }
      std::vector<std::string> lines;
      for (std::size_t b = 0, e; b < out.size(); b = e + 1) {
        e = out.find('\n', b);
        if (e == std::string::npos) e = out.size();
        lines.push_back(out.substr(b, e - b));
      }
      std::sort(lines.begin(), lines.end());
      return lines;
    };
    std::size_t lines = 0;
    for (const std::size_t r : {std::size_t{0}, std::size_t{21}, std::size_t{63}, es.roots().size() - 1}) {
      CAPTURE(r);
      const auto a = dot_of(es, r), b = dot_of(ef, r);
      CHECK(a == b);
      lines += a.size();
    }
    CHECK(lines > 1000);
    MESSAGE(spec, ": ", lines, " DOT lines compared");
  }
}

TEST_CASE("structured layout: one root's cone, and a non-finite valuation, give the fused layout's values") {
  const network net = synthetic_network("lenet5");
  const auto fwd = forward(net, synthetic_input(net));
  circuit_options o;
  o.layer_rules = rules_named("epsilon", net);
  const layouts L(net, fwd, o);
  L.check_same();
  // Masked: the cone of a few roots (the stage is computed for the wanted lower units only).
  for (const std::size_t r : {std::size_t{0}, std::size_t{300}, L.fused.roots().size() - 1}) {
    CAPTURE(r);
    const gate_id gf = L.fused.roots()[r].gate, gs = L.structured.roots()[r].gate;
    const auto vf = evaluate_gates(L.fused, real_semiring{}, L.fused.tokens().values(), std::span(&gf, 1));
    const auto vs = evaluate_gates(L.structured, real_semiring{}, L.structured.tokens().values(), std::span(&gs, 1));
    CHECK(vs[0] == doctest::Approx(vf[0]).epsilon(1e-12));
    const auto cf = lift_valuation(L.fused, counting_semiring{});
    const auto cs = lift_valuation(L.structured, counting_semiring{});
    CHECK(evaluate_gates(L.structured, counting_semiring{}, std::span<const stored_value_t<counting_semiring>>(cs),
                         std::span(&gs, 1)) ==
          evaluate_gates(L.fused, counting_semiring{}, std::span<const stored_value_t<counting_semiring>>(cf),
                         std::span(&gf, 1)));
    const auto one_root = [&](const auto& s) {
      const auto lf = lift_valuation(L.fused, s), ls = lift_valuation(L.structured, s);
      using stored = stored_value_t<std::decay_t<decltype(s)>>;
      CHECK(evaluate_gates(L.structured, s, std::span<const stored>(ls), std::span(&gs, 1)) ==
            evaluate_gates(L.fused, s, std::span<const stored>(lf), std::span(&gf, 1)));
    };
    one_root(boolean_semiring{});
    one_root(max_plus_semiring{});
    one_root(viterbi_semiring{});
  }
  // A weight of the first convolution set to +∞: ℝ's matrix product would turn 0·∞ into NaN
  // where the circuit has no edge; the structured sums must fall back to the active edges.
  const conv_stage& st = L.structured.conv_stages()[L.structured.conv_stages().size() - 1];
  std::size_t p = 0;
  while (!st.present[p]) ++p;
  const std::string name = L.structured.tokens().name(st.parameters + static_cast<token_index>(p));
  const std::vector<token_override> inf{{name, HUGE_VAL}};
  auto vf = L.fused.tokens().values(), vs = L.structured.tokens().values();
  std::vector<double> wf(vf.begin(), vf.end()), ws(vs.begin(), vs.end());
  override_tokens(L.fused, real_semiring{}, wf, inf);
  override_tokens(L.structured, real_semiring{}, ws, inf);
  REQUIRE(std::count(ws.begin(), ws.end(), HUGE_VAL) == 1);
  const auto rf = evaluate_roots(L.fused, real_semiring{}, std::span<const double>(wf));
  const auto rs = evaluate_roots(L.structured, real_semiring{}, std::span<const double>(ws));
  std::size_t nonfinite = 0, finite_mismatch = 0, class_mismatch = 0;
  for (std::size_t r = 0; r < rf.size(); ++r) {
    if (std::isnan(rf[r]) != std::isnan(rs[r]) || std::isinf(rf[r]) != std::isinf(rs[r])) ++class_mismatch;
    if (!std::isfinite(rf[r]))
      ++nonfinite;
    else if (std::fabs(rf[r] - rs[r]) > 1e-12 * std::max(1.0, std::fabs(rf[r])))
      ++finite_mismatch;
  }
  CHECK(class_mismatch == 0);
  CHECK(finite_mismatch == 0);
  CHECK(nonfinite > 0);  // the ∞ reaches some roots (else the test would prove nothing)
  CHECK(nonfinite < rf.size());
  MESSAGE(fmt::format("{} of {} roots non-finite under {} = +inf", nonfinite, rf.size(), name));
}

TEST_CASE("structured layout: lenet5 in O(units + parameters): far less memory than the fused layout's") {
  const network net = synthetic_network("lenet5");
  const auto fwd = forward(net, synthetic_input(net));
  circuit_options o;
  o.layer_rules = rules_named("epsilon", net);
  const layouts L(net, fwd, o);
  const std::size_t fused_bytes = L.fused.bytes() + L.fused.tokens().bytes();
  const std::size_t structured_bytes = L.structured.bytes() + L.structured.tokens().bytes();
  // The convolutions' edges (most of lenet5's) cost nothing per edge: what remains per edge is
  // the dense layers' one child reference each.
  CHECK(L.structured.structured_edge_count() > L.structured_info.edges / 2);
  CHECK(structured_bytes < fused_bytes * 3 / 4);
  CHECK(serialize_circuit(L.structured).size() < serialize_circuit(L.fused).size());
  MESSAGE(fmt::format("lenet5 ε: {} active edges ({} structured); fused {} B, structured {} B", L.fused_info.edges,
                      L.structured.structured_edge_count(), fused_bytes, structured_bytes));
}

TEST_CASE("structured layout: a version-4 file round-trips byte for byte, and damage to its stages is refused") {
  const network net = load_onnx(data / "models/digits_cnn.onnx");
  const auto fwd = forward(net, select_sample(read_npy(data / "inputs/cnn_input_0.npy"), net.input_shape, std::nullopt,
                                              "cnn_input_0.npy"));
  circuit_options o;
  o.layer_rules = rules_named("alphabeta", net);
  o.targets = {1, 7};
  o.layout = circuit_layout::structured;
  const circuit c = build_circuit(net, fwd, o);
  const std::string bytes = serialize_circuit(c);
  CHECK(bytes[8] == 4);  // version 4
  const circuit back = deserialize_circuit(bytes, "<test>");
  CHECK(serialize_circuit(back) == bytes);
  CHECK(roots_real(back) == roots_real(c));
  CHECK(roots_in(back, counting_semiring{}) == roots_in(c, counting_semiring{}));
  CHECK(back.structured_edge_count() == c.structured_edge_count());

  // Section 9 (structured) starts after the header (16 + 8 + 9 × 8 bytes) and sections 1–8.
  REQUIRE(read_u64(bytes, 16) == 9);
  std::size_t at = 24 + 9 * 8;
  for (int i = 0; i < 8; ++i) at += read_u64(bytes, 24 + 8 * i);
  REQUIRE(read_u64(bytes, at) == c.conv_stages().size());
  const std::size_t stage0 = at + 8;  // its 18 u32 fields: layer, term, in_channels, …
  const auto refused = [&](std::string d, const char* what, const char* says) {
    INFO(what);
    reseal(d);
    CHECK_THROWS_WITH_AS(deserialize_circuit(d, "<test>"), doctest::Contains(says), provnn::parse_error);
  };
  {
    std::string d = bytes;
    write_u32(d, stage0 + 4 * 16, 5);  // group 5 divides neither channel count
    refused(d, "groups", "not divisible");
  }
  {
    std::string d = bytes;
    write_u32(d, stage0 + 4 * 17, 0xFFFFFFF0u);  // the first parameter token, past the tokens
    refused(d, "parameters", "do not exist");
  }
  {
    std::string d = bytes;
    write_u32(d, stage0 + 4 * 3, 2000);  // in_h, in_w: far more inputs than its outputs can cover
    write_u32(d, stage0 + 4 * 4, 2000);
    refused(d, "input size", "cannot give");
  }
  {
    // The last structured record's lower unit, past its stage's input units.
    std::string d = bytes;
    write_u32(d, d.size() - 4 - 4, 0x7FFFFFFF);
    refused(d, "lower unit", "lower unit");
  }
  {
    std::string d = bytes;
    write_u32(d, d.size() - 4 - 8, 0x7FFFFFFF);  // its stage
    refused(d, "stage", "conv stage");
  }
  for (std::size_t n : {at, at + 8, stage0 + 40, bytes.size() - 5})
    CHECK_THROWS_AS(deserialize_circuit(std::string_view(bytes).substr(0, n), "<test>"), provnn::parse_error);
}

// A stage by hand: input 1×1×2, one 1×1 weight w = 2, output 1×1×2, so lower unit j has the
// one edge to upper unit k = j; φ = a = 3, S_k = R_k ⊗ n_k with R_k = 5 + k, n_k = 0.5.
struct hand_stage {
  circuit c;
  gate_id phi, S[2], R[2];
  std::uint32_t stage = 0;
  hand_stage() {
    auto& t = c.tokens();
    const token_index w = t.intern(token_kind::parameter, token_variant::plain, 1, {0, 0, 0, 0});
    t.set_value(w, 2.0);
    const token_index a = t.intern(token_kind::activation, token_variant::plain, 0, {0});
    t.set_value(a, 3.0);
    phi = c.token(a);
    for (std::uint32_t k = 0; k < 2; ++k) {
      const token_index r = t.intern(token_kind::activation, token_variant::plain, 1, {k});
      t.set_value(r, 5.0 + k);
      const token_index n = t.intern(token_kind::normaliser, token_variant::plain, 1, {k}, 0);
      t.set_value(n, 0.5);
      R[k] = c.token(r);
      S[k] = c.scale(R[k], c.token(n), k);
    }
    conv_stage st;
    st.layer = 1;
    st.geometry = conv_geometry{1, 1, 2, 1, 1, 2, 1, 1};
    st.parameters = w;
    st.present = {1};
    st.scaled = {S[0], S[1]};
    stage = c.add_conv_stage(std::move(st));
  }
};

TEST_CASE("structured gates by hand: two for one lower unit, a scale gate with a plain parent, one root's cone, "
          "geometries no convolution has") {
  SUBCASE("two structured gates of one lower unit both read its sum (= the expansion)") {
    hand_stage h;
    const gate_id g1 = h.c.structured(h.phi, h.stage, 0), g2 = h.c.structured(h.phi, h.stage, 0);
    const gate_id root = h.c.plus({g1, g2});
    h.c.add_root(provnn::root{"r", root, root_kind::other});
    const auto v = evaluate(h.c, real_semiring{}, h.c.tokens().values());
    CHECK(v[to_index(g1)] == 15.0);  // 3 · 2 · 0.5 · 5
    CHECK(v[to_index(g2)] == 15.0);
    std::vector<gate_id> map;
    const circuit e = expand_fused(h.c, &map);
    CHECK(evaluate(e, real_semiring{}, e.tokens().values())[to_index(map[to_index(root)])] == 30.0);
    CHECK(roots_in(h.c, counting_semiring{}) == roots_in(e, counting_semiring{}));
    const circuit back = deserialize_circuit(serialize_circuit(h.c), "<test>");
    CHECK(roots_real(back) == std::vector<double>{30.0});
  }
  SUBCASE("N[X] keeps a scale gate that a plain gate reads first until its stage is summed") {
    hand_stage h;
    const gate_id t = h.c.times({h.S[0], h.phi});
    const gate_id g = h.c.structured(h.phi, h.stage, 0);
    const gate_id root = h.c.plus({t, g});
    h.c.add_root(provnn::root{"r", root, root_kind::other});
    std::vector<gate_id> map;
    const circuit e = expand_fused(h.c, &map);
    const polynomial p = expand(h.c, root, 1000), pe = expand(e, map[to_index(root)], 1000);
    CHECK(p.size() == 2);  // a·R0·n0 and a·W·R0·n0
    CHECK(p == pe);
  }
  SUBCASE("a root's cone holds the scale gates its edges reach, no others") {
    hand_stage h;
    const gate_id g = h.c.structured(h.phi, h.stage, 0);
    const auto m = provnn::detail::cone_mask(h.c, std::span(&g, 1), false);
    CHECK(m[to_index(h.S[0])] == 1);
    CHECK(m[to_index(h.S[1])] == 0);
    CHECK(m[to_index(h.R[1])] == 0);
    CHECK(evaluate_gates(h.c, real_semiring{}, h.c.tokens().values(), std::span(&g, 1))[0] == 15.0);
    CHECK(evaluate_gates(h.c, counting_semiring{}, std::span<const stored_value_t<counting_semiring>>(
                                                       lift_valuation(h.c, counting_semiring{})),
                         std::span(&g, 1))[0] == 1);
  }
  SUBCASE("counting: the stage's 64-bit kernel below 2^63, big integers past it, both exact") {
    hand_stage h;
    const gate_id g = h.c.structured(h.phi, h.stage, 0);
    using big = boost::multiprecision::cpp_int;
    auto val = lift_valuation(h.c, counting_semiring{});
    val[h.c.tokens().at("a1[0]")] = 4;  // S_0 = 4 ⊗ n_0 (lifted 1) = 4; φ lifted 1
    // Bound ψ·S·(edges per lower unit: 1) = 2^59·4 = 2^61 < 2^63: the 64-bit kernel runs.
    val[h.c.tokens().at("W1[0,0,0,0]")] = std::uint64_t{1} << 59;
    auto v = evaluate_gates(h.c, counting_semiring{}, std::span<const stored_value_t<counting_semiring>>(val),
                            std::span(&g, 1));
    CHECK(big(v[0]) == (big(1) << 61));
    // ψ·S = 2^62·4 = 2^64: past the 64-bit path, evaluated again in big integers.
    val[h.c.tokens().at("W1[0,0,0,0]")] = std::uint64_t{1} << 62;
    v = evaluate_gates(h.c, counting_semiring{}, std::span<const stored_value_t<counting_semiring>>(val),
                       std::span(&g, 1));
    CHECK(big(v[0]) == (big(1) << 64));
  }
  SUBCASE("counting: the 64-bit kernel's bound counts every edge of a lower unit, so no sum wraps 2^64") {
    // One lower unit, eight output channels: eight edges of ψ ⊗ S = 2^61 · 3 each, 24 · 2^61 =
    // 3 · 2^64 in all. Each product is below 2^63; only the factor 8 in the bound sends the
    // stage to the checked visit (a bound of one edge would let the 64-bit sum wrap to 0).
    using big = boost::multiprecision::cpp_int;
    circuit c;
    auto& t = c.tokens();
    const token_index w0 = t.intern(token_kind::parameter, token_variant::plain, 1, {0, 0, 0, 0});
    for (std::uint32_t k = 1; k < 8; ++k)  // consecutive: the stage's weight p is token w0 + p
      REQUIRE(t.intern(token_kind::parameter, token_variant::plain, 1, {k, 0, 0, 0}) == w0 + k);
    const token_index a = t.intern(token_kind::activation, token_variant::plain, 0, {0});
    std::vector<gate_id> S;
    std::vector<token_index> rn;
    for (std::uint32_t k = 0; k < 8; ++k) {
      const token_index r = t.intern(token_kind::activation, token_variant::plain, 1, {k});
      const token_index n = t.intern(token_kind::normaliser, token_variant::plain, 1, {k}, 0);
      rn.push_back(r), rn.push_back(n);
      S.push_back(c.scale(c.token(r), c.token(n), k));
    }
    conv_stage st;
    st.layer = 1;
    st.geometry = conv_geometry{1, 1, 1, 8, 1, 1, 1, 1};
    st.parameters = w0;
    st.present.assign(8, 1);
    st.scaled = S;
    const std::uint32_t stage = c.add_conv_stage(std::move(st));
    const gate_id g = c.structured(c.token(a), stage, 0);
    auto val = lift_valuation(c, counting_semiring{});
    val[a] = 1;
    for (std::uint32_t k = 0; k < 8; ++k) {
      val[w0 + k] = std::uint64_t{1} << 61;
      val[rn[2 * k]] = 3;
      val[rn[2 * k + 1]] = 1;
    }
    const auto v = evaluate_gates(c, counting_semiring{}, std::span<const stored_value_t<counting_semiring>>(val),
                                  std::span(&g, 1));
    CHECK(big(v[0]) == (big(24) << 61));
  }
  SUBCASE("sizes that wrap 64 bits, and an input larger than its outputs can cover, are refused") {
    hand_stage h;
    conv_stage st;
    st.parameters = 0;
    st.geometry = conv_geometry{1, 1, 1, 1u << 21, 1u << 21, 1u << 22, 1u << 21, 1u << 22};  // products ≡ 0 mod 2^64
    CHECK_THROWS_WITH_AS(h.c.add_conv_stage(st), doctest::Contains("more than 2^32"), provnn::error);
    st.geometry = conv_geometry{1, 60000, 60000, 1, 1, 1, 1, 1};  // a 1×1 kernel, stride 1: 1 output for 3.6e9 inputs
    st.present = {1};
    st.scaled = {h.S[0]};
    CHECK_THROWS_WITH_AS(h.c.add_conv_stage(st), doctest::Contains("cannot give 1x1 outputs"), provnn::error);
    st.geometry = conv_geometry{1, 1, 2, 1, 1, 2, 2, 1, 1, 1, 0, 0, 1u << 31, 1};  // (2−1)·2^31: fine
    st.present = {1, 1};
    st.scaled = {h.S[0], h.S[1]};
    CHECK_NOTHROW(h.c.add_conv_stage(st));
    st.geometry.kernel_h = 4;  // (4−1)·2^31 > 2^32
    CHECK_THROWS_WITH_AS(h.c.add_conv_stage(st), doctest::Contains("spans more than 2^32"), provnn::error);
  }
}
