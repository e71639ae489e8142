// The guarantees of DESIGN §3 and issue 4, each over every rule × every bundled model × both
// bias modes (plus the four composites and z^B as a first-layer override):
//   1. real evaluation with the natural valuation = engine::lrp(), feature by feature and
//      bias by bias, and = the independent NumPy fixtures where the case exists;
//   2. conservation for LRP-0 (without bias: Σ R(x) = score; with: Σ R(x) + Σ R(b) = score);
//   3. deleting a token = LRP with the deleted edges removed and the activation pattern and
//      the per-unit coefficients c_mk held fixed (docs/mathematics.md §Deletion), checked
//      against a reference written here from DESIGN §2 over explicit edge lists; for the
//      ε rule with biases kept also literally = lrp() on a network copy with the weight zeroed
//      (or the activation zeroed in a forward-result copy);
//   4. universality: N[X] mapped through the homomorphism of each semiring's lifting = direct
//      evaluation, for every semiring of semirings/all.hpp (tiny MLP, digits MLP cones);
//   5. Boolean under threshold:θ = brute-force search for a path whose every edge coefficient
//      is ≥ θ, counting = the number of such paths, Viterbi under viterbi-maxnorm = the
//      brute-force best path product (paths enumerated explicitly from the reference's d_jk;
//      tiny MLP, tiny CNNs with an overlapping max-pool or an average pool, digits MLP).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "engine/png_io.hpp"
#include "engine/rules.hpp"
#include "semirings/all.hpp"
#include "semirings/homomorphism.hpp"
#include "tests/semirings/generators.hpp"

using namespace provnn;
using namespace provnn::engine;

namespace {

const std::filesystem::path data = PROVNN_TEST_DATA_DIR;

// ---- the cases ------------------------------------------------------------------------------

struct model_case {
  std::string file, input, short_name, bounds;  // bounds: "mlp" or "cnn" (zbox_*_<bounds>.npy)
};
const std::vector<model_case> models = {
    {"models/digits_mlp.onnx", "inputs/mlp_input_0.npy", "mlp", "mlp"},
    {"models/digits_cnn.onnx", "inputs/cnn_input_0.npy", "cnn", "cnn"},
    {"models/digits_cnn_maxpool.onnx", "inputs/cnn_input_0.npy", "cnn_maxpool", "cnn"},
    {"models/digits_cnn_bn.onnx", "inputs/cnn_input_0.npy", "cnn_bn", "cnn"},
};

struct loaded {
  network net;
  std::vector<double> x;
  forward_result fwd;
};

const loaded& load(const model_case& m) {
  static std::map<std::string, loaded> cache;
  auto it = cache.find(m.file);
  if (it == cache.end()) {
    loaded l;
    l.net = load_onnx(data / m.file);
    l.x = select_sample(read_npy(data / m.input), l.net.input_shape, std::nullopt, m.input);
    l.fwd = forward(l.net, l.x);
    it = cache.emplace(m.file, std::move(l)).first;
  }
  return it->second;
}

/// A rule case: its label in the fixtures' case names and how to make the composite.
struct rule_case {
  std::string label;
  std::string rule;       // default rule ("" for a preset)
  std::string first;      // first-layer override ("" for none; "array" for per-feature z^B)
  std::string composite;  // preset name
};
const std::vector<rule_case> rule_cases = {
    {"zero", "zero", "", ""},
    {"epsilon", "epsilon", "", ""},
    {"epsilon0.1", "epsilon:0.1", "", ""},
    {"gamma", "gamma", "", ""},
    {"gamma0.5", "gamma:0.5", "", ""},
    {"zplus", "zplus", "", ""},
    {"alphabeta", "alphabeta", "", ""},
    {"alphabeta1_0", "alphabeta:1,0", "", ""},
    {"flat", "flat", "", ""},
    {"wsquare", "wsquare", "", ""},
    {"zbox0_1", "epsilon", "zbox:0,1", ""},
    {"zbox_array", "epsilon", "array", ""},
    {"epsilon-plus", "", "", "epsilon-plus"},
    {"epsilon-gamma-box0_1", "", "", "epsilon-gamma-box:0,1"},
    {"epsilon-alpha2-beta1", "", "", "epsilon-alpha2-beta1"},
    {"epsilon-plus-flat", "", "", "epsilon-plus-flat"},
};

std::vector<rule> rules_for(const rule_case& rc, const model_case& m, const network& net) {
  composite c;
  if (!rc.composite.empty()) c = parse_composite(rc.composite);
  if (!rc.rule.empty()) add_rule_option(c, rc.rule);
  if (rc.first == "array") {
    const auto lo = (data / ("inputs/zbox_low_" + m.bounds + ".npy")).string();
    const auto hi = (data / ("inputs/zbox_high_" + m.bounds + ".npy")).string();
    add_rule_option(c, "first=zbox:" + lo + "," + hi);
  } else if (!rc.first.empty()) {
    add_rule_option(c, "first=" + rc.first);
  }
  auto rs = resolve(c, net);
  resolve_bounds(rs, [](const std::string& p) { return read_npy(p).data; });
  return rs;
}

std::string case_name(const model_case& m, const rule_case& rc, bias_mode b) {
  return fmt::format("{}_input_0_{}{}", m.short_name, rc.label, b == bias_mode::zeroed ? "_nobias" : "");
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

std::vector<double> root_values(const circuit& c, std::span<const double> valuation) {
  return evaluate_roots(c, real_semiring{}, valuation);
}

/// Stage number → index of the linear layer (rule index), or none for pools.
std::map<std::size_t, std::size_t> linear_index_of_stage(const network& net) {
  const auto st = stage_numbers(net);
  std::map<std::size_t, std::size_t> out;
  std::size_t lin = 0;
  for (std::size_t i = 0; i < net.layers.size(); ++i)
    if (net.layers[i].is_linear()) out[st[i]] = lin++;
  return out;
}

// ---- reference LRP over explicit edge lists, written from DESIGN §2 -----------------------
//
// Independent of the builder: its own edge enumeration (naive loops over every output unit
// and kernel tap), its own rule table. The deletion test masks edges in the numerators only
// (the per-unit coefficients are computed from the unmasked network: "held fixed").

namespace ref {

struct edge {
  std::uint32_t k, j, p;
  double w;
};

struct stage {
  std::size_t layer = 0, number = 0;
  bool pool = false;
  std::vector<edge> edges;
  std::vector<double> bias;  // per output unit
};

std::vector<stage> stages(const network& net) {
  std::vector<stage> out;
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    const layer& l = net.layers[i];
    stage s;
    s.layer = i;
    if (const auto* d = std::get_if<dense_op>(&l.op)) {
      for (std::size_t k = 0; k < d->out; ++k)
        for (std::size_t j = 0; j < d->in; ++j)
          s.edges.push_back({static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(j),
                             static_cast<std::uint32_t>(k * d->in + j), d->weight[k * d->in + j]});
      s.bias = d->bias.empty() ? std::vector<double>(d->out, 0.0) : d->bias;
    } else if (const auto* c = std::get_if<conv2d_op>(&l.op)) {
      const std::size_t H = l.in_shape[1], W = l.in_shape[2], OH = l.out_shape[1], OW = l.out_shape[2];
      const std::size_t icg = c->in_channels / c->group, ocg = c->out_channels / c->group;
      for (std::size_t oc = 0; oc < c->out_channels; ++oc)
        for (std::size_t oy = 0; oy < OH; ++oy)
          for (std::size_t ox = 0; ox < OW; ++ox) {
            const std::size_t k = (oc * OH + oy) * OW + ox;
            s.bias.push_back(c->bias.empty() ? 0.0 : c->bias[oc]);
            for (std::size_t ic = 0; ic < icg; ++ic)
              for (std::size_t ky = 0; ky < c->kernel_h; ++ky)
                for (std::size_t kx = 0; kx < c->kernel_w; ++kx) {
                  const long iy = static_cast<long>(oy * c->stride_h + ky * c->dilation_h) - static_cast<long>(c->pad_top);
                  const long ix = static_cast<long>(ox * c->stride_w + kx * c->dilation_w) - static_cast<long>(c->pad_left);
                  if (iy < 0 || ix < 0 || iy >= static_cast<long>(H) || ix >= static_cast<long>(W)) continue;
                  const std::size_t ch = (oc / ocg) * icg + ic;
                  const std::size_t j = (ch * H + static_cast<std::size_t>(iy)) * W + static_cast<std::size_t>(ix);
                  const std::size_t p = ((oc * icg + ic) * c->kernel_h + ky) * c->kernel_w + kx;
                  s.edges.push_back({static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(j),
                                     static_cast<std::uint32_t>(p), c->weight[p]});
                }
          }
    } else if (const auto* p = std::get_if<pool_op>(&l.op); p && p->mode == pool_op::kind::average) {
      s.pool = true;
      const std::size_t C = l.in_shape[0], H = l.in_shape[1], W = l.in_shape[2], OH = l.out_shape[1],
                        OW = l.out_shape[2];
      for (std::size_t ch = 0; ch < C; ++ch)
        for (std::size_t oy = 0; oy < OH; ++oy)
          for (std::size_t ox = 0; ox < OW; ++ox) {
            const std::size_t k = (ch * OH + oy) * OW + ox;
            s.bias.push_back(0.0);
            for (std::size_t ky = 0; ky < p->kernel_h; ++ky)
              for (std::size_t kx = 0; kx < p->kernel_w; ++kx) {
                const long iy = static_cast<long>(oy * p->stride_h + ky) - static_cast<long>(p->pad_top);
                const long ix = static_cast<long>(ox * p->stride_w + kx) - static_cast<long>(p->pad_left);
                if (iy < 0 || ix < 0 || iy >= static_cast<long>(H) || ix >= static_cast<long>(W)) continue;
                s.edges.push_back({static_cast<std::uint32_t>(k),
                                   static_cast<std::uint32_t>((ch * H + static_cast<std::size_t>(iy)) * W +
                                                              static_cast<std::size_t>(ix)),
                                   0, 0.0});
              }
          }
    } else {
      continue;
    }
    s.number = out.size() + 1;
    out.push_back(std::move(s));
  }
  return out;
}

double P(double v) { return v > 0 ? v : 0.0; }
double N(double v) { return v < 0 ? v : 0.0; }
double stab(double z, double e) { return z >= 0 ? z + e : z - e; }
double inv(double d, double e) { return stab(d, e) == 0 ? 0.0 : 1.0 / stab(d, e); }

enum class in_mod { a, ap, an, l, h, one };
enum class w_mod { w, wp, wn, wgp, wgn, w2, one, none };
struct term {
  in_mod phi;
  w_mod psi;
};

/// DESIGN §2's table: the terms (φ, ψ) of a rule; the coefficients come from coefficients().
std::vector<term> terms(const rule& r, bool pool) {
  if (pool) return {{in_mod::a, w_mod::none}};
  switch (r.kind) {
    case rule_kind::zero:
    case rule_kind::epsilon: return {{in_mod::a, w_mod::w}};
    case rule_kind::zplus: return {{in_mod::ap, w_mod::wp}, {in_mod::an, w_mod::wn}};
    case rule_kind::alphabeta:
      return {{in_mod::ap, w_mod::wp}, {in_mod::an, w_mod::wn}, {in_mod::ap, w_mod::wn}, {in_mod::an, w_mod::wp}};
    case rule_kind::gamma:
      return {{in_mod::ap, w_mod::wgp}, {in_mod::an, w_mod::wgn}, {in_mod::ap, w_mod::wgn}, {in_mod::an, w_mod::wgp}};
    case rule_kind::zbox: return {{in_mod::a, w_mod::w}, {in_mod::l, w_mod::wp}, {in_mod::h, w_mod::wn}};
    case rule_kind::flat: return {{in_mod::one, w_mod::one}};
    case rule_kind::wsquare: return {{in_mod::one, w_mod::w2}};
  }
  return {};
}

double phi(in_mod m, const rule& r, double a, std::size_t j) {
  switch (m) {
    case in_mod::a: return a;
    case in_mod::ap: return P(a);
    case in_mod::an: return N(a);
    case in_mod::l: return r.low.at(j);
    case in_mod::h: return r.high.at(j);
    case in_mod::one: return 1.0;
  }
  return 0;
}
double psi(w_mod m, const rule& r, double w) {
  switch (m) {
    case w_mod::w: return w;
    case w_mod::wp: return P(w);
    case w_mod::wn: return N(w);
    case w_mod::wgp: return w + r.gamma * P(w);
    case w_mod::wgn: return w + r.gamma * N(w);
    case w_mod::w2: return w * w;
    case w_mod::one: return 1.0;
    case w_mod::none: return 1.0;
  }
  return 0;
}

/// c[m][k] for every term and unit (R_k not folded in), and the bias shares' (ψ, term).
struct coefs {
  std::vector<std::vector<double>> c;
  std::vector<std::pair<w_mod, std::size_t>> bias_terms;
};

coefs coefficients(const stage& s, const rule& r, const std::vector<double>& a, const std::vector<double>& z,
                   bool keep, double pool_eps) {
  const std::size_t n = z.size();
  const auto ts = terms(r, s.pool);
  coefs out;
  out.c.assign(ts.size(), std::vector<double>(n, 0.0));
  auto b = [&](std::size_t k) { return keep ? s.bias[k] : 0.0; };
  if (s.pool) {
    std::vector<double> cnt(n, 0.0);
    for (const auto& e : s.edges) cnt[e.k] += 1;
    for (std::size_t k = 0; k < n; ++k) out.c[0][k] = cnt[k] ? inv(z[k], pool_eps) / cnt[k] : 0.0;
    return out;
  }
  std::vector<double> d1(n, 0.0), d2(n, 0.0);
  switch (r.kind) {
    case rule_kind::zero:
    case rule_kind::epsilon:
      for (std::size_t k = 0; k < n; ++k) d1[k] = b(k);
      for (const auto& e : s.edges) d1[e.k] += a[e.j] * e.w;
      for (std::size_t k = 0; k < n; ++k) out.c[0][k] = inv(d1[k], r.epsilon);
      out.bias_terms = {{w_mod::w, 0}};
      break;
    case rule_kind::zplus:
    case rule_kind::alphabeta: {
      const double alpha = r.kind == rule_kind::zplus ? 1.0 : r.alpha, beta = r.kind == rule_kind::zplus ? 0.0 : r.beta;
      for (std::size_t k = 0; k < n; ++k) d1[k] = P(b(k)), d2[k] = N(b(k));
      for (const auto& e : s.edges) {
        d1[e.k] += P(a[e.j]) * P(e.w) + N(a[e.j]) * N(e.w);
        d2[e.k] += P(a[e.j]) * N(e.w) + N(a[e.j]) * P(e.w);
      }
      for (std::size_t k = 0; k < n; ++k) {
        out.c[0][k] = out.c[1][k] = alpha * inv(d1[k], r.epsilon);
        if (r.kind == rule_kind::alphabeta && d2[k] != 0) out.c[2][k] = out.c[3][k] = -beta * inv(d2[k], r.epsilon);
      }
      out.bias_terms = {{w_mod::wp, 0}};
      if (r.kind == rule_kind::alphabeta) out.bias_terms.push_back({w_mod::wn, 2});
      break;
    }
    case rule_kind::gamma: {
      const double g = r.gamma;
      for (std::size_t k = 0; k < n; ++k) d1[k] = b(k) + g * P(b(k)), d2[k] = b(k) + g * N(b(k));
      for (const auto& e : s.edges) {
        d1[e.k] += P(a[e.j]) * (e.w + g * P(e.w)) + N(a[e.j]) * (e.w + g * N(e.w));
        d2[e.k] += P(a[e.j]) * (e.w + g * N(e.w)) + N(a[e.j]) * (e.w + g * P(e.w));
      }
      for (std::size_t k = 0; k < n; ++k) {
        if (z[k] > 0) out.c[0][k] = out.c[1][k] = inv(d1[k], r.epsilon);
        if (z[k] < 0) out.c[2][k] = out.c[3][k] = inv(d2[k], r.epsilon);
      }
      out.bias_terms = {{w_mod::wgp, 0}, {w_mod::wgn, 2}};
      break;
    }
    case rule_kind::zbox:
      for (const auto& e : s.edges) d1[e.k] += a[e.j] * e.w - r.low.at(e.j) * P(e.w) - r.high.at(e.j) * N(e.w);
      for (std::size_t k = 0; k < n; ++k) {
        out.c[0][k] = inv(d1[k], r.epsilon);
        out.c[1][k] = out.c[2][k] = -out.c[0][k];
      }
      break;
    case rule_kind::flat:
      for (const auto& e : s.edges) d1[e.k] += 1;
      for (std::size_t k = 0; k < n; ++k) out.c[0][k] = inv(d1[k], r.epsilon);
      break;
    case rule_kind::wsquare:
      for (std::size_t k = 0; k < n; ++k) d1[k] = b(k) * b(k);
      for (const auto& e : s.edges) d1[e.k] += e.w * e.w;
      for (std::size_t k = 0; k < n; ++k) out.c[0][k] = inv(d1[k], r.epsilon);
      out.bias_terms = {{w_mod::w2, 0}};
      break;
  }
  if (!keep) out.bias_terms.clear();
  return out;
}

/// Edges removed from the numerators: in stage `stage`, those using parameter `param`, or
/// those whose lower unit is `lower`.
struct mask {
  std::size_t stage = 0;
  std::optional<std::uint32_t> param, lower;
  bool hits(std::size_t s, const edge& e) const {
    return s == stage && ((param && e.p == *param) || (lower && e.j == *lower));
  }
};

struct result {
  std::vector<double> input;
  std::map<std::size_t, std::vector<double>> bias;  // stage → per unit
};

struct setup {
  const network& net;
  const forward_result& fwd;
  const std::vector<rule>& rules;
  bool keep;
  double pool_eps = 1e-6;
};

const rule& rule_of(const setup& su, const std::vector<stage>& st, std::size_t si) {
  static const rule pool_rule = rules::epsilon();
  if (st[si].pool) return pool_rule;
  std::size_t lin = 0;
  for (std::size_t i = 0; i < si; ++i) lin += !st[i].pool;
  return su.rules[lin];
}

result lrp(const setup& su, const std::vector<double>& init, const mask* m = nullptr) {
  const auto st = stages(su.net);
  std::vector<double> R = init;
  result out;
  std::size_t si = st.size();
  for (std::size_t i = su.net.layers.size(); i-- > 0;) {
    const layer& l = su.net.layers[i];
    const auto& a = su.fwd.activations[i];
    std::vector<double> rin(a.size(), 0.0);
    if (si > 0 && st[si - 1].layer == i) {
      --si;
      const stage& s = st[si];
      const rule& r = rule_of(su, st, si);
      const auto ts = terms(r, s.pool);
      const auto cf = coefficients(s, r, a, su.fwd.activations[i + 1], su.keep, su.pool_eps);
      for (const auto& e : s.edges) {
        if (m && m->hits(s.number, e)) continue;
        for (std::size_t t = 0; t < ts.size(); ++t)
          rin[e.j] += phi(ts[t].phi, r, a[e.j], e.j) * psi(ts[t].psi, r, e.w) * cf.c[t][e.k] * R[e.k];
      }
      auto& bias = out.bias[s.number];
      bias.assign(R.size(), 0.0);
      for (std::size_t k = 0; k < R.size(); ++k)
        for (auto [mod, t] : cf.bias_terms) bias[k] += psi(mod, r, s.bias[k]) * cf.c[t][k] * R[k];
    } else if (const auto* p = std::get_if<pool_op>(&l.op); p && p->mode == pool_op::kind::max) {
      for (std::size_t k = 0; k < R.size(); ++k) rin[su.fwd.argmax[i][k]] += R[k];
    } else {
      rin = R;
    }
    R = std::move(rin);
  }
  out.input = std::move(R);
  return out;
}

}  // namespace ref

std::vector<double> one_hot(const forward_result& fwd, std::size_t y) {
  std::vector<double> v(fwd.output().size(), 0.0);
  v[y] = fwd.output()[y];
  return v;
}

// ---- 1. real evaluation = numeric LRP = fixtures ---------------------------------------------

struct worst {
  double lrp = 0, fixture = 0, bias = 0;
  std::size_t cases = 0, fixtures = 0, bias_roots = 0;
};

}  // namespace

TEST_CASE("guarantee: real evaluation = engine::lrp() = NumPy fixtures, every rule × model × bias mode") {
  worst w;
  for (const auto& m : models) {
    const loaded& L = load(m);
    const auto lin_of = linear_index_of_stage(L.net);
    std::map<std::size_t, std::size_t> layer_of;  // stage → layer index
    const auto stn = stage_numbers(L.net);
    for (std::size_t i = 0; i < stn.size(); ++i)
      if (stn[i]) layer_of[stn[i]] = i;
    for (const auto& rc : rule_cases)
      for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
        const std::string name = case_name(m, rc, b);
        INFO("case ", name);
        circuit_options o;
        o.layer_rules = rules_for(rc, m, L.net);
        o.bias = b;
        const circuit c = build_circuit(L.net, L.fwd, o);
        lrp_options lo;
        lo.layer_rules = o.layer_rules;
        lo.bias = b;
        const auto num = lrp(L.net, L.fwd, lo);
        const auto vals = root_values(c, c.tokens().values());
        const auto& expect = num.input_relevance();
        const double scale = max_abs(expect);
        REQUIRE(scale > 0);
        std::vector<double> feat;
        std::size_t n_bias_roots = 0;
        for (std::size_t r = 0; r < c.roots().size(); ++r) {
          const auto& root = c.roots()[r];
          if (root.kind == root_kind::feature) {
            CHECK(root.index == feat.size());
            feat.push_back(vals[r]);
          } else if (root.kind == root_kind::bias) {
            ++n_bias_roots;
            const auto& per_unit = num.bias_relevance[lin_of.at(root.layer)];
            const layer& lay = L.net.layers[layer_of.at(root.layer)];
            const std::size_t n_params = std::holds_alternative<dense_op>(lay.op)
                                             ? std::get<dense_op>(lay.op).out
                                             : std::get<conv2d_op>(lay.op).out_channels;
            const std::size_t plane = per_unit.size() / n_params;
            double sum = 0;
            for (std::size_t k = root.index * plane; k < (root.index + 1) * plane; ++k) sum += per_unit[k];
            const double err = std::fabs(vals[r] - sum) / scale;
            w.bias = std::max(w.bias, err);
            CHECK(err <= 1e-9);
          }
        }
        REQUIRE(feat.size() == expect.size());
        double err = 0;
        for (std::size_t i = 0; i < feat.size(); ++i) err = std::max(err, std::fabs(feat[i] - expect[i]));
        err /= scale;
        w.lrp = std::max(w.lrp, err);
        CHECK(err <= 1e-9);
        // Bias roots: one per bias parameter of every stage whose rule gives biases a share.
        if (b == bias_mode::zeroed) CHECK(n_bias_roots == 0);
        std::size_t expected_roots = 0;
        if (b == bias_mode::kept) {
          std::size_t lin = 0;
          for (const auto& lay : L.net.layers) {
            if (!lay.is_linear()) continue;
            const auto k = o.layer_rules[lin++].kind;
            if (k == rule_kind::zbox || k == rule_kind::flat) continue;
            expected_roots += std::holds_alternative<dense_op>(lay.op) ? std::get<dense_op>(lay.op).out
                                                                        : std::get<conv2d_op>(lay.op).out_channels;
          }
        }
        CHECK(n_bias_roots == expected_roots);
        w.bias_roots += n_bias_roots;
        ++w.cases;
        // The independent NumPy reference, where the case exists.
        const auto fixture = data / "expected" / m.short_name / (name + ".npy");
        if (std::filesystem::exists(fixture)) {
          const auto fx = read_npy(fixture).data;
          REQUIRE(fx.size() == feat.size());
          double fe = 0;
          for (std::size_t i = 0; i < fx.size(); ++i) fe = std::max(fe, std::fabs(feat[i] - fx[i]));
          fe /= max_abs(fx);
          w.fixture = std::max(w.fixture, fe);
          CHECK(fe <= 1e-9);
          ++w.fixtures;
        }
      }
  }
  CHECK(w.cases == models.size() * rule_cases.size() * 2);
  CHECK(w.fixtures == w.cases);  // every case of this grid has a fixture
  MESSAGE(fmt::format("{} cases, {} with fixtures, {} bias roots; worst relative error vs lrp() {:.3g}, "
                      "vs fixtures {:.3g}, bias roots {:.3g}",
                      w.cases, w.fixtures, w.bias_roots, w.lrp, w.fixture, w.bias));
}

TEST_CASE("guarantee: every NumPy fixture case (inputs, overrides, targets, initial vectors) through the circuit") {
  // All cases of tests/data/expected/manifest.json: the input relevance, and the bias share
  // (Σ of the bias roots) against the reference's bias_share. A case with an explicit target
  // is built together with the predicted class in one two-target circuit, whose roots for
  // the explicit target must still match.
  std::ifstream in(data / "expected" / "manifest.json");
  REQUIRE(in.good());
  const auto manifest = nlohmann::json::parse(in);
  std::map<std::string, network> nets;
  std::size_t n = 0, two_target = 0, initial = 0;
  double worst = 0, worst_bias = 0;
  for (const auto& cs : manifest.at("cases")) {
    const std::string name = cs.at("name").get<std::string>();
    INFO("case ", name);
    const std::string mrel = cs.at("model").get<std::string>();
    if (!nets.count(mrel)) nets.emplace(mrel, load_onnx(data / mrel));
    const network& net = nets.at(mrel);
    const std::string irel = cs.at("input").get<std::string>();
    std::vector<double> x;
    if (irel.size() > 4 && irel.substr(irel.size() - 4) == ".png") {
      x = png_to_input(read_png(data / irel), net.input_shape, irel);
    } else {
      std::optional<std::size_t> idx;
      if (!cs.at("index").is_null()) idx = cs.at("index").get<std::size_t>();
      x = select_sample(read_npy(data / irel), net.input_shape, idx, irel);
    }
    const auto fwd = forward(net, x);
    composite comp;
    if (!cs.at("composite").is_null()) comp = parse_composite(cs.at("composite").get<std::string>());
    if (!cs.at("rule").is_null()) add_rule_option(comp, cs.at("rule").get<std::string>());
    for (const auto& [key, text] : cs.at("overrides").items()) add_rule_option(comp, key + "=" + text.get<std::string>());
    circuit_options o;
    o.layer_rules = resolve(comp, net);
    resolve_bounds(o.layer_rules, [](const std::string& p) { return read_npy(data / p).data; });
    o.bias = cs.at("bias").get<bool>() ? bias_mode::kept : bias_mode::zeroed;
    std::string suffix;
    if (cs.contains("initial_relevance") && !cs.at("initial_relevance").is_null()) {
      o.target = read_npy(data / cs.at("initial_relevance").get<std::string>()).data;
      ++initial;
    } else if (!cs.at("target_arg").is_null()) {
      const auto t = cs.at("target_arg").get<std::size_t>();
      o.targets = {t, predicted(fwd)};
      suffix = fmt::format("|r[{}]", t);
      ++two_target;
    }
    const circuit c = build_circuit(net, fwd, o);
    const auto vals = root_values(c, c.tokens().values());
    std::vector<double> feat;
    double bias = 0;
    for (std::size_t r = 0; r < vals.size(); ++r) {
      const auto& root = c.roots()[r];
      const bool mine = suffix.empty() || (root.name.size() > suffix.size() &&
                                               root.name.compare(root.name.size() - suffix.size() - 1, suffix.size(),
                                                                 suffix) == 0);
      if (!mine) continue;
      if (root.kind == root_kind::feature) feat.push_back(vals[r]);
      else bias += vals[r];
    }
    const auto expected = read_npy(data / cs.at("relevance").get<std::string>()).data;
    REQUIRE(feat.size() == expected.size());
    const double scale = cs.at("max_abs").get<double>();
    double err = 0;
    for (std::size_t i = 0; i < feat.size(); ++i) err = std::max(err, std::fabs(feat[i] - expected[i]));
    worst = std::max(worst, err / scale);
    CHECK(err <= 1e-9 * scale);
    const double eb = std::fabs(bias - cs.at("bias_share").get<double>());
    worst_bias = std::max(worst_bias, eb / scale);
    CHECK(eb <= 1e-9 * scale);
    ++n;
  }
  CHECK(n >= 180);
  CHECK(two_target >= 8);
  CHECK(initial >= 4);
  MESSAGE(fmt::format("{} manifest cases ({} as two-target circuits, {} from an initial vector): worst relative "
                      "error {:.3g} (features), {:.3g} (bias share)",
                      n, two_target, initial, worst, worst_bias));
}

// ---- 2. conservation ------------------------------------------------------------------------

TEST_CASE("guarantee: conservation for LRP-0 (digits MLP, and every model with ε = 0 pools and no dropped unit)") {
  std::size_t checked = 0;
  for (const auto& m : models) {
    const loaded& L = load(m);
    for (auto b : {bias_mode::zeroed, bias_mode::kept}) {
      INFO(m.file, b == bias_mode::kept ? " bias kept" : " no bias");
      circuit_options o;
      o.layer_rules.assign(linear_index_of_stage(L.net).size(), rules::zero());
      o.bias = b;
      o.pool_epsilon = 0;
      circuit_build_info info;
      const circuit c = build_circuit(L.net, L.fwd, o, &info);
      const auto vals = root_values(c, c.tokens().values());
      double sum = 0, bias = 0;
      for (std::size_t r = 0; r < vals.size(); ++r) (c.roots()[r].kind == root_kind::feature ? sum : bias) += vals[r];
      const double score = info.scores.at(0);
      // A unit whose z is exactly 0 passes nothing under ε = 0 (the fixtures' "dropped"): the
      // identity is exact only without such units, which the numeric LRP tells us.
      lrp_options lo;
      lo.layer_rules = o.layer_rules;
      lo.bias = b;
      lo.pool_epsilon = 0;
      const auto num = lrp(L.net, L.fwd, lo);
      double num_sum = 0;
      for (double v : num.input_relevance()) num_sum += v;
      const bool lossless = std::fabs(num_sum + num.bias_share - score) <= 1e-10 * std::fabs(score);
      if (m.short_name == "mlp") CHECK(lossless);  // the fixtures: no dropped unit in the MLP
      if (!lossless) continue;
      CHECK(std::fabs(sum + bias - score) <= 1e-10 * std::fabs(score));
      if (b == bias_mode::zeroed) CHECK(bias == 0);
      ++checked;
    }
  }
  CHECK(checked >= 2);
  MESSAGE(checked, " model × bias-mode cases conserve exactly");
}

// ---- 3. deletion ------------------------------------------------------------------------------

namespace {

std::string multi(std::size_t flat, const shape_t& shape) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return fmt::format("{}", fmt::join(idx, ","));
}

struct deletion {
  std::string pattern;
  ref::mask mask;
  std::string what;
};

/// Three deletions per model: the top weight feeding the target most, the activation it reads,
/// and the largest stage-1 weight.
std::vector<deletion> deletions(const network& net, const forward_result& fwd, std::size_t target) {
  const auto st = ref::stages(net);
  std::vector<deletion> out;
  const auto& top = st.back();
  const auto& d = std::get<dense_op>(net.layers[top.layer].op);
  const auto& a = fwd.activations[top.layer];
  std::size_t best = 0;
  for (std::size_t j = 0; j < d.in; ++j)
    if (std::fabs(a[j] * d.weight[target * d.in + j]) > std::fabs(a[best] * d.weight[target * d.in + best])) best = j;
  const std::size_t S = top.number;
  deletion w;
  w.pattern = fmt::format("W{}*[{},{}]", S, target, best);
  w.mask.stage = S;
  w.mask.param = static_cast<std::uint32_t>(target * d.in + best);
  w.what = "top weight";
  out.push_back(w);
  deletion act;
  act.pattern = fmt::format("a{}*[{}]", S - 1, multi(best, net.layers[top.layer].in_shape));
  act.mask.stage = S;
  act.mask.lower = static_cast<std::uint32_t>(best);
  act.what = "activation";
  out.push_back(act);
  const auto& first = st.front();
  const layer& fl = net.layers[first.layer];
  const std::vector<double>& wt =
      std::holds_alternative<dense_op>(fl.op) ? std::get<dense_op>(fl.op).weight : std::get<conv2d_op>(fl.op).weight;
  std::size_t p = 0;
  for (std::size_t q = 0; q < wt.size(); ++q)
    if (std::fabs(wt[q]) > std::fabs(wt[p])) p = q;
  shape_t ws;
  if (const auto* dd = std::get_if<dense_op>(&fl.op)) ws = {dd->out, dd->in};
  else {
    const auto& c = std::get<conv2d_op>(fl.op);
    ws = {c.out_channels, c.in_channels / c.group, c.kernel_h, c.kernel_w};
  }
  deletion w1;
  w1.pattern = fmt::format("W1*[{}]", multi(p, ws));
  w1.mask.stage = 1;
  w1.mask.param = static_cast<std::uint32_t>(p);
  w1.what = "first-layer weight";
  out.push_back(w1);
  return out;
}

}  // namespace

TEST_CASE("guarantee: deleting a token = LRP without its edges, activation pattern and c_mk held fixed") {
  std::size_t n_del = 0, n_literal = 0, n_ref = 0;
  double worst_ref = 0, worst_del = 0, worst_literal = 0, worst_effect = 0;
  for (const auto& m : models) {
    const loaded& L = load(m);
    const std::size_t y = predicted(L.fwd);
    const auto dels = deletions(L.net, L.fwd, y);
    for (const auto& rc : rule_cases)
      for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
        INFO("case ", case_name(m, rc, b));
        circuit_options o;
        o.layer_rules = rules_for(rc, m, L.net);
        o.bias = b;
        const circuit c = build_circuit(L.net, L.fwd, o);
        const ref::setup su{L.net, L.fwd, o.layer_rules, b == bias_mode::kept};
        // The reference itself agrees with lrp() (so it implements the same rules).
        lrp_options lo;
        lo.layer_rules = o.layer_rules;
        lo.bias = b;
        const auto num = lrp(L.net, L.fwd, lo);
        const auto full = ref::lrp(su, one_hot(L.fwd, y));
        const double scale = max_abs(num.input_relevance());
        double re = 0;
        for (std::size_t i = 0; i < full.input.size(); ++i)
          re = std::max(re, std::fabs(full.input[i] - num.input_relevance()[i]));
        worst_ref = std::max(worst_ref, re / scale);
        CHECK(re <= 1e-9 * scale);
        ++n_ref;
        for (const auto& d : dels) {
          INFO("delete ", d.pattern, " (", d.what, ")");
          std::vector<double> v(c.tokens().values().begin(), c.tokens().values().end());
          // A pattern that matches nothing: the edge is not active under this rule, so its
          // deletion changes nothing — the reference must agree.
          if (!c.tokens().match(d.pattern).empty()) {
            const token_override ov[] = {{d.pattern, 0.0}};
            override_tokens(c, real_semiring{}, v, ov);
          }
          const auto vals = root_values(c, v);
          const auto masked = ref::lrp(su, one_hot(L.fwd, y), &d.mask);
          double err = 0, effect = 0;
          for (std::size_t i = 0; i < masked.input.size(); ++i) {
            err = std::max(err, std::fabs(vals[i] - masked.input[i]));
            effect = std::max(effect, std::fabs(masked.input[i] - full.input[i]));
          }
          worst_del = std::max(worst_del, err / scale);
          worst_effect = std::max(worst_effect, effect / scale);
          CHECK(err <= 1e-9 * scale);
          ++n_del;
          // ε/0 with biases kept: c_k = 1/stab(z_k) with the forward z, which a rebuild with the
          // activation pattern held fixed keeps anyway — so deletion is literally lrp() on a
          // network copy with the weight zeroed (or a forward copy with the activation zeroed).
          const bool eps_all = std::all_of(o.layer_rules.begin(), o.layer_rules.end(), [](const rule& r) {
            return r.kind == rule_kind::epsilon || r.kind == rule_kind::zero;
          });
          if (eps_all && b == bias_mode::kept) {
            network net2 = L.net;
            forward_result fwd2 = L.fwd;
            const auto st = ref::stages(L.net);
            const auto& s = st[d.mask.stage - 1];
            if (d.mask.param) {
              auto& lay = net2.layers[s.layer].op;
              if (auto* dd = std::get_if<dense_op>(&lay)) dd->weight[*d.mask.param] = 0;
              else std::get<conv2d_op>(lay).weight[*d.mask.param] = 0;
            } else {
              fwd2.activations[s.layer][*d.mask.lower] = 0;
            }
            const auto re2 = lrp(net2, fwd2, lo);
            double e2 = 0;
            for (std::size_t i = 0; i < vals.size() && c.roots()[i].kind == root_kind::feature; ++i)
              e2 = std::max(e2, std::fabs(vals[i] - re2.input_relevance()[i]));
            worst_literal = std::max(worst_literal, e2 / scale);
            CHECK(e2 <= 1e-9 * scale);
            ++n_literal;
          }
        }
      }
  }
  CHECK(worst_effect > 1e-3);  // the deletions do change the relevance
  MESSAGE(fmt::format("{} deletions ({} also literally against lrp() on a modified copy); reference vs lrp() "
                      "worst {:.3g} over {} cases; deletion worst {:.3g}, literal worst {:.3g}; largest effect {:.3g}",
                      n_del, n_literal, worst_ref, n_ref, worst_del, worst_literal, worst_effect));
}

// ---- small networks: universality and brute-force paths --------------------------------------

namespace {

layer dense_layer(std::vector<double> w, std::vector<double> b, std::size_t in, std::size_t out) {
  layer l;
  l.name = fmt::format("fc{}x{}", in, out);
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

layer relu_layer(std::size_t n) {
  layer l;
  l.name = "relu";
  l.op_type = "Relu";
  l.op = relu_op{};
  l.in_shape = {n};
  l.out_shape = {n};
  return l;
}

/// A hand-made 4-3-3-2 MLP: mixed-sign input (one zero feature), mixed-sign weights (one
/// zero weight), one inactive hidden unit.
struct tiny_t {
  network net;
  std::vector<double> x = {1.0, -0.5, 0.75, 0.0};
  forward_result fwd;
};

const tiny_t& tiny() {
  static const tiny_t made = [] {
    tiny_t t;
    t.net.source = "tiny-4-3-3-2";
    t.net.input_shape = {4};
    t.net.layers.push_back(dense_layer({0.5, -1.0, 0.25, 0.8,  //
                                        -0.3, 0.6, 1.2, -0.4,  //
                                        -1.5, 0.2, -0.7, 0.9},
                                       {0.1, -0.2, 0.05}, 4, 3));
    t.net.layers.push_back(relu_layer(3));
    t.net.layers.push_back(dense_layer({0.7, -0.2, 0.0,  //
                                        0.4, 0.9, -0.6,  //
                                        -0.8, 0.5, 0.3},
                                       {-0.05, 0.1, 0.2}, 3, 3));
    t.net.layers.push_back(relu_layer(3));
    t.net.layers.push_back(dense_layer({1.1, -0.6, 0.4, -0.9, 0.8, 0.5}, {0.02, -0.03}, 3, 2));
    t.fwd = forward(t.net, t.x);
    return t;
  }();
  return made;
}

/// Two tiny CNNs, 1×4×4 input: conv 1→2 k2 (3×3), ReLU, then a max-pool k2 *stride 1* (the
/// windows overlap, so some inputs win two windows and get the ⊕ of both gates) or an average
/// pool k2 stride 1, flatten, dense 8→2.
struct tiny_cnn_t {
  network net;
  std::vector<double> x = {0.9, 0.1, 0.4, 0.0, 0.3, 0.8, 0.2, 0.6, 0.0, 0.5, 0.7, 0.1, 0.2, 0.0, 0.9, 0.4};
  forward_result fwd;
};

tiny_cnn_t make_tiny_cnn(bool max_pool) {
  tiny_cnn_t t;
  t.net.source = max_pool ? "tiny-cnn-maxpool" : "tiny-cnn-avgpool";
  t.net.input_shape = {1, 4, 4};
  layer cv;
  cv.name = "conv";
  cv.op_type = "Conv";
  conv2d_op op;
  op.in_channels = 1;
  op.out_channels = 2;
  op.kernel_h = op.kernel_w = 2;
  op.weight = {0.8, -0.4, 0.3, 0.5, -0.6, 0.9, 0.7, -0.2};
  op.bias = {-0.1, 0.05};
  cv.op = op;
  cv.in_shape = {1, 4, 4};
  cv.out_shape = {2, 3, 3};
  t.net.layers.push_back(cv);
  layer re;
  re.name = "relu";
  re.op_type = "Relu";
  re.op = relu_op{};
  re.in_shape = re.out_shape = {2, 3, 3};
  t.net.layers.push_back(re);
  layer pl;
  pl.name = "pool";
  pl.op_type = max_pool ? "MaxPool" : "AveragePool";
  pool_op po;
  po.mode = max_pool ? pool_op::kind::max : pool_op::kind::average;
  po.kernel_h = po.kernel_w = 2;
  pl.op = po;
  pl.in_shape = {2, 3, 3};
  pl.out_shape = {2, 2, 2};
  t.net.layers.push_back(pl);
  layer fl;
  fl.name = "flatten";
  fl.op_type = "Flatten";
  fl.op = reshape_op{};
  fl.in_shape = {2, 2, 2};
  fl.out_shape = {8};
  t.net.layers.push_back(fl);
  t.net.layers.push_back(dense_layer({0.9, -0.3, 0.5, 0.2, -0.7, 0.4, 0.6, -0.1,  //
                                      -0.2, 0.8, -0.5, 0.3, 0.6, -0.4, 0.1, 0.7},
                                     {0.03, -0.02}, 8, 2));
  t.fwd = forward(t.net, t.x);
  return t;
}

const tiny_cnn_t& tiny_cnn(bool max_pool) {
  static const tiny_cnn_t with_max = make_tiny_cnn(true), with_avg = make_tiny_cnn(false);
  return max_pool ? with_max : with_avg;
}

/// A small network's rule cases: every rule, z^B(−1, 1) on the first layer, the composites.
std::vector<std::pair<std::string, std::vector<rule>>> small_rules(const network& net) {
  std::vector<std::pair<std::string, std::vector<rule>>> out;
  for (const auto& rc : rule_cases) {
    if (rc.first == "array") continue;
    composite c;
    if (!rc.composite.empty()) c = parse_composite(rc.composite);
    if (!rc.rule.empty()) add_rule_option(c, rc.rule);
    if (!rc.first.empty()) add_rule_option(c, "first=zbox:-1,1");
    out.emplace_back(rc.label, resolve(c, net));
  }
  return out;
}
std::vector<std::pair<std::string, std::vector<rule>>> tiny_rules() { return small_rules(tiny().net); }

template <class S>
S semiring_for(const circuit& c) {
  if constexpr (std::is_same_v<S, dual_semiring>) {
    // Sensitivity to the first-layer weight the most paths use.
    const auto t = c.tokens().match("W1*").front();
    return dual_semiring(t, c.tokens().name(t));
  } else {
    return test::make_test_semiring<S>();
  }
}

/// N[X] of the chosen roots mapped through h_ν (ν = S's lifting of the natural valuation)
/// equals direct evaluation in S under the same lifting.
template <class S>
std::size_t check_universality(const circuit& c, std::span<const gate_id> roots) {
  const S s = semiring_for<S>(c);
  const nx_semiring nx;
  const auto nu_x = lift_valuation(c, nx);
  const auto polys = evaluate_gates(c, nx, std::span<const polynomial>(nu_x), roots);
  const auto nu_s = lift_valuation(c, s);
  const auto direct = evaluate_gates(c, s, std::span<const stored_value_t<S>>(nu_s), roots);
  std::size_t monomials = 0;
  for (std::size_t r = 0; r < roots.size(); ++r) {
    const auto via = evaluate_polynomial(s, polys[r], [&](token_index t) {
      return static_cast<typename S::value_type>(nu_s[t]);
    });
    const typename S::value_type d = direct[r];
    if constexpr (std::is_same_v<S, topk_semiring>) {
      // Paths whose |products| tie in exact arithmetic (a convolution's shared weights, an
      // input winning two pooling windows) are ranked by rounding, which differs between the
      // two orders of multiplication: there, only the scores must agree.
      const auto more = evaluate_polynomial(topk_semiring(s.k() + 1), polys[r], [&](token_index t) {
        return static_cast<typename S::value_type>(nu_s[t]);
      });
      auto tied = [&](double score) {
        std::size_t n = 0;
        for (const auto& e : more.entries) n += test::near(std::fabs(e.score), std::fabs(score));
        return n > 1;
      };
      REQUIRE(via.entries.size() == d.entries.size());
      bool ok = true;
      for (std::size_t i = 0; i < via.entries.size(); ++i)
        ok = ok && test::near(std::fabs(via.entries[i].score), std::fabs(d.entries[i].score)) &&
             (via.entries[i] == d.entries[i] || test::near(via.entries[i].score, d.entries[i].score) ||
              tied(d.entries[i].score));
      CHECK_MESSAGE(ok, "topk: root ", r, ": via N[X] ", s.format(via, c.tokens().namer()), " vs direct ",
                    s.format(d, c.tokens().namer()));
      monomials += polys[r].size();
      continue;
    }
    CHECK_MESSAGE(test::same(s, via, d), s.name(), ": root ", r, ": via N[X] ", s.format(via, c.tokens().namer()),
                  " vs direct ", s.format(d, c.tokens().namer()));
    monomials += polys[r].size();
  }
  return monomials;
}

std::vector<gate_id> feature_gates(const circuit& c, std::size_t limit = 1000) {
  std::vector<gate_id> g;
  for (const auto& r : c.roots())
    if (g.size() < limit) g.push_back(r.gate);
  return g;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("guarantee: universality, N[X] through the homomorphism = direct evaluation", S, universality) {
  std::size_t circuits = 0, monomials = 0;
  for (const auto& [label, rs] : tiny_rules())
    for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
      INFO("tiny MLP, ", label, b == bias_mode::kept ? "" : ", no bias");
      circuit_options o;
      o.layer_rules = rs;
      o.bias = b;
      o.targets = {0, 1};
      const circuit c = build_circuit(tiny().net, tiny().fwd, o);
      const auto roots = feature_gates(c);  // features and biases of both targets
      monomials += check_universality<S>(c, roots);
      ++circuits;
    }
  for (bool mp : {true, false})
    for (const auto& [label, rs] : small_rules(tiny_cnn(mp).net))
      for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
        INFO(tiny_cnn(mp).net.source, ", ", label, b == bias_mode::kept ? "" : ", no bias");
        circuit_options o;
        o.layer_rules = rs;
        o.bias = b;
        o.targets = {0, 1};
        const circuit c = build_circuit(tiny_cnn(mp).net, tiny_cnn(mp).fwd, o);
        monomials += check_universality<S>(c, feature_gates(c));
        ++circuits;
      }
  // The digits MLP: the cones of its two most relevant features (N[X] fits: ≤ a few thousand
  // monomials each), under ε and z⁺, both bias modes.
  const loaded& L = load(models[0]);
  for (const char* rname : {"epsilon", "zplus"})
    for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
      INFO("digits MLP, ", rname);
      circuit_options o;
      o.layer_rules.assign(3, parse_rule(rname));
      o.bias = b;
      const circuit c = build_circuit(L.net, L.fwd, o);
      const auto vals = root_values(c, c.tokens().values());
      std::vector<std::size_t> order(64);
      for (std::size_t i = 0; i < 64; ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](auto p, auto q) { return std::fabs(vals[p]) > std::fabs(vals[q]); });
      const gate_id roots[] = {c.roots()[order[0]].gate, c.roots()[order[1]].gate};
      monomials += check_universality<S>(c, roots);
      ++circuits;
    }
  MESSAGE(S::registry_name, ": ", circuits, " circuits, ", monomials, " monomials mapped");
}
TEST_CASE_TEMPLATE_APPLY(universality, all_semirings::as_tuple);

namespace {

/// Brute force over explicit paths: from output y down to every input feature, through the
/// reference's stages (dense, conv, average pool; ReLU, flatten and max-pool routing between
/// them), each step an edge (j, k, term m) with its
/// coefficient d = φ_m(a_j) ψ_m(w_jk) c_mk from the reference. Per feature: whether a path has
/// every d ≥ θ, how many do, and the best product of max-normalised |d| (Viterbi).
struct brute {
  std::vector<bool> any;
  std::vector<natural> count;
  std::vector<double> best;
  std::vector<double> all_d;  // every nonzero coefficient
  std::size_t paths = 0;
};

struct step {
  std::uint32_t j;
  double d, vit;
};

brute brute_force(const network& net, const forward_result& fwd, const std::vector<rule>& rules, bool keep,
                  std::size_t y, double theta) {
  const auto st = ref::stages(net);
  const ref::setup su{net, fwd, rules, keep};
  // adjacency per stage: for upper unit k, the (j, d, Viterbi weight) of its edges.
  std::vector<std::vector<std::vector<step>>> adj(st.size());
  brute out;
  for (std::size_t si = 0; si < st.size(); ++si) {
    const auto& s = st[si];
    const rule& r = ref::rule_of(su, st, si);
    const auto ts = ref::terms(r, s.pool);
    const auto& a = fwd.activations[s.layer];
    const auto cf = ref::coefficients(s, r, a, fwd.activations[s.layer + 1], keep, 1e-6);
    const std::size_t n_out = fwd.activations[s.layer + 1].size();
    adj[si].resize(n_out);
    std::map<std::pair<std::uint32_t, std::size_t>, double> maxabs;  // (k, m) → max |d|
    std::vector<std::tuple<std::uint32_t, std::uint32_t, std::size_t, double>> es;
    for (const auto& e : s.edges)
      for (std::size_t m = 0; m < ts.size(); ++m) {
        const double d = ref::phi(ts[m].phi, r, a[e.j], e.j) * ref::psi(ts[m].psi, r, e.w) * cf.c[m][e.k];
        if (d == 0) continue;
        es.emplace_back(e.k, e.j, m, d);
        auto& mx = maxabs[{e.k, m}];
        mx = std::max(mx, std::fabs(d));
        out.all_d.push_back(d);
      }
    for (auto [k, j, m, d] : es) adj[si][k].push_back({j, d, std::fabs(d) / maxabs[{k, m}]});
  }
  const std::size_t n_in = fwd.activations[0].size();
  out.any.assign(n_in, false);
  out.count.assign(n_in, 0);
  out.best.assign(n_in, 0.0);
  const double r_y = std::fabs(fwd.output()[y]);
  // From the input of the stage at `layer` down to the output of the layer below `floor`:
  // ReLU and flatten keep the index, a max-pool goes to the window's winner.
  auto route = [&](std::size_t layer, std::size_t floor, std::uint32_t j) {
    for (std::size_t i = layer; i-- > floor;) {
      const auto* p = std::get_if<pool_op>(&net.layers[i].op);
      if (p && p->mode == pool_op::kind::max) j = fwd.argmax[i][j];
    }
    return j;
  };
  // Explicit depth-first enumeration of every path (no dynamic programming).
  auto walk = [&](auto&& self, std::size_t si, std::uint32_t k, bool ok, double vit) -> void {
    for (const auto& e : adj[si][k]) {
      const bool ok2 = ok && e.d >= theta;
      const double v2 = vit * e.vit;
      if (si == 0) {
        const std::uint32_t i = route(st[0].layer, 0, e.j);
        ++out.paths;
        if (ok2) {
          out.any[i] = true;
          ++out.count[i];
        }
        out.best[i] = std::max(out.best[i], v2 * r_y);
      } else {
        self(self, si - 1, route(st[si].layer, st[si - 1].layer + 1, e.j), ok2, v2);
      }
    }
  };
  walk(walk, st.size() - 1, static_cast<std::uint32_t>(y), true, 1.0);
  return out;
}

/// A threshold well between two consecutive distinct coefficients near the q-quantile of the
/// positive ones, so rounding cannot put an edge on the other side.
double pick_theta(std::vector<double> d, double q) {
  std::vector<double> p;
  for (double v : d)
    if (v > 0) p.push_back(v);
  std::sort(p.begin(), p.end());
  REQUIRE(p.size() >= 2);
  for (std::size_t i = static_cast<std::size_t>(q * static_cast<double>(p.size() - 1)); i + 1 < p.size(); ++i)
    if (p[i + 1] - p[i] > 1e-6 * p[i + 1]) return 0.5 * (p[i] + p[i + 1]);
  return p.back() * 2;
}

struct path_stats {
  std::size_t cases = 0, features = 0, reachable = 0, paths = 0;
  natural counted = 0;
  double worst_viterbi = 0;
};

void check_paths(const network& net, const forward_result& fwd, const std::vector<rule>& rules, bias_mode b,
                 double q, bool viterbi, path_stats& ps) {
  circuit_options o;
  o.layer_rules = rules;
  o.bias = b;
  circuit_build_info info;
  const circuit c = build_circuit(net, fwd, o, &info);
  const std::size_t y = info.targets.at(0);
  const auto probe = brute_force(net, fwd, rules, b == bias_mode::kept, y, 0.0);
  const double theta = pick_theta(probe.all_d, q);
  const auto bf = brute_force(net, fwd, rules, b == bias_mode::kept, y, theta);
  INFO("theta = ", theta);
  std::vector<gate_id> feats;
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature) feats.push_back(r.gate);
  const auto th = threshold_annotation(c, theta);
  const boolean_semiring bs;
  const auto bv = lift_valuation(c, bs);
  const auto bool_vals = evaluate_gates(c, bs, std::span<const stored_value_t<boolean_semiring>>(bv), feats, &th);
  const counting_semiring cs;
  const auto cv = lift_valuation(c, cs);
  const auto count_vals = evaluate_gates(c, cs, std::span<const stored_value_t<counting_semiring>>(cv), feats, &th);
  for (std::size_t i = 0; i < feats.size(); ++i) {
    INFO("feature ", i);
    CHECK(static_cast<bool>(bool_vals[i]) == bf.any[i]);
    CHECK(count_vals[i] == bf.count[i]);
    ps.reachable += bf.any[i];
    ps.counted += bf.count[i];
  }
  if (viterbi) {
    const auto vt = viterbi_maxnorm_annotation(c);
    const viterbi_semiring vs;
    const auto vv = lift_valuation(c, vs);
    const auto vit = evaluate_gates(c, vs, std::span<const double>(vv), feats, &vt);
    for (std::size_t i = 0; i < feats.size(); ++i) {
      const double err = std::fabs(vit[i] - bf.best[i]) / std::max(1e-300, std::fabs(bf.best[i]));
      ps.worst_viterbi = std::max(ps.worst_viterbi, bf.best[i] == 0 ? std::fabs(vit[i]) : err);
      CHECK(vit[i] == doctest::Approx(bf.best[i]).epsilon(1e-12));
    }
  }
  ps.paths += bf.paths;
  ps.features += feats.size();
  ++ps.cases;
}

}  // namespace

TEST_CASE("guarantee: Boolean/counting under threshold:θ and Viterbi under viterbi-maxnorm = brute-force paths") {
  path_stats tiny_ps, digits_ps;
  for (const auto& [label, rs] : tiny_rules())
    for (auto b : {bias_mode::kept, bias_mode::zeroed})
      for (double q : {0.0, 0.3, 0.6}) {
        INFO("tiny MLP, ", label, b == bias_mode::kept ? "" : ", no bias", ", quantile ", q);
        check_paths(tiny().net, tiny().fwd, rs, b, q, true, tiny_ps);
      }
  for (bool mp : {true, false})
    for (const auto& [label, rs] : small_rules(tiny_cnn(mp).net))
      for (auto b : {bias_mode::kept, bias_mode::zeroed})
        for (double q : {0.0, 0.5}) {
          INFO(tiny_cnn(mp).net.source, ", ", label, b == bias_mode::kept ? "" : ", no bias", ", quantile ", q);
          check_paths(tiny_cnn(mp).net, tiny_cnn(mp).fwd, rs, b, q, true, tiny_ps);
        }
  const loaded& L = load(models[0]);
  for (const auto& rc : rule_cases)
    for (auto b : {bias_mode::kept, bias_mode::zeroed}) {
      INFO("digits MLP, ", case_name(models[0], rc, b));
      check_paths(L.net, L.fwd, rules_for(rc, models[0], L.net), b, 0.2, true, digits_ps);
    }
  CHECK(tiny_ps.reachable > 0);
  CHECK(tiny_ps.reachable < tiny_ps.features);  // the thresholds do cut some features off
  CHECK(digits_ps.reachable > 0);
  MESSAGE(fmt::format("tiny MLP and tiny CNNs (max/avg pool): {} cases, {} paths enumerated, {} of {} features reachable, {} passing paths; "
                      "digits MLP: {} cases, {} paths, {} of {} reachable, {} passing paths; worst Viterbi rel. error {:.3g}",
                      tiny_ps.cases, tiny_ps.paths, tiny_ps.reachable, tiny_ps.features, tiny_ps.counted.str(),
                      digits_ps.cases, digits_ps.paths, digits_ps.reachable, digits_ps.features,
                      digits_ps.counted.str(), std::max(tiny_ps.worst_viterbi, digits_ps.worst_viterbi)));
}
