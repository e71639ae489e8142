#include "engine/circuit_builder.hpp"

#include "engine/geometry.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <new>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "common/error.hpp"

namespace provnn::engine {

namespace {

using V = token_variant;
using K = token_kind;

constexpr std::uint32_t unset = 0xFFFFFFFFu;

inline double pos(double x) noexcept { return x > 0 ? x : 0.0; }
inline double neg(double x) noexcept { return x < 0 ? x : 0.0; }
inline double stab(double z, double eps) noexcept { return z >= 0 ? z + eps : z - eps; }
/// 1/stab(d): the per-unit coefficient; a zero stabilised denominator (only with ε = 0)
/// passes nothing, as in lrp().
inline double inv_stab(double d, double eps) noexcept {
  const double s = stab(d, eps);
  return s == 0 ? 0.0 : 1.0 / s;
}

std::string shape_string(const shape_t& s) { return fmt::format("({})", fmt::join(s, ",")); }

/// A term m of a rule: input modifier φ_m, parameter modifier ψ_m (none for pools).
struct term_spec {
  V phi;
  V psi;
  bool has_psi = true;
};
/// A bias share: ψ_m(b_k) with the coefficient of term m.
struct bias_spec {
  V psi;
  std::uint32_t term;
};

struct rule_terms {
  std::vector<term_spec> terms;
  std::vector<bias_spec> bias;  // empty: the rule gives biases nothing
};

rule_terms terms_of(const rule& r) {
  switch (r.kind) {
    case rule_kind::zero:
    case rule_kind::epsilon: return {{{V::plain, V::plain}}, {{V::plain, 0}}};
    case rule_kind::zplus: return {{{V::pos, V::pos}, {V::neg, V::neg}}, {{V::pos, 0}}};
    case rule_kind::alphabeta:
      return {{{V::pos, V::pos}, {V::neg, V::neg}, {V::pos, V::neg}, {V::neg, V::pos}}, {{V::pos, 0}, {V::neg, 2}}};
    case rule_kind::gamma:
      return {{{V::pos, V::gamma_pos}, {V::neg, V::gamma_neg}, {V::pos, V::gamma_neg}, {V::neg, V::gamma_pos}},
              {{V::gamma_pos, 0}, {V::gamma_neg, 2}}};
    case rule_kind::zbox: return {{{V::plain, V::plain}, {V::low, V::pos}, {V::high, V::neg}}, {}};
    case rule_kind::flat: return {{{V::one, V::one}}, {}};
    case rule_kind::wsquare: return {{{V::one, V::square}}, {{V::square, 0}}};
  }
  return {};
}

inline double modify(V v, double x, double gamma) noexcept {
  switch (v) {
    case V::plain: return x;
    case V::pos: return pos(x);
    case V::neg: return neg(x);
    case V::gamma_pos: return x + gamma * pos(x);
    case V::gamma_neg: return x + gamma * neg(x);
    case V::square: return x * x;
    case V::one: return 1.0;
    case V::low:
    case V::high: break;  // bounds are not modifiers of x
  }
  return 0.0;
}

// ---- edge geometry: f(k, j, p, w) for every edge input j → output k using parameter p ------
// The traversal orders are those of lrp()'s edge runs (engine/geometry.hpp). lrp() runs the
// convolutions of ε and of γ on non-negative inputs as matrix products instead
// (engine/conv_gemm.hpp): the same terms, grouped differently, so those sums agree up to rounding.

template <class F>
void dense_edges(const dense_op& op, F&& f) {
  const double* w = op.weight.data();
  for (std::size_t k = 0; k < op.out; ++k)
    for (std::size_t j = 0; j < op.in; ++j) f(k, j, k * op.in + j, w[k * op.in + j]);
}

template <class F>
void conv_edges(const conv2d_op& c, const shape_t& in, const shape_t& out, F&& f) {
  const std::size_t sw = c.stride_w;
  detail::conv_runs(c, in, out, [&f, sw](std::size_t k0, std::size_t j0, std::size_t n, std::size_t p, double wv) {
    for (std::size_t t = 0; t < n; ++t) f(k0 + t, j0 + t * sw, p, wv);
  });
}

template <class F>
void pool_edges(const pool_op& p, const shape_t& in, const shape_t& out, F&& f) {
  detail::pool_edges(p, in, out, [&f](std::size_t k, std::size_t j) { f(k, j, std::size_t{0}, 0.0); });
}

/// Calls f(k, j, p, w) for every edge of a linear stage (pools: p = 0, w = 0).
template <class F>
void stage_edges(const layer& l, F&& f) {
  if (const auto* d = std::get_if<dense_op>(&l.op)) {
    dense_edges(*d, f);
  } else if (const auto* c = std::get_if<conv2d_op>(&l.op)) {
    conv_edges(*c, l.in_shape, l.out_shape, f);
  } else {
    pool_edges(std::get<pool_op>(l.op), l.in_shape, l.out_shape, f);
  }
}

bool is_stage(const layer& l) {
  if (l.is_linear()) return true;
  const auto* p = std::get_if<pool_op>(&l.op);
  return p && p->mode == pool_op::kind::average;
}

/// Calls f(std::integral_constant<token_variant, v>{}) for the variant v: a loop inside f
/// then tests modify(v, …) with v known at compile time.
template <class F>
decltype(auto) with_variant(V v, F&& f) {
  switch (v) {
    case V::plain: return f(std::integral_constant<V, V::plain>{});
    case V::pos: return f(std::integral_constant<V, V::pos>{});
    case V::neg: return f(std::integral_constant<V, V::neg>{});
    case V::gamma_pos: return f(std::integral_constant<V, V::gamma_pos>{});
    case V::gamma_neg: return f(std::integral_constant<V, V::gamma_neg>{});
    case V::square: return f(std::integral_constant<V, V::square>{});
    case V::one: return f(std::integral_constant<V, V::one>{});
    case V::low: return f(std::integral_constant<V, V::low>{});
    case V::high: return f(std::integral_constant<V, V::high>{});
  }
  return f(std::integral_constant<V, V::one>{});
}

/// Inputs per tile of bucket_dense_edges (its tiles take 12 bytes per input, term and
/// reached upper unit: 12 · min(dense_tile, in) · T · out at most).
constexpr std::size_t dense_tile = 128;

/// The active edges of a dense stage in the fused layout, bucketed by (lower unit j, term m)
/// with k ascending in a bucket: what build_stage's counting pass and counting sort give for
/// any stage, here without either. The weights (rows k of `in` values) are read in tiles of
/// 128 adjacent j, so a tile's buckets fill from cached rows and no edge is recorded and then
/// scattered (those two passes were 40 % of an MLP's build); 128, not 32: a kilobyte of each
/// row at a time, which made 8192 → 256's build 5 % faster. `active[m]` lists the upper
/// units k that term m reaches, ascending; `phi_nz[m·in + j]` whether φ_m(a_j) ≠ 0; an edge
/// is active when also modify(psi[m], w, gamma) ≠ 0 (V::one for a term without ψ). Fills
/// start (size in·T + 1, bucket offsets), k and s (each edge's upper unit and its weight's
/// offset j·out + k in the j-major parameter block; with one term not for a full bucket,
/// whose k are active[0]) and w (its weight, or with `modified` its term's ψ value
/// modify(psi[m], w, gamma)), each with room for every structural edge, and per_k (active
/// edges per upper unit); returns the number of active edges.
std::size_t bucket_dense_edges(const dense_op& op, std::size_t T, const std::vector<std::vector<std::uint32_t>>& active,
                               const std::vector<std::uint8_t>& phi_nz, const std::vector<V>& psi, double gamma,
                               bool modified, std::vector<std::uint32_t>& start, std::uint32_t* e_k,
                               std::uint32_t* e_s, double* e_w, std::vector<std::uint32_t>& per_k) {
  const std::size_t in = op.in, out = op.out, J = std::min(dense_tile, in);
  std::size_t kmax = 0;
  for (const auto& ks : active) kmax = std::max(kmax, ks.size());
  // The tile keeps each edge's value beside its k: copying it out then reads the tile in
  // order, not the weight rows (k-major) across.
  std::vector<std::uint32_t> tile, fill(J * T), live;  // (the tiles only once a tile needs them)
  std::vector<double> tile_w;
  start.assign(in * T + 1, 0);
  per_k.assign(out, 0);
  std::size_t at = 0, n_full = 0;
  const double* w = op.weight.data();
  // One term (modified): a tile in which every live lower unit reaches all of active[0] — no
  // ψ = 0 among those weights, as on any layer without zero weights — has only full buckets.
  // Their k are active[0] itself and their values the tile's ψ transposed, written straight
  // to e_w (8 upper units at a time: 8 weight rows read along, 64 bytes written per lower
  // unit), with no e_k or e_s: the caller reads a full bucket's k from active[0] (see
  // bucket_is_full). A tile with a zero is redone below, and later tiles skip this (a rule
  // whose ψ zeroes weights, as z⁺'s, would redo every tile).
  bool try_full = modified && T == 1 && !active[0].empty();
  for (std::size_t j0 = 0; j0 < in; j0 += J) {
    const std::size_t jn = std::min(J, in - j0);
    if (try_full) {
      live.clear();
      for (std::size_t jl = 0; jl < jn; ++jl)
        if (phi_nz[j0 + jl]) live.push_back(static_cast<std::uint32_t>(jl));
      const std::vector<std::uint32_t>& ks = active[0];
      const std::size_t R = ks.size();
      bool nonzero = true;
      double* dst = e_w + at;
      with_variant(psi[0], [&](auto v) {
        // kn upper units from kb: a compile-time count for the whole blocks of 8, so that the
        // inner loop unrolls into 8 loads and one 64-byte store.
        auto block = [&](std::size_t kb, auto kn) {
          const double* rows[8];
          for (std::size_t kk = 0; kk < kn; ++kk) rows[kk] = w + ks[kb + kk] * in + j0;
          for (std::size_t li = 0; li < live.size(); ++li) {
            const std::uint32_t jl = live[li];
            double* d = dst + li * R + kb;
            for (std::size_t kk = 0; kk < kn; ++kk) d[kk] = modify(v, rows[kk][jl], gamma);
          }
        };
        std::size_t kb = 0;
        for (; kb + 8 <= R; kb += 8) block(kb, std::integral_constant<std::size_t, 8>{});
        if (kb < R) block(kb, R - kb);
      });
      // Then whether any is 0, over the written values in order (a loop that vectorises; a
      // test per value in the loop above chained every store to the last test).
      std::size_t zeros = 0;
      for (std::size_t i = 0, n = live.size() * R; i < n; ++i) zeros += dst[i] == 0.0;
      nonzero = zeros == 0;
      if (nonzero) {
        for (std::size_t jl = 0; jl < jn; ++jl) {
          start[j0 + jl] = static_cast<std::uint32_t>(at);
          if (phi_nz[j0 + jl]) at += R;
        }
        n_full += live.size();
        continue;
      }
      try_full = false;
    }
    if (tile.empty()) {
      tile.resize(J * T * kmax);
      tile_w.resize(J * T * kmax);
    }
    std::fill(fill.begin(), fill.end(), 0u);
    for (std::size_t m = 0; m < T; ++m) {
      live.clear();
      for (std::size_t jl = 0; jl < jn; ++jl)
        if (phi_nz[m * in + j0 + jl]) live.push_back(static_cast<std::uint32_t>(jl));
      if (live.empty()) continue;
      with_variant(psi[m], [&](auto v) {
        for (const std::uint32_t k : active[m]) {
          const double* row = w + k * in + j0;
          for (const std::uint32_t jl : live) {
            const double x = modify(v, row[jl], gamma);
            if (x != 0) {
              const std::size_t b = jl * T + m, slot = b * kmax + fill[b]++;
              tile[slot] = k;
              tile_w[slot] = modified ? x : row[jl];
            }
          }
        }
      });
    }
    for (std::size_t b = 0; b < jn * T; ++b) {
      start[j0 * T + b] = static_cast<std::uint32_t>(at);
      const std::size_t base = (j0 + b / T) * out;
      for (std::uint32_t x = 0; x < fill[b]; ++x, ++at) {
        const std::uint32_t k = tile[b * kmax + x];
        e_k[at] = k;
        e_s[at] = static_cast<std::uint32_t>(base + k);
        e_w[at] = tile_w[b * kmax + x];
        ++per_k[k];
      }
    }
  }
  start[in * T] = static_cast<std::uint32_t>(at);
  if (n_full)
    for (const std::uint32_t k : active[0]) per_k[k] += static_cast<std::uint32_t>(n_full);
  return at;
}

/// Appends x in decimal (as fmt's "{}" writes it) to s.
void append_number(std::string& s, std::uint64_t x) {
  char buf[24];
  s.append(buf, std::to_chars(buf, buf + sizeof buf, x).ptr);
}

void unravel(std::size_t flat, const shape_t& shape, std::vector<std::uint32_t>& out) {
  out.resize(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    out[d] = static_cast<std::uint32_t>(shape[d] == 0 ? 0 : flat % shape[d]);
    flat = shape[d] == 0 ? 0 : flat / shape[d];
  }
}

void check_bound(const zbox_bound& b, const char* which, std::size_t n_in, const layer& l, std::size_t lin) {
  if (!b.loaded())
    throw error(fmt::format("zbox bound {} '{}' of linear layer {} ('{}') is not loaded; resolve_bounds() reads it",
                            which, b.path, lin, l.name));
  if (!b.values.empty() && b.values.size() != n_in)
    throw error(fmt::format(
        "zbox bound {} '{}' has {} values but linear layer {} ('{}') has {} inputs of shape {}; give a scalar or "
        "one bound per input feature",
        which, b.path.empty() ? "<values>" : b.path, b.values.size(), lin, l.name, n_in, shape_string(l.in_shape)));
  if (!std::isfinite(b.scalar))
    throw error(fmt::format("zbox bound {} of linear layer {} ('{}') is not finite ({})", which, lin, l.name, b.scalar));
  for (std::size_t j = 0; j < b.values.size(); ++j)
    if (!std::isfinite(b.values[j]))
      throw error(fmt::format("zbox bound {} '{}' of linear layer {} ('{}') has a non-finite value at flat index {}",
                              which, b.path.empty() ? "<values>" : b.path, lin, l.name, j));
}

/// One explanation sharing the circuit: the output units it starts from and its root suffix.
struct group {
  std::vector<std::pair<std::size_t, double>> start;  // (output unit y, initial relevance)
  std::string suffix;                                 // "" or "|r[y]"
  std::uint32_t target = no_target;
  std::vector<gate_id> r;  // R at the current boundary
  // (lower unit, gate) pairs of the stage being built, then bucketed by lower unit
  std::vector<std::uint32_t> pair_j;
  std::vector<gate_id> pair_g;
};

class builder {
 public:
  builder(const network& net, const forward_result& fwd, const circuit_options& opt)
      : net_(net), fwd_(fwd), opt_(opt), keep_bias_(opt.bias == bias_mode::kept) {
    c_.set_limits({opt.max_gates, opt.max_memory});
  }

  circuit run(circuit_build_info* info);

 private:
  void check();
  void make_groups();
  void build_stage(std::size_t i, std::size_t s, const rule& r);
  void route_max_pool(std::size_t i);

  gate_id token_gate(K kind, V variant, std::uint32_t layer, std::span<const std::uint32_t> index, double value,
                     std::uint32_t term = 0) {
    const token_index t = c_.tokens().intern(kind, variant, layer, index, term);
    c_.tokens().set_value(t, value);
    return c_.token(t);
  }

  const network& net_;
  const forward_result& fwd_;
  const circuit_options& opt_;
  const bool keep_bias_;
  circuit c_;
  std::vector<group> groups_;
  std::vector<std::size_t> stage_of_;
  std::vector<std::string> stage_rules_;
  std::vector<root> bias_roots_;
  std::vector<std::uint32_t> idx_;
  // The fused layout's active edges of the stage being built, in traversal order: (bucket
  // j·T + m, upper unit k, parameter p). Recorded by the counting pass so that the bucketing
  // pass need not traverse the stage's edges again (most visited edges are inactive).
  struct active_edge {
    std::uint32_t bucket, k, p;
  };
  std::vector<active_edge> active_;
  std::size_t edges_ = 0;
  bool first_reads_x_ = true;
};

void builder::check() {
  check_forward_result(net_, fwd_);
  const auto n_linear = static_cast<std::size_t>(
      std::count_if(net_.layers.begin(), net_.layers.end(), [](const layer& l) { return l.is_linear(); }));
  if (opt_.layer_rules.size() != n_linear)
    throw error(fmt::format(
        "build_circuit: {} rules given but network '{}' has {} linear layers; use resolve() to get one per layer",
        opt_.layer_rules.size(), net_.source, n_linear));
  if (!(opt_.pool_epsilon >= 0) || !std::isfinite(opt_.pool_epsilon))
    throw error(fmt::format("build_circuit: pool_epsilon must be a finite number >= 0, got {}", opt_.pool_epsilon));
}

void builder::make_groups() {
  const auto& logits = fwd_.output();
  auto check_class = [&](std::size_t t) {
    if (t >= logits.size())
      throw error(fmt::format("target class {} is out of range: the network has {} outputs (0..{})", t, logits.size(),
                              logits.size() - 1));
  };
  if (!opt_.targets.empty()) {
    for (std::size_t t : opt_.targets) {
      check_class(t);
      for (const auto& g : groups_)
        if (g.target == t) throw error(fmt::format("build_circuit: target class {} is listed twice", t));
      group g;
      g.start = {{t, logits[t]}};
      g.target = static_cast<std::uint32_t>(t);
      if (opt_.targets.size() > 1) g.suffix = fmt::format("|r[{}]", t);
      groups_.push_back(std::move(g));
    }
    return;
  }
  group g;
  if (const auto* v = std::get_if<std::vector<double>>(&opt_.target)) {
    if (v->size() != logits.size())
      throw error(fmt::format("initial relevance has {} values but the network output has {}", v->size(), logits.size()));
    for (std::size_t y = 0; y < v->size(); ++y) {
      if (!std::isfinite((*v)[y])) throw error(fmt::format("initial relevance value {} is not finite ({})", y, (*v)[y]));
      if ((*v)[y] != 0) g.start.emplace_back(y, (*v)[y]);
    }
  } else {
    std::size_t t = 0;
    if (const auto* cl = std::get_if<std::size_t>(&opt_.target)) {
      t = *cl;
      check_class(t);
    } else {
      t = predicted(fwd_);
    }
    g.start = {{t, logits[t]}};
    g.target = static_cast<std::uint32_t>(t);
  }
  groups_.push_back(std::move(g));
}

void builder::route_max_pool(std::size_t i) {
  const layer& l = net_.layers[i];
  const std::size_t n_out = fwd_.activations[i + 1].size(), n_in = fwd_.activations[i].size();
  if (i >= fwd_.argmax.size() || fwd_.argmax[i].size() != n_out)
    throw error(fmt::format("forward result: max-pool layer {} ('{}') has no winner for each of its {} outputs", i,
                            l.name, n_out));
  const auto& win = fwd_.argmax[i];
  for (auto& g : groups_) {
    std::vector<gate_id> r_in(n_in, zero_gate);
    for (std::size_t k = 0; k < n_out; ++k) {
      PROVNN_ASSERT(win[k] < n_in);
      if (g.r[k] == zero_gate) continue;
      // Overlapping windows can share a winner: its relevance is the sum of theirs.
      r_in[win[k]] = r_in[win[k]] == zero_gate ? g.r[k] : c_.plus({r_in[win[k]], g.r[k]});
    }
    g.r = std::move(r_in);
  }
}

void builder::build_stage(std::size_t i, std::size_t s, const rule& r) {
  const layer& l = net_.layers[i];
  const bool pool = !l.is_linear();
  const auto* dense = std::get_if<dense_op>(&l.op);
  const auto* conv = std::get_if<conv2d_op>(&l.op);
  const std::vector<double>& a = fwd_.activations[i];
  const std::vector<double>& z = fwd_.activations[i + 1];
  const std::size_t n_in = a.size(), n_out = z.size();
  const auto layer_no = static_cast<std::uint32_t>(s);
  const bool reads_x = s == 1 && first_reads_x_;

  rule_terms rt;
  if (pool) {
    rt.terms = {{V::plain, V::plain, false}};
  } else {
    rt = terms_of(r);
    if (!keep_bias_) rt.bias.clear();
  }
  if (!pool && r.kind == rule_kind::zbox) {
    if (!reads_x)
      throw unsupported_error(fmt::format(
          "build_circuit: the zbox rule on layer '{}' (stage {}) needs the network input as its input, but other "
          "layers come before it; the circuit names z^B bounds only for input features (l[i], h[i]); use zbox on "
          "the first linear layer only",
          l.name, s));
    check_bound(r.low, "L", n_in, l, s - 1);
    check_bound(r.high, "H", n_in, l, s - 1);
  }
  const std::size_t T = rt.terms.size();

  // Parameters and their shapes.
  const std::vector<double>* bias_vec = dense ? &dense->bias : conv ? &conv->bias : nullptr;
  std::size_t plane = 1;  // output units per bias parameter
  shape_t wshape;
  if (dense) wshape = {dense->out, dense->in};
  if (conv) {
    wshape = {conv->out_channels, conv->in_channels / conv->group, conv->kernel_h, conv->kernel_w};
    plane = l.out_shape[1] * l.out_shape[2];
  }
  auto bias = [&](std::size_t k) -> double {
    if (!keep_bias_ || !bias_vec || bias_vec->empty()) return 0.0;
    return (*bias_vec)[k / plane];
  };

  // Per-unit coefficients c_mk (with all divisions, ε, γ, α, β and signs), as lrp() does.
  std::vector<std::vector<double>> coef(T, std::vector<double>(n_out, 0.0));
  const double eps = r.epsilon;
  if (pool) {
    const auto& p = std::get<pool_op>(l.op);
    std::vector<double> count(n_out, 0.0);
    if (p.count_include_pad) {
      std::fill(count.begin(), count.end(), static_cast<double>(p.kernel_h * p.kernel_w));
    } else {
      stage_edges(l, [&](std::size_t k, std::size_t, std::size_t, double) { count[k] += 1.0; });
    }
    for (std::size_t k = 0; k < n_out; ++k)
      coef[0][k] = count[k] == 0 ? 0.0 : inv_stab(z[k], opt_.pool_epsilon) / count[k];
  } else {
    switch (r.kind) {
      case rule_kind::zero:
      case rule_kind::epsilon: {
        if (keep_bias_) {
          for (std::size_t k = 0; k < n_out; ++k) coef[0][k] = inv_stab(z[k], eps);
        } else {
          std::vector<double> d(n_out, 0.0);
          stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t, double w) { d[k] += a[j] * w; });
          for (std::size_t k = 0; k < n_out; ++k) coef[0][k] = inv_stab(d[k], eps);
        }
        break;
      }
      case rule_kind::zplus:
      case rule_kind::alphabeta: {
        const bool ab = r.kind == rule_kind::alphabeta;
        const double alpha = ab ? r.alpha : 1.0, beta = ab ? r.beta : 0.0;
        std::vector<double> dp(n_out), dn(n_out);
        for (std::size_t k = 0; k < n_out; ++k) {
          dp[k] = pos(bias(k));
          dn[k] = neg(bias(k));
        }
        stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t, double w) {
          const double ap = pos(a[j]), an = neg(a[j]), wp = pos(w), wn = neg(w);
          dp[k] += ap * wp + an * wn;
          dn[k] += ap * wn + an * wp;
        });
        for (std::size_t k = 0; k < n_out; ++k) {
          coef[0][k] = coef[1][k] = alpha * inv_stab(dp[k], eps);
          // z⁻_k = 0 means every negative contribution is 0: the unit has no negative share.
          if (ab && beta != 0 && dn[k] != 0) coef[2][k] = coef[3][k] = -beta * inv_stab(dn[k], eps);
        }
        break;
      }
      case rule_kind::gamma: {
        const double gm = r.gamma;
        auto up = [gm](double w) { return w + gm * pos(w); };
        auto un = [gm](double w) { return w + gm * neg(w); };
        std::vector<double> dp(n_out), dn(n_out);
        for (std::size_t k = 0; k < n_out; ++k) {
          dp[k] = up(bias(k));
          dn[k] = un(bias(k));
        }
        stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t, double w) {
          const double ap = pos(a[j]), an = neg(a[j]);
          dp[k] += ap * up(w) + an * un(w);
          dn[k] += ap * un(w) + an * up(w);
        });
        // The sign test is on the forward z_k, whatever the bias mode (as lrp()).
        for (std::size_t k = 0; k < n_out; ++k) {
          if (z[k] > 0) coef[0][k] = coef[1][k] = inv_stab(dp[k], eps);
          else if (z[k] < 0) coef[2][k] = coef[3][k] = inv_stab(dn[k], eps);
        }
        break;
      }
      case rule_kind::zbox: {
        std::vector<double> d(n_out, 0.0);
        stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t, double w) {
          d[k] += a[j] * w - r.low.at(j) * pos(w) - r.high.at(j) * neg(w);
        });
        for (std::size_t k = 0; k < n_out; ++k) {
          coef[0][k] = inv_stab(d[k], eps);
          coef[1][k] = coef[2][k] = -coef[0][k];
        }
        break;
      }
      case rule_kind::flat: {
        std::vector<double> d(n_out, 0.0);
        stage_edges(l, [&](std::size_t k, std::size_t, std::size_t, double) { d[k] += 1.0; });
        for (std::size_t k = 0; k < n_out; ++k) coef[0][k] = inv_stab(d[k], eps);
        break;
      }
      case rule_kind::wsquare: {
        std::vector<double> d(n_out);
        for (std::size_t k = 0; k < n_out; ++k) d[k] = bias(k) * bias(k);
        stage_edges(l, [&](std::size_t k, std::size_t, std::size_t, double w) { d[k] += w * w; });
        for (std::size_t k = 0; k < n_out; ++k) coef[0][k] = inv_stab(d[k], eps);
        break;
      }
    }
  }

  // Units some explanation needs (R_k not the zero gate in at least one group).
  std::vector<std::uint8_t> need(n_out, 0);
  std::size_t needing = 0;
  for (const auto& g : groups_)
    for (std::size_t k = 0; k < n_out; ++k)
      if (g.r[k] != zero_gate && !need[k]) need[k] = 1, ++needing;

  auto phi_value = [&](V v, std::size_t j) -> double {
    if (v == V::low) return r.low.at(j);
    if (v == V::high) return r.high.at(j);
    return modify(v, a[j], 0.0);
  };
  auto psi_value = [&](V v, double w) { return modify(v, w, r.gamma); };
  // Whether edge j → k carries term m: every factor of E_jk^m has a nonzero natural value.
  auto term_active = [&](std::size_t m, std::size_t k, std::size_t j, double w) {
    const auto& ts = rt.terms[m];
    return coef[m][k] != 0 && phi_value(ts.phi, j) != 0 && (!ts.has_psi || psi_value(ts.psi, w) != 0);
  };

  // Whether φ_m(a_j) ≠ 0, at phi_nz[m·n_in + j]: for the fused layout's visits below.
  std::vector<std::uint8_t> phi_nz;
  if (opt_.layout != circuit_layout::plain && !pool && needing) {
    phi_nz.resize(T * n_in);
    for (std::size_t m = 0; m < T; ++m)
      for (std::size_t j = 0; j < n_in; ++j) phi_nz[m * n_in + j] = phi_value(rt.terms[m].phi, j) != 0;
  }

  // A convolution's active edges, f(k, j, p, m) for each, visited from the units some
  // explanation needs (before a max pool, most are not): output channel ascending, then its
  // units k descending, then the taps of k. Within a bucket (j, m) that is the order of
  // stage_edges — ascending (output channel, kernel row, kernel column), since for a fixed
  // input j a later tap meets an earlier output unit — which is all the fused layout's stable
  // bucketing keeps, so the circuit is the same byte for byte as a visit in stage order (tests
  // check each fused gate's edges for stage order, and the recorded and unrecorded paths for
  // the same bytes).
  auto conv_active_edges = [&](auto&& f) {
    const std::size_t H = l.in_shape[1], W = l.in_shape[2], OH = l.out_shape[1], OW = l.out_shape[2];
    const std::size_t icg = conv->in_channels / conv->group, ocg = conv->out_channels / conv->group;
    const std::size_t kh = conv->kernel_h, kw = conv->kernel_w;
    std::vector<std::uint8_t> m_ok(T);
    for (std::size_t oc = 0; oc < conv->out_channels; ++oc) {
      const std::size_t grp = oc / ocg;
      for (std::size_t u = OH * OW; u-- > 0;) {
        const std::size_t k = oc * OH * OW + u;
        if (!need[k]) continue;
        bool any = false;
        for (std::size_t m = 0; m < T; ++m) any |= m_ok[m] = coef[m][k] != 0;
        if (!any) continue;
        const auto oy = static_cast<std::ptrdiff_t>(u / OW), ox = static_cast<std::ptrdiff_t>(u % OW);
        for (std::size_t icl = 0; icl < icg; ++icl) {
          const std::size_t ci = grp * icg + icl;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            const std::ptrdiff_t iy = oy * static_cast<std::ptrdiff_t>(conv->stride_h) +
                                      static_cast<std::ptrdiff_t>(ky * conv->dilation_h) -
                                      static_cast<std::ptrdiff_t>(conv->pad_top);
            if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(H)) continue;
            for (std::size_t kx = 0; kx < kw; ++kx) {
              const std::ptrdiff_t ix = ox * static_cast<std::ptrdiff_t>(conv->stride_w) +
                                        static_cast<std::ptrdiff_t>(kx * conv->dilation_w) -
                                        static_cast<std::ptrdiff_t>(conv->pad_left);
              if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(W)) continue;
              const std::size_t j = (ci * H + static_cast<std::size_t>(iy)) * W + static_cast<std::size_t>(ix);
              const std::size_t p = ((oc * icg + icl) * kh + ky) * kw + kx;
              const double w = conv->weight[p];
              for (std::size_t m = 0; m < T; ++m)
                if (m_ok[m] && phi_nz[m * n_in + j] && (!rt.terms[m].has_psi || psi_value(rt.terms[m].psi, w) != 0))
                  f(k, j, p, m);
            }
          }
        }
      }
    }
  };

  // Count the edges first, so every array is reserved once. The fused layout also counts
  // them per bucket (lower unit j, term m) here, for its counting sort below (a dense stage
  // within max_recorded_edges is bucketed at once instead: bucket_dense_edges).
  // The structured layout keeps a convolution's edges in structured gates (below), a dense
  // layer's in fused gates.
  const bool structure = opt_.layout == circuit_layout::structured && conv;
  const bool fuse = opt_.layout != circuit_layout::plain && !pool && !structure;
  std::vector<std::uint32_t> start(fuse ? n_in * T + 1 : 0, 0);
  std::size_t n_edges = 0;
  std::vector<std::size_t> per_group(groups_.size(), 0);
  // Record the active edges (12 bytes each) when the stage cannot have more than
  // max_recorded_edges and their record fits the budget; else traverse the stage twice.
  const std::size_t structural =
      T * (dense ? dense->in * dense->out
                 : conv ? n_out * (conv->in_channels / conv->group) * conv->kernel_h * conv->kernel_w : 0);
  active_.clear();
  const bool recorded = fuse && structural <= opt_.max_recorded_edges &&
                  c_.fits_memory(sizeof(active_edge) * std::max(structural, active_.capacity()));
  // A dense stage within that bound is bucketed straight from its weight rows
  // (bucket_dense_edges), with room for every structural edge (16 bytes each, uninitialised:
  // pages no edge reaches are never touched). Its e_p then holds block offsets j·out + k,
  // and e_w each edge's weight.
  const bool dense_direct =
      fuse && dense && structural <= opt_.max_recorded_edges &&
      c_.fits_memory(16 * structural + 12 * std::min(dense_tile, dense->in) * T * dense->out);
  // Tokens: at most one per (parameter, term) and per (unit, term) on either side. (Before the
  // counting pass for the fused and structured layouts, whose estimate needs no edge count: a
  // dense stage's ψ values are then written straight into the table's room.)
  auto reserve_tokens = [&](std::size_t n_edges_counted) {
    const std::size_t n_params_all = dense ? dense->weight.size() : conv ? conv->weight.size() : 0;
    // (The fused layout keeps parameters in blocks, outside this estimate.)
    // (The structured layout makes its per-unit tokens as blocks too: the bias shares' at most.)
    const std::size_t est = structure ? 2 * n_out / plane * rt.bias.size() + 16
                                      : (fuse ? 0 : std::min(n_params_all * T, n_edges_counted)) + (n_in + n_out) * T + 16;
    // A hint as for the gates: skipped when it would not fit the budget (est is an upper bound).
    // Coordinates are stored for single tokens only, at most four each (block tokens compute
    // theirs): room for the new ones, not for every token (that reserved 8 bytes per edge).
    const std::size_t coords = c_.tokens().coordinate_count() + 4 * est;
    const std::size_t want = token_table::bytes_for(c_.tokens().size() + est, coords);
    if (c_.fits_memory(want)) c_.tokens().reserve(c_.tokens().size() + est, coords);
  };
  if (fuse || structure) reserve_tokens(0);
  std::unique_ptr<std::uint32_t[]> e_k, e_p;
  std::unique_ptr<double[]> e_w_own;
  double* e_w = nullptr;  // e_w_own, or with one term the token table's room for the ψ block
  std::size_t values_cap = 0;  // the table's value capacity before that room (else 0)
  std::vector<std::vector<std::uint32_t>> dense_reach(T);  // per term, the upper units bucketed
  if (dense_direct && needing) {
    for (std::size_t m = 0; m < T; ++m)
      for (std::size_t k = 0; k < n_out; ++k)
        if (need[k] && coef[m][k] != 0) dense_reach[m].push_back(static_cast<std::uint32_t>(k));
    e_k.reset(new std::uint32_t[structural]);
    e_p.reset(new std::uint32_t[structural]);
    // One term: the buckets' ψ values are the block's values (add_block_bits below), so they
    // are written where the table will hold them, with room for the stage's single tokens
    // after them. Nothing adds tokens before that block.
    if (T == 1 && !dense_reach[0].empty()) {
      values_cap = c_.tokens().value_capacity();
      e_w = c_.tokens().value_room(structural + (n_in + n_out) + 16).data();
    } else if (T > 1)
      e_w_own.reset(e_w = new double[structural]);
    std::vector<std::uint32_t> per_k;
    std::vector<V> psi(T);
    for (std::size_t m = 0; m < T; ++m) psi[m] = rt.terms[m].has_psi ? rt.terms[m].psi : V::one;
    // One term: each edge's ψ value is what its parameter token holds (by_edge below), so
    // the buckets keep that instead of the weight, and the token block takes them as they
    // are. (A dense layer's terms all have a ψ: psi[0] is the block's variant.)
    n_edges = bucket_dense_edges(*dense, T, dense_reach, phi_nz, psi, r.gamma, T == 1, start, e_k.get(), e_p.get(),
                                 e_w, per_k);
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t k = 0; k < n_out; ++k) per_group[gi] += groups_[gi].r[k] != zero_gate ? per_k[k] : 0;
  } else if (needing && !structure) {
    auto count_edge = [&](std::size_t k, std::size_t j, std::size_t p, std::size_t m) {
      ++n_edges;
      if (fuse) {
        ++start[j * T + m + 1];
        if (recorded)  // at most `structural` edges: within the bound checked above
          active_.push_back({static_cast<std::uint32_t>(j * T + m), static_cast<std::uint32_t>(k),
                             static_cast<std::uint32_t>(p)});
      }
      for (std::size_t gi = 0; gi < groups_.size(); ++gi) per_group[gi] += groups_[gi].r[k] != zero_gate;
    };
    if (fuse && conv)
      conv_active_edges(count_edge);
    else
      stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t p, double w) {
        if (!need[k]) return;
        for (std::size_t m = 0; m < T; ++m)
          if (term_active(m, k, j, w)) count_edge(k, j, p, m);
      });
  }
  if (!recorded || dense_direct) active_ = {};  // give the memory back: no record is read
  // Whether bucket (j, m) of a one-term dense stage holds every upper unit its term reaches:
  // its k are then dense_reach[m] (an ascending subset of that list, of its size), which
  // bucket_dense_edges wrote to e_k and e_p only when the bucket's tile fell back to the
  // edge-by-edge path (the same k then).
  auto bucket_is_full = [&](std::size_t j, std::size_t m) {
    return dense_direct && T == 1 && start[j * T + m + 1] - start[j * T + m] == dense_reach[m].size();
  };
  std::size_t products = 0;
  for (auto n : per_group) products += n;
  // The gates below exist for live units only: lower units with φ_m(a_j) ≠ 0 for some term
  // (every edge and fused or structured gate needs one), upper units some explanation needs
  // (scale gates, normalisers, bias shares). Counting them keeps the hints near what is made:
  // room for every unit reserved twice what vgg-small's circuit needed, and shrink_to_fit()
  // then copied the whole arena once more (1.3 ms of its 22 ms build).
  std::size_t live_in = n_in;
  if (!phi_nz.empty()) {
    live_in = 0;
    for (std::size_t j = 0; j < n_in; ++j) {
      bool any = false;
      for (std::size_t m = 0; m < T && !any; ++m) any = phi_nz[m * n_in + j] != 0;
      live_in += any;
    }
  }
  const std::size_t live_out = needing;
  // The bias shares below: per explanation, bias term and unit a product of three, per bias
  // parameter a sum over its units and a token gate.
  const std::size_t bias_params = !rt.bias.empty() && bias_vec ? n_out / plane : 0;
  const std::size_t bias_gates =
      bias_params ? rt.bias.size() * (groups_.size() * (live_out + bias_params) + bias_params) : 0;
  const std::size_t bias_refs =
      bias_params ? rt.bias.size() * (groups_.size() * (4 * live_out + bias_params) + bias_params) : 0;
  if (fuse) {
    c_.reserve(c_.size() + (groups_.size() + 1) * T * (live_in + live_out) + 4 * live_in + bias_gates + 64,
               c_.raw_children().size() + products + (groups_.size() + 2) * T * (live_in + live_out) + bias_refs + 64);
    // A dense layer's gates take runs of their j-major parameter block (no entries); a
    // convolution's list their shared weights, one entry per edge.
    c_.reserve_fused(groups_.size() * T * live_in, dense ? 0 : products);
  } else if (structure) {
    // Per explanation and term: a scale gate per upper unit (two children), a structured
    // gate per lower unit (one), and with several terms a ⊕ per lower unit over them; per term
    // a token gate (one child) per normaliser and φ.
    c_.reserve(c_.size() + groups_.size() * T * (live_in + live_out) + groups_.size() * live_in +
                   T * (live_in + live_out) + bias_gates + 64,
               c_.raw_children().size() + groups_.size() * T * (2 * live_out + live_in) +
                   (T > 1 ? groups_.size() * T * live_in : 0) + T * (live_in + live_out) + bias_refs + 64);
  } else
    c_.reserve(c_.size() + n_edges + products + groups_.size() * n_in + 4 * n_in + 2 * T * n_out + bias_gates + 64,
               c_.raw_children().size() + 3 * n_edges + 3 * products + 2 * n_in + bias_refs + 64);
  if (!fuse && !structure) reserve_tokens(n_edges);
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    groups_[gi].pair_j.clear();
    groups_[gi].pair_g.clear();
    groups_[gi].pair_j.reserve(per_group[gi]);
    groups_[gi].pair_g.reserve(per_group[gi]);
  }

  // Token gate caches: φ per (variant, j), ψ per (variant, p), n per (m, k).
  std::array<std::vector<std::uint32_t>, token_variant_count> phi_cache, psi_cache;
  std::vector<std::uint32_t> n_cache(T * n_out, unset);
  // Per-unit tokens made as blocks (the structured layout): token of φ variant v at unit j,
  // of normaliser (m, k); unset where the block holds none (interned by name then).
  std::array<std::vector<std::uint32_t>, token_variant_count> phi_block;
  std::vector<std::vector<std::uint32_t>> n_block;
  const std::size_t n_params = dense ? dense->weight.size() : conv ? conv->weight.size() : 0;
  auto phi_gate = [&](V v, std::size_t j) {
    auto& cache = phi_cache[static_cast<std::size_t>(v)];
    if (cache.empty()) cache.assign(n_in, unset);
    if (cache[j] == unset) {
      gate_id g;
      const auto& blk = phi_block[static_cast<std::size_t>(v)];
      if (!blk.empty() && blk[j] != unset) {
        g = c_.token(blk[j]);
      } else if (reads_x) {
        unravel(j, net_.input_shape, idx_);
        g = token_gate(K::input, v, 0, idx_, phi_value(v, j));
      } else {
        unravel(j, l.in_shape, idx_);
        g = token_gate(K::activation, v, layer_no - 1, idx_, phi_value(v, j));
      }
      cache[j] = to_index(g);
    }
    return static_cast<gate_id>(cache[j]);
  };
  auto psi_gate = [&](V v, std::size_t p, double w) {
    auto& cache = psi_cache[static_cast<std::size_t>(v)];
    if (cache.empty()) cache.assign(n_params, unset);
    if (cache[p] == unset) {
      unravel(p, wshape, idx_);
      cache[p] = to_index(token_gate(K::parameter, v, layer_no, idx_, psi_value(v, w)));
    }
    return static_cast<gate_id>(cache[p]);
  };
  auto n_gate = [&](std::size_t m, std::size_t k) {
    auto& slot = n_cache[m * n_out + k];
    if (slot == unset && m < n_block.size() && !n_block[m].empty() && n_block[m][k] != unset)
      slot = to_index(c_.token(n_block[m][k]));
    if (slot == unset) {
      unravel(k, l.out_shape, idx_);
      slot = to_index(token_gate(K::normaliser, V::plain, layer_no, idx_, coef[m][k], static_cast<std::uint32_t>(m)));
    }
    return static_cast<gate_id>(slot);
  };

  // Fused layout (circuits/fused.hpp): per lower unit j and term m one fused gate
  // φ_m(a_j) ⊗ ⊕_k ψ_m(w_jk) ⊗ S_k^m with the scale gates S_k^m = R_k ⊗ n_k^m per explanation;
  // the ψ come from token blocks laid out so that evaluation reads them sequentially.
  std::vector<std::vector<gate_id>> fused_r;
  if (fuse) {
    fused_r.assign(groups_.size(), std::vector<gate_id>(n_in, zero_gate));
    // Bucket the active edges by (j, m) (counted above), keeping traversal order (k ascending
    // for dense). Uninitialised buffers: every slot is written below, and zeroing fresh pages
    // was a tenth of the build.
    if (!e_k) {  // (bucket_dense_edges did all of this for a dense stage)
      const std::size_t B = n_in * T;
      for (std::size_t b = 0; b < B; ++b) start[b + 1] += start[b];
      if (!c_.fits_memory(8 * n_edges))
        throw limit_error(fmt::format("circuit: bucketing the {} active edges of stage {} needs {} bytes, which would "
                                      "take the arena above the memory limit max_memory = {} bytes",
                                      n_edges, layer_no, 8 * n_edges, opt_.max_memory));
      e_k.reset(new std::uint32_t[n_edges]);
      e_p.reset(new std::uint32_t[n_edges]);
      std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
      if (recorded) {
        // A stable counting sort of the recorded edges: the same order as the traversal below.
        for (const auto& rec : active_) {
          const auto at = fill[rec.bucket]++;
          e_k[at] = rec.k;
          e_p[at] = rec.p;
        }
      } else if (n_edges && conv) {
        // The counting pass's visit again, from the units some explanation needs (a full
        // traversal of the stage took half of vgg-small's build); within a bucket its order
        // is stage_edges' (see conv_active_edges), as the recorded edges' is.
        conv_active_edges([&](std::size_t k, std::size_t j, std::size_t p, std::size_t m) {
          const auto at = fill[j * T + m]++;
          e_k[at] = static_cast<std::uint32_t>(k);
          e_p[at] = static_cast<std::uint32_t>(p);
        });
      } else if (n_edges) {
        stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t p, double w) {
          if (!need[k]) return;
          for (std::size_t m = 0; m < T; ++m) {
            if (!term_active(m, k, j, w)) continue;
            const auto at = fill[j * T + m]++;
            e_k[at] = static_cast<std::uint32_t>(k);
            e_p[at] = static_cast<std::uint32_t>(p);
          }
        });
      }
    }
    // Scale gates per (explanation, term, unit), made on first use.
    std::vector<std::vector<std::uint32_t>> scale_cache(groups_.size());
    for (auto& sc : scale_cache) sc.assign(T * n_out, unset);
    auto scale_gate = [&](std::size_t gi, std::size_t m, std::size_t k) {
      auto& slot = scale_cache[gi][m * n_out + k];
      if (slot == unset) slot = to_index(c_.scale(groups_[gi].r[k], n_gate(m, k), static_cast<std::uint32_t>(k)));
      return static_cast<gate_id>(slot);
    };
    // ψ tokens: one block per parameter variant, no per-token coordinates or hashing. It
    // holds the parameters some active edge uses — a sparse block (12 bytes per token) when
    // they are under 3/4 of the tensor, else every parameter (8 bytes each). A dense layer's
    // block is stored j-major (axis order (in, out)), so the edges of one fused gate (fixed j,
    // k ascending) read adjacent values; a convolution's input-channel-major (see offset_of).
    const std::vector<double>& weights = dense ? dense->weight : conv->weight;
    // A convolution's block is stored input-channel-major (axis order (in, out, kh, kw)): the
    // ψ of one fused gate (one input channel, every output channel) then lie within
    // out_channels × kernel tokens, which the circuit keeps as 16-bit offsets.
    const std::size_t taps = conv ? conv->kernel_h * conv->kernel_w : 1;
    const std::size_t icg = conv ? conv->in_channels / conv->group : 1;
    auto offset_of = [&](std::size_t p) -> std::uint32_t {
      if (dense) return static_cast<std::uint32_t>((p % dense->in) * dense->out + p / dense->in);
      const std::size_t tap = p % taps, co = p / taps / icg, icl = p / taps % icg;
      return static_cast<std::uint32_t>((icl * conv->out_channels + co) * taps + tap);
    };
    // Per variant: the token of each edge's e_p (a parameter, or after bucket_dense_edges a
    // storage offset), as a map, or as psi_base + e_p when the block is dense and e_p are
    // storage offsets.
    std::array<std::unique_ptr<std::uint32_t[]>, token_variant_count> psi_tok;
    std::array<token_index, token_variant_count> psi_base{};
    bool by_edge = false;  // a one-term rule's sparse block after bucket_dense_edges: token x is psi_base + x
    std::array<bool, token_variant_count> psi_done{};
    for (std::size_t m = 0; m < T; ++m) {
      const V v = rt.terms[m].psi;
      const auto vi = static_cast<std::size_t>(v);
      if (psi_done[vi]) continue;
      psi_done[vi] = true;
      // A sparse block's parameters in storage order: their parameter indices (order_p),
      // storage offsets (order_s) and, when each came from one edge, that edge (order_x).
      std::vector<std::uint32_t> order_p, order_s, order_x;
      std::size_t n_used = 0;
      bool sparse = true, from_edges = false;
      if (dense_direct && T == 1) {
        // One term: every edge uses its own parameter, and the buckets are the block's
        // storage order (j ascending, then k): their offsets j·out + k are its present ones,
        // e_w their ψ values.
        n_used = n_edges;
        sparse = 4 * n_used < 3 * n_params;
        by_edge = sparse;
        from_edges = true;
        if (!sparse)  // edge_token reads e_p: write the full buckets' (bucket_dense_edges did not)
          for (std::size_t j = 0; j < n_in; ++j)
            if (bucket_is_full(j, 0))
              for (std::uint32_t x = start[j], q = 0; x < start[j + 1]; ++x, ++q)
                e_p[x] = static_cast<std::uint32_t>(j * n_out + dense_reach[0][q]);
      } else if (dense_direct) {
        // Straight from the buckets, whose e_p are storage offsets, ascending in each bucket:
        // per j the union of the buckets of the terms with variant v. (With today's rules a j
        // has at most one such bucket that is not empty: the terms sharing a ψ variant, αβ's
        // and γ's, have φ = a⁺ and a⁻, never both nonzero. The union keeps any rule table right.)
        from_edges = true;
        std::vector<std::uint32_t> merged;
        for (std::size_t j = 0; j < n_in; ++j) {
          const std::size_t before = order_s.size();
          for (std::size_t m2 = m; m2 < T; ++m2) {
            if (rt.terms[m2].psi != v) continue;
            const std::uint32_t b = start[j * T + m2], e = start[j * T + m2 + 1];
            if (order_s.size() == before) {
              order_s.insert(order_s.end(), e_p.get() + b, e_p.get() + e);
              if (from_edges)
                for (std::uint32_t x = b; x < e; ++x) order_x.push_back(x);
            } else if (b != e) {
              from_edges = false;
              merged.clear();
              std::set_union(order_s.begin() + static_cast<std::ptrdiff_t>(before), order_s.end(), e_p.get() + b,
                             e_p.get() + e, std::back_inserter(merged));
              order_s.resize(before);
              order_s.insert(order_s.end(), merged.begin(), merged.end());
            }
          }
          if (!from_edges)
            for (std::size_t x = order_p.size(); x < order_s.size(); ++x) {
              const std::size_t so = order_s[x];  // j·out + k ↦ k·in + j
              order_p.push_back(static_cast<std::uint32_t>((so / dense->out) + (so % dense->out) * dense->in));
            }
        }
        n_used = order_s.size();
        sparse = 4 * n_used < 3 * n_params;
      } else {
        std::vector<std::uint8_t> used(n_params, 0);
        for (std::size_t m2 = m; m2 < T; ++m2) {
          if (rt.terms[m2].psi != v) continue;
          for (std::size_t j = 0; j < n_in; ++j)
            for (std::uint32_t x = start[j * T + m2]; x < start[j * T + m2 + 1]; ++x)
              if (!used[e_p[x]]) used[e_p[x]] = 1, ++n_used;
        }
        sparse = 4 * n_used < 3 * n_params;
        if (sparse && dense) {
          for (std::size_t j = 0, so = 0; j < dense->in; ++j)
            for (std::size_t k = 0; k < dense->out; ++k, ++so) {
              const std::size_t p = k * dense->in + j;
              if (!used[p]) continue;
              order_p.push_back(static_cast<std::uint32_t>(p));
              order_s.push_back(static_cast<std::uint32_t>(so));
            }
        } else if (sparse) {
          for (std::size_t icl = 0; icl < icg; ++icl)  // storage order (see offset_of)
            for (std::size_t co = 0; co < conv->out_channels; ++co)
              for (std::size_t tap = 0; tap < taps; ++tap) {
                const std::size_t p = (co * icg + icl) * taps + tap;
                if (!used[p]) continue;
                order_p.push_back(static_cast<std::uint32_t>(p));
                order_s.push_back(offset_of(p));
              }
        }
      }
      if (n_used == 0) continue;
      const std::size_t count = !sparse ? n_params : by_edge ? n_edges : order_s.size();
      // (Values and present offsets, as before; the builder's transient maps are not counted.
      // by_edge: the values are in the table's room, counted already; the presence is a
      // bitmap or a list, whichever is smaller.)
      const std::size_t block_bytes =
          by_edge ? std::min<std::size_t>(12 * ((n_in * n_out + 63) / 64), 4 * count)
                  : 8 * count + (sparse ? 4 * count : 0);
      if (!c_.fits_memory(block_bytes))
        throw limit_error(fmt::format("circuit: the {} parameter tokens of stage {} would take the arena above the "
                                      "memory limit max_memory = {} bytes",
                                      count, layer_no, opt_.max_memory));
      std::vector<std::uint32_t> shp(wshape.begin(), wshape.end());
      const std::uint8_t j_major[] = {1, 0};
      if (by_edge) {
        // The present offsets as a bitmap over (in, out): a full bucket's row is the bits of
        // its reach shifted to j·out, set a word at a time; the others' bits one per edge.
        const std::size_t universe = n_in * n_out, words = (universe + 63) / 64;
        const std::vector<std::uint32_t>& reach = dense_reach[0];
        std::vector<std::uint64_t> bits(words, 0), row((n_out + 63) / 64 + 1, 0);
        for (const std::uint32_t k : reach) row[k / 64] |= std::uint64_t{1} << (k % 64);
        for (std::size_t j = 0; j < n_in; ++j) {
          const std::uint32_t b = start[j], e = start[j + 1];
          if (b == e) continue;
          if (bucket_is_full(j, 0)) {
            // Word i of the row lands in words w0 + i (shifted up) and w0 + i + 1 (its top bits,
            // carried in a register: an OR into the next word in memory chained each word's
            // store to the next one's load). Every word written holds a bit of the row's
            // span j·out … j·out + out − 1, so all lie below `words`.
            const std::size_t base = j * n_out, w0 = base / 64, sh = base % 64, nw = row.size() - 1;
            std::uint64_t carry = 0;
            for (std::size_t wi = 0; wi < nw; ++wi) {
              bits[w0 + wi] |= (row[wi] << sh) | carry;
              carry = sh ? row[wi] >> (64 - sh) : 0;
            }
            if (carry) bits[w0 + nw] |= carry;
          } else {
            for (std::uint32_t x = b; x < e; ++x) bits[e_p[x] / 64] |= std::uint64_t{1} << (e_p[x] % 64);
          }
        }
        psi_base[vi] = c_.tokens().add_block_bits(K::parameter, v, layer_no, shp, j_major, 0, bits,
                                                  std::span<const double>(e_w, n_edges));
        continue;
      }
      // The values in token order (storage order). (by_edge: e_w holds them, in the table's room.)
      const std::unique_ptr<double[]> vals(new double[count]);
      if (sparse && from_edges) {
        for (std::size_t q = 0; q < count; ++q) vals[q] = psi_value(v, e_w[order_x[q]]);
      } else if (sparse) {
        for (std::size_t q = 0; q < count; ++q) vals[q] = psi_value(v, weights[order_p[q]]);
      } else if (dense) {
        // The j-major transpose of the k-major weights, in tiles of 32 j: the rows a tile
        // reads and the columns it writes stay cached.
        const std::size_t in = dense->in, out = dense->out;
        for (std::size_t j0 = 0; j0 < in; j0 += 32)
          for (std::size_t k = 0; k < out; ++k)
            for (std::size_t j = j0; j < std::min(in, j0 + 32); ++j) vals[j * out + k] = psi_value(v, weights[k * in + j]);
      } else {
        std::size_t q = 0;
        for (std::size_t icl = 0; icl < icg; ++icl)  // storage order (see offset_of)
          for (std::size_t co = 0; co < conv->out_channels; ++co)
            for (std::size_t tap = 0; tap < taps; ++tap) vals[q++] = psi_value(v, weights[(co * icg + icl) * taps + tap]);
      }
      const std::uint8_t in_channel_major[] = {1, 0, 2, 3};
      const token_index first =
          c_.tokens().add_block(K::parameter, v, layer_no, shp,
                                dense ? std::span<const std::uint8_t>(j_major)
                                      : std::span<const std::uint8_t>(in_channel_major),
                                0,
                                !sparse ? std::span<const std::uint32_t>() : std::span<const std::uint32_t>(order_s),
                                std::span<const double>(vals.get(), count));
      if (!sparse && dense_direct) {
        psi_base[vi] = first;  // every storage offset holds its token
        continue;
      }
      // Uninitialised: only the entries of active edges are read.
      auto& tok = psi_tok[vi];
      tok.reset(new std::uint32_t[n_params]);
      if (sparse) {
        for (std::size_t q = 0; q < count; ++q)
          tok[dense_direct ? order_s[q] : order_p[q]] = static_cast<token_index>(first + q);
      } else if (dense) {
        for (std::size_t k = 0, p = 0; k < dense->out; ++k)
          for (std::size_t j = 0; j < dense->in; ++j, ++p)
            tok[p] = static_cast<token_index>(first + j * dense->out + k);
      } else {
        for (std::size_t p = 0; p < n_params; ++p) tok[p] = static_cast<token_index>(first + offset_of(p));
      }
    }
    // The room value_room() took beyond the block (all of it when the block was not sparse)
    // goes back, down to the capacity before it and room for the stage's single tokens: it
    // would count against the budget of every later stage.
    if (values_cap)
      c_.tokens().shrink_values_to(std::max(values_cap, c_.tokens().size() + (n_in + n_out) + 16));
    // The token of edge x.
    auto edge_token = [&](V v, std::uint32_t x) -> token_index {
      const auto vi = static_cast<std::size_t>(v);
      if (by_edge) return static_cast<token_index>(psi_base[vi] + x);
      return psi_tok[vi] ? psi_tok[vi][e_p[x]] : static_cast<token_index>(psi_base[vi] + e_p[x]);
    };
    // The stage's φ tokens as one block per variant, made at once in unit order, as the
    // structured layout makes them: the lower units with an edge for some term of that variant
    // (each gets its φ gate below), with their values. Interning ~1 000 of them one by one by
    // name — hash, probe, search the blocks, insert — was a sixth of an MLP's build. (Not the
    // normalisers: which of them a scale gate needs shows only per edge.)
    {
      std::vector<std::uint32_t> held;
      std::vector<double> vals;
      for (std::size_t m = 0; m < T; ++m) {
        const V v = rt.terms[m].phi;
        const auto vi = static_cast<std::size_t>(v);
        if (!phi_block[vi].empty()) continue;
        held.clear(), vals.clear();
        for (std::size_t j = 0; j < n_in; ++j) {
          bool used = false;
          for (std::size_t t = m; t < T && !used; ++t)
            used = rt.terms[t].phi == v && start[j * T + t + 1] != start[j * T + t];
          if (used) held.push_back(static_cast<std::uint32_t>(j)), vals.push_back(phi_value(v, j));
        }
        if (held.empty()) continue;
        const shape_t& shape = reads_x ? net_.input_shape : l.in_shape;
        const std::vector<std::uint32_t> shp(shape.begin(), shape.end());
        const bool all = held.size() == n_in;  // a dense block: no presence to keep
        const token_index first = c_.tokens().add_block(
            reads_x ? K::input : K::activation, v, reads_x ? 0 : layer_no - 1, shp, {}, 0,
            all ? std::span<const std::uint32_t>() : std::span<const std::uint32_t>(held), vals);
        phi_block[vi].assign(n_in, unset);
        for (std::size_t x = 0; x < held.size(); ++x) phi_block[vi][held[x]] = first + static_cast<token_index>(x);
      }
    }
    std::vector<token_index> params;
    std::vector<gate_id> scaled;
    std::vector<std::vector<gate_id>> per_j(groups_.size());
    // A full bucket of a dense stage — every upper unit term m reaches, as on a layer without
    // zero weights — has the same scaled children at every j, and with one term (by_edge) its
    // parameters are the run psi_base + b …: its gate reuses the list the first full bucket
    // made (per explanation and term), with no per-edge look-ups. The same gates, in the
    // same order: the list is taken only once its scale gates exist.
    std::vector<std::vector<gate_id>> full_scaled(by_edge ? groups_.size() * T : 0);
    for (std::size_t j = 0; j < n_in; ++j) {
      for (auto& v : per_j) v.clear();
      for (std::size_t m = 0; m < T; ++m) {
        const std::uint32_t b = start[j * T + m], e = start[j * T + m + 1];
        if (b == e) continue;
        const auto& ts = rt.terms[m];
        const gate_id ph = phi_gate(ts.phi, j);
        edges_ += e - b;
        const bool full = by_edge && e - b == dense_reach[m].size();
        const std::uint32_t* full_k = bucket_is_full(j, m) ? dense_reach[m].data() : nullptr;
        fused_context ctx;
        ctx.layer = layer_no;
        ctx.lower = static_cast<std::uint32_t>(j);
        ctx.term = static_cast<std::uint32_t>(m);
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
          if (full && full_scaled[gi * T + m].size() == e - b) {
            per_j[gi].push_back(c_.fused_run(ph, edge_token(ts.psi, b), full_scaled[gi * T + m], ctx));
            continue;
          }
          if (params.size() < e - b) params.resize(e - b), scaled.resize(e - b);
          const std::vector<gate_id>& rg = groups_[gi].r;
          std::size_t n = 0;
          for (std::uint32_t x = b; x < e; ++x) {
            const std::uint32_t k = full_k ? full_k[x - b] : e_k[x];
            if (rg[k] == zero_gate) continue;
            params[n] = edge_token(ts.psi, x);
            scaled[n++] = scale_gate(gi, m, k);
          }
          if (n == 0) continue;
          if (full && full_scaled[gi * T + m].empty()) full_scaled[gi * T + m].assign(scaled.begin(), scaled.begin() + n);
          per_j[gi].push_back(c_.fused(ph, std::span<const token_index>(params.data(), n),
                                       std::span<const gate_id>(scaled.data(), n), ctx));
        }
      }
      for (std::size_t gi = 0; gi < groups_.size(); ++gi)
        if (!per_j[gi].empty()) fused_r[gi][j] = c_.plus(per_j[gi]);
    }
  }

  // Structured layout (DESIGN §5): per explanation and term a conv_stage — the scale gates
  // S_k^m = R_k ⊗ n_k^m of the units with R_k and c_mk ≠ 0, by k, and which weights have a
  // nonzero ψ_m — and per lower unit j with at least one edge the structured gate
  // φ_m(a_j) ⊗ ⊕ ψ ⊗ S over the edges those tables imply: exactly the fused layout's edges,
  // in its order, with nothing stored per edge.
  if (structure && needing) {
    fused_r.assign(groups_.size(), std::vector<gate_id>(n_in, zero_gate));
    conv_geometry geo;
    geo.in_channels = static_cast<std::uint32_t>(l.in_shape[0]);
    geo.in_h = static_cast<std::uint32_t>(l.in_shape[1]);
    geo.in_w = static_cast<std::uint32_t>(l.in_shape[2]);
    geo.out_channels = static_cast<std::uint32_t>(l.out_shape[0]);
    geo.out_h = static_cast<std::uint32_t>(l.out_shape[1]);
    geo.out_w = static_cast<std::uint32_t>(l.out_shape[2]);
    geo.kernel_h = static_cast<std::uint32_t>(conv->kernel_h);
    geo.kernel_w = static_cast<std::uint32_t>(conv->kernel_w);
    geo.stride_h = static_cast<std::uint32_t>(conv->stride_h);
    geo.stride_w = static_cast<std::uint32_t>(conv->stride_w);
    geo.pad_top = static_cast<std::uint32_t>(conv->pad_top);
    geo.pad_left = static_cast<std::uint32_t>(conv->pad_left);
    geo.dilation_h = static_cast<std::uint32_t>(conv->dilation_h);
    geo.dilation_w = static_cast<std::uint32_t>(conv->dilation_w);
    geo.group = static_cast<std::uint32_t>(conv->group);
    const std::size_t n_w = conv->weight.size();
    // ψ tokens: one dense block per parameter variant in the tensor's own layout (the token of
    // weight p is first + p), and which of them are nonzero.
    std::array<token_index, token_variant_count> psi_first;
    psi_first.fill(no_token);
    std::array<std::vector<std::uint8_t>, token_variant_count> present;
    for (std::size_t m = 0; m < T; ++m) {
      const V v = rt.terms[m].psi;
      const auto vi = static_cast<std::size_t>(v);
      if (psi_first[vi] != no_token) continue;
      if (!c_.fits_memory(9 * n_w))
        throw limit_error(fmt::format("circuit: the {} parameter tokens of stage {} would take the arena above the "
                                      "memory limit max_memory = {} bytes",
                                      n_w, layer_no, opt_.max_memory));
      std::vector<double> vals(n_w);
      present[vi].resize(n_w);
      for (std::size_t p = 0; p < n_w; ++p) {
        vals[p] = psi_value(v, conv->weight[p]);
        present[vi][p] = vals[p] != 0;
      }
      const std::vector<std::uint32_t> shp(wshape.begin(), wshape.end());
      const std::uint8_t natural[] = {0, 1, 2, 3};
      psi_first[vi] = c_.tokens().add_block(K::parameter, v, layer_no, shp, natural, 0, {}, vals);
    }
    // The first explanation needing each unit: an edge is counted once, as in the fused layout.
    std::vector<std::uint32_t> first_group(n_out, unset);
    for (std::size_t gi = groups_.size(); gi-- > 0;)
      for (std::size_t k = 0; k < n_out; ++k)
        if (groups_[gi].r[k] != zero_gate) first_group[k] = static_cast<std::uint32_t>(gi);
    const std::size_t H = geo.in_h, W = geo.in_w, OH = geo.out_h, OW = geo.out_w, kh = geo.kernel_h, kw = geo.kernel_w;
    const std::size_t icg = geo.in_channels / geo.group, ocg = geo.out_channels / geo.group;
    const std::size_t n_groups = geo.group, plane_in = H * W, plane_out = OH * OW, taps = icg * kh * kw;
    // full[vi][oc]: whether every weight of output channel oc has a nonzero ψ. Such a channel's
    // edges depend on the ψ only through φ: unit k = (oc, u) has one edge per kernel tap over a
    // lower unit with φ ≠ 0, n_k = win[grp·OH·OW + u] below, and reaches every such lower unit
    // under its window. Only the other channels are visited edge by edge.
    std::array<std::vector<std::uint8_t>, token_variant_count> full;
    for (std::size_t m = 0; m < T; ++m) {
      const auto vi = static_cast<std::size_t>(rt.terms[m].psi);
      if (!full[vi].empty()) continue;
      full[vi].resize(geo.out_channels);
      for (std::size_t oc = 0; oc < geo.out_channels; ++oc) {
        const std::uint8_t* pr = present[vi].data() + oc * taps;
        full[vi][oc] = std::find(pr, pr + taps, std::uint8_t{0}) == pr + taps;
      }
    }
    // The kernel taps over the input plane of output position u: rows iy of taps ky in
    // [ky_lo, ky_hi), columns likewise (those inside the input; the rest are padding).
    auto tap_range = [](std::size_t o, std::size_t stride, std::size_t dil, std::size_t pad, std::size_t k,
                        std::size_t n) {
      std::size_t lo = 0, hi = k;
      const std::ptrdiff_t base = static_cast<std::ptrdiff_t>(o * stride) - static_cast<std::ptrdiff_t>(pad);
      while (lo < hi && base + static_cast<std::ptrdiff_t>(lo * dil) < 0) ++lo;
      while (hi > lo && base + static_cast<std::ptrdiff_t>((hi - 1) * dil) >= static_cast<std::ptrdiff_t>(n)) --hi;
      return std::pair<std::size_t, std::ptrdiff_t>{(hi - lo) << 8 | lo, base};
    };
    std::vector<std::uint32_t> ty(OH), tx(OW);  // (count << 8 | first tap), kernels ≤ 255 taps a side
    std::vector<std::ptrdiff_t> by(OH), bx(OW);
    const bool small_kernel = kh < 256 && kw < 256;
    if (small_kernel) {
      for (std::size_t oy = 0; oy < OH; ++oy) {
        auto [c, b] = tap_range(oy, geo.stride_h, geo.dilation_h, geo.pad_top, kh, H);
        ty[oy] = static_cast<std::uint32_t>(c), by[oy] = b;
      }
      for (std::size_t ox = 0; ox < OW; ++ox) {
        auto [c, b] = tap_range(ox, geo.stride_w, geo.dilation_w, geo.pad_left, kw, W);
        tx[ox] = static_cast<std::uint32_t>(c), bx[ox] = b;
      }
    }
    // Visit the input-plane offsets under output position u's window.
    auto window = [&](std::size_t u, auto&& f) {
      const std::size_t oy = u / OW, ox = u % OW;
      const std::size_t ly = ty[oy] & 255, ny = ty[oy] >> 8, lx = tx[ox] & 255, nx = tx[ox] >> 8;
      for (std::size_t ky = ly; ky < ly + ny; ++ky) {
        const std::size_t row = static_cast<std::size_t>(by[oy] + static_cast<std::ptrdiff_t>(ky * geo.dilation_h)) * W;
        for (std::size_t kx = lx; kx < lx + nx; ++kx)
          f(ky * kw + kx, row + static_cast<std::size_t>(bx[ox] + static_cast<std::ptrdiff_t>(kx * geo.dilation_w)));
      }
    };
    // win[m][grp·OH·OW + u]: the lower units with φ_m ≠ 0 under position u's window over
    // group grp's input channels (the edge count of a full channel's unit there).
    std::vector<std::vector<std::uint32_t>> win(T);
    if (small_kernel) {
      std::vector<std::uint32_t> csum(plane_in);
      for (std::size_t m = 0; m < T; ++m) {
        win[m].assign(n_groups * plane_out, 0);
        const std::uint8_t* pz = phi_nz.data() + m * n_in;
        for (std::size_t grp = 0; grp < n_groups; ++grp) {
          std::fill(csum.begin(), csum.end(), 0);
          for (std::size_t icl = 0; icl < icg; ++icl) {
            const std::uint8_t* row = pz + (grp * icg + icl) * plane_in;
            for (std::size_t q = 0; q < plane_in; ++q) csum[q] += row[q];
          }
          std::uint32_t* w = win[m].data() + grp * plane_out;
          for (std::size_t u = 0; u < plane_out; ++u) window(u, [&](std::size_t, std::size_t q) { w[u] += csum[q]; });
        }
      }
    }
    // stage_no[gi·T + m]: the conv stage of explanation gi and term m (unset: no edge);
    // has_edge[(gi·T + m)·n_in + j]: whether lower unit j has an edge there.
    std::vector<std::uint32_t> stage_no(groups_.size() * T, unset);
    std::vector<std::uint8_t> has_edge(groups_.size() * T * n_in, 0);
    std::vector<std::uint8_t> reach(plane_in), live(plane_out);
    // cnt[(gi·T + m)·n_out + k]: the edges of unit k's scale gate there (0: none, not made).
    std::vector<std::uint32_t> cnt(groups_.size() * T * n_out, 0);
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t m = 0; m < T; ++m) {
        const auto vi = static_cast<std::size_t>(rt.terms[m].psi);
        const std::uint8_t* pz = phi_nz.data() + m * n_in;
        const std::uint8_t* pr = present[vi].data();
        std::uint8_t* mark = has_edge.data() + (gi * T + m) * n_in;
        std::uint32_t* nk = cnt.data() + (gi * T + m) * n_out;
        const std::vector<gate_id>& rg = groups_[gi].r;
        for (std::size_t grp = 0; grp < n_groups; ++grp) {
          // live[u]: some full channel of the group has a unit at u with R_k and c_mk ≠ 0.
          std::fill(live.begin(), live.end(), 0);
          bool any_live = false;
          for (std::size_t oc = grp * ocg; oc < (grp + 1) * ocg; ++oc) {
            const bool whole = small_kernel && full[vi][oc];
            for (std::size_t u = 0; u < plane_out; ++u) {
              const std::size_t k = oc * plane_out + u;
              if (rg[k] == zero_gate || coef[m][k] == 0) continue;
              std::size_t n = 0;
              if (whole) {
                n = win[m][grp * plane_out + u];
                if (n) live[u] = 1, any_live = true;
              } else {
                // A channel with absent weights: its edges one by one.
                const std::size_t oy = u / OW, ox = u % OW;
                for (std::size_t icl = 0; icl < icg; ++icl) {
                  const std::size_t ci = grp * icg + icl, wbase = (oc * icg + icl) * kh * kw;
                  for (std::size_t ky = 0; ky < kh; ++ky) {
                    const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * geo.stride_h + ky * geo.dilation_h) -
                                              static_cast<std::ptrdiff_t>(geo.pad_top);
                    if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(H)) continue;
                    const std::size_t row = (ci * H + static_cast<std::size_t>(iy)) * W;
                    for (std::size_t kx = 0; kx < kw; ++kx) {
                      const std::ptrdiff_t ix = static_cast<std::ptrdiff_t>(ox * geo.stride_w + kx * geo.dilation_w) -
                                                static_cast<std::ptrdiff_t>(geo.pad_left);
                      if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(W)) continue;
                      const std::size_t j = row + static_cast<std::size_t>(ix);
                      if (pz[j] && pr[wbase + ky * kw + kx]) mark[j] = 1, ++n;
                    }
                  }
                }
              }
              nk[k] = static_cast<std::uint32_t>(n);
            }
          }
          if (!any_live) continue;
          // The full channels' lower units: φ ≠ 0 under the window of a live position.
          std::fill(reach.begin(), reach.end(), 0);
          for (std::size_t u = 0; u < plane_out; ++u)
            if (live[u]) window(u, [&](std::size_t, std::size_t q) { reach[q] = 1; });
          for (std::size_t icl = 0; icl < icg; ++icl) {
            const std::size_t base = (grp * icg + icl) * plane_in;
            for (std::size_t q = 0; q < plane_in; ++q) mark[base + q] |= static_cast<std::uint8_t>(reach[q] & pz[base + q]);
          }
        }
      }
    // The stage's per-unit tokens as sparse blocks, made at once and in unit order rather than
    // interned one by one by name: per φ variant the lower units some structured gate reads,
    // per term the normalisers of the scale gates made. The same tokens, names and values.
    {
      std::vector<std::uint32_t> held;
      std::vector<double> vals;
      auto block = [&](K kind, V v, std::uint32_t layer, const shape_t& shape, std::uint32_t term,
                       std::vector<std::uint32_t>& tok) {
        const std::vector<std::uint32_t> shp(shape.begin(), shape.end());
        const token_index first = c_.tokens().add_block(kind, v, layer, shp, {}, term, held, vals);
        tok.assign(element_count(shape), unset);
        for (std::size_t x = 0; x < held.size(); ++x) tok[held[x]] = first + static_cast<token_index>(x);
      };
      for (std::size_t m = 0; m < T; ++m) {
        const auto vi = static_cast<std::size_t>(rt.terms[m].phi);
        if (!phi_block[vi].empty()) continue;
        held.clear(), vals.clear();
        for (std::size_t j = 0; j < n_in; ++j) {
          bool used = false;
          for (std::size_t gi = 0; gi < groups_.size() && !used; ++gi)
            for (std::size_t t = 0; t < T && !used; ++t)
              used = rt.terms[t].phi == rt.terms[m].phi && has_edge[(gi * T + t) * n_in + j];
          if (used) held.push_back(static_cast<std::uint32_t>(j)), vals.push_back(phi_value(rt.terms[m].phi, j));
        }
        if (!held.empty())
          block(reads_x ? K::input : K::activation, rt.terms[m].phi, reads_x ? 0 : layer_no - 1,
                reads_x ? net_.input_shape : l.in_shape, 0, phi_block[vi]);
      }
      n_block.resize(T);
      for (std::size_t m = 0; m < T; ++m) {
        held.clear(), vals.clear();
        for (std::size_t k = 0; k < n_out; ++k) {
          bool used = false;
          for (std::size_t gi = 0; gi < groups_.size() && !used; ++gi) used = cnt[(gi * T + m) * n_out + k] != 0;
          if (used) held.push_back(static_cast<std::uint32_t>(k)), vals.push_back(coef[m][k]);
        }
        if (!held.empty()) block(K::normaliser, V::plain, layer_no, l.out_shape, static_cast<std::uint32_t>(m), n_block[m]);
      }
    }
    for (std::size_t gi = 0; gi < groups_.size(); ++gi)
      for (std::size_t m = 0; m < T; ++m) {
        const auto vi = static_cast<std::size_t>(rt.terms[m].psi);
        conv_stage st;
        st.layer = layer_no;
        st.term = static_cast<std::uint32_t>(m);
        st.geometry = geo;
        st.parameters = psi_first[vi];
        st.present = present[vi];
        st.scaled.assign(n_out, zero_gate);
        const std::uint8_t* mark = has_edge.data() + (gi * T + m) * n_in;
        const std::uint32_t* nk = cnt.data() + (gi * T + m) * n_out;
        std::size_t counted = 0;
        for (std::size_t k = 0; k < n_out; ++k) {
          if (nk[k] == 0) continue;  // no edge reaches this unit's scale gate: it is not made
          if (first_group[k] == gi) counted += nk[k];
          st.scaled[k] = c_.scale(groups_[gi].r[k], n_gate(m, k), static_cast<std::uint32_t>(k));
        }
        edges_ += counted;
        if (std::find(mark, mark + n_in, std::uint8_t{1}) != mark + n_in)
          stage_no[gi * T + m] = c_.add_conv_stage(std::move(st));
      }
    std::vector<std::vector<gate_id>> per_j(groups_.size());
    for (std::size_t j = 0; j < n_in; ++j) {
      for (auto& v : per_j) v.clear();
      for (std::size_t m = 0; m < T; ++m)
        for (std::size_t gi = 0; gi < groups_.size(); ++gi)
          if (has_edge[(gi * T + m) * n_in + j])
            per_j[gi].push_back(
                c_.structured(phi_gate(rt.terms[m].phi, j), stage_no[gi * T + m], static_cast<std::uint32_t>(j)));
      for (std::size_t gi = 0; gi < groups_.size(); ++gi)
        if (!per_j[gi].empty()) fused_r[gi][j] = c_.plus(per_j[gi]);
    }
  }

  // Edge gates E_jk^m, shared by every explanation, and the products E ⊗ R_k per explanation.
  if (n_edges && !fuse) {
    stage_edges(l, [&](std::size_t k, std::size_t j, std::size_t p, double w) {
      if (!need[k]) return;
      for (std::size_t m = 0; m < T; ++m) {
        if (!term_active(m, k, j, w)) continue;
        const auto& ts = rt.terms[m];
        edge_context ctx;
        ctx.layer = layer_no;
        ctx.lower = static_cast<std::uint32_t>(j);
        ctx.upper = static_cast<std::uint32_t>(k);
        ctx.term = static_cast<std::uint32_t>(m);
        gate_id e;
        const gate_id ph = phi_gate(ts.phi, j), nn = n_gate(m, k);
        if (ts.has_psi) {
          const gate_id ps = psi_gate(ts.psi, p, w);
          ctx.parameter = c_.token_of(ps);
          e = c_.edge({ph, ps, nn}, ctx);
        } else {
          e = c_.edge({ph, nn}, ctx);
        }
        ++edges_;
        for (auto& g : groups_) {
          if (g.r[k] == zero_gate) continue;
          g.pair_j.push_back(static_cast<std::uint32_t>(j));
          g.pair_g.push_back(c_.times({e, g.r[k]}));
        }
      }
    });
  }

  // Bias shares R(b_c) = ⊕_{k in channel c} ⊕_m ψ_m(b_c) ⊗ n_k^m ⊗ R_k, one root per bias.
  if (!rt.bias.empty() && bias_vec) {
    const std::size_t n_bias = n_out / plane;
    std::vector<gate_id> kids;
    for (auto& g : groups_) {
      for (std::size_t bc = 0; bc < n_bias; ++bc) {
        kids.clear();
        const double b = bias_vec->empty() ? 0.0 : (*bias_vec)[bc];
        for (const auto& bs : rt.bias) {
          const double bv = psi_value(bs.psi, b);
          if (bv == 0) continue;
          gate_id bg = zero_gate;  // the bias token's gate, interned once per channel (not per unit)
          for (std::size_t k = bc * plane; k < (bc + 1) * plane; ++k) {
            if (g.r[k] == zero_gate || coef[bs.term][k] == 0) continue;
            if (bg == zero_gate) {
              const std::uint32_t bi[] = {static_cast<std::uint32_t>(bc)};
              bg = token_gate(K::bias, bs.psi, layer_no, bi, bv);
            }
            kids.push_back(c_.times({bg, n_gate(bs.term, k), g.r[k]}));
          }
        }
        // R(b<stage>[<channel>]suffix), by to_chars (fmt::format per bias unit was 6 % of an
        // MLP's build)
        std::string name = "R(b";
        append_number(name, s);
        name += '[';
        append_number(name, bc);
        name += ']';
        name += g.suffix;
        name += ')';
        bias_roots_.push_back({std::move(name), c_.plus(kids), root_kind::bias, layer_no,
                               static_cast<std::uint32_t>(bc), g.target});
      }
    }
  }

  if (fuse || structure) {
    if (fused_r.empty()) fused_r.assign(groups_.size(), std::vector<gate_id>(n_in, zero_gate));  // nothing needed
    for (std::size_t gi = 0; gi < groups_.size(); ++gi) groups_[gi].r = std::move(fused_r[gi]);
    stage_rules_.push_back(fmt::format("{}={}", s, to_string(r)));
    return;
  }

  // R_j = ⊕ of the products that reach j: bucket the pairs by j (counting sort, no per-unit
  // vectors), then one n-ary ⊕ per unit.
  start.assign(n_in + 1, 0);
  std::vector<gate_id> sorted;
  for (auto& g : groups_) {
    std::fill(start.begin(), start.end(), 0u);
    for (auto j : g.pair_j) ++start[j + 1];
    for (std::size_t j = 0; j < n_in; ++j) start[j + 1] += start[j];
    sorted.resize(g.pair_g.size());
    {
      std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
      for (std::size_t e = 0; e < g.pair_j.size(); ++e) sorted[fill[g.pair_j[e]]++] = g.pair_g[e];
    }
    std::vector<gate_id> r_in(n_in, zero_gate);
    for (std::size_t j = 0; j < n_in; ++j)
      if (start[j + 1] > start[j])
        r_in[j] = c_.plus(std::span<const gate_id>(sorted.data() + start[j], start[j + 1] - start[j]));
    g.r = std::move(r_in);
    g.pair_j = {};
    g.pair_g = {};
  }

  stage_rules_.push_back(pool ? fmt::format("{}=avgpool(epsilon:{})", s, opt_.pool_epsilon)
                              : fmt::format("{}={}", s, to_string(r)));
}

circuit builder::run(circuit_build_info* info) {
  check();
  make_groups();
  const std::size_t L = net_.layers.size();
  stage_of_ = stage_numbers(net_);
  for (std::size_t i = 0; i < L && !stage_of_[i]; ++i)
    if (!std::holds_alternative<reshape_op>(net_.layers[i].op)) first_reads_x_ = false;

  // Sharing finds nothing here: every edge gate is fresh, so every product and sum above it
  // is new. Hashing them would only cost time and memory.
  c_.set_sharing(false);
  const std::size_t n_out = fwd_.output().size();
  for (auto& g : groups_) {
    g.r.assign(n_out, zero_gate);
    for (auto [y, v] : g.start) {
      const std::uint32_t yi[] = {static_cast<std::uint32_t>(y)};
      // A zero initial relevance is the zero gate, like every other zero factor.
      g.r[y] = v == 0 ? zero_gate : token_gate(K::target, V::plain, 0, yi, v);
    }
  }

  std::vector<std::size_t> rule_of(L, 0);
  std::size_t lin = 0;
  for (std::size_t i = 0; i < L; ++i)
    if (net_.layers[i].is_linear()) rule_of[i] = lin++;
  const auto stages = static_cast<std::size_t>(
      std::count_if(stage_of_.begin(), stage_of_.end(), [](std::size_t s) { return s != 0; }));
  // The fused and structured layouts add their tokens in blocks, a few per stage, so the
  // token values grow by half again when a block does not fit; on vgg-small that copied the
  // table twice (13 MB) before it was trimmed. Room for what the stages can add at most is
  // taken once instead: each parameter per ψ variant, each lower unit per φ variant, each
  // upper unit per term. A hint: the reserved room counts against max_memory until the
  // trim, so it is taken only when it is at most a quarter of what the budget has left, and a
  // failed allocation is ignored (pages no token reaches are not touched; shrink_to_fit()
  // gives the rest back in place).
  if (opt_.layout != circuit_layout::plain) {
    std::size_t most = 0;
    for (std::size_t i = 0; i < L; ++i) {
      if (!stage_of_[i]) continue;
      const layer& l = net_.layers[i];
      std::size_t n_psi = 0, n_phi = 1, T = 1, n_bias_psi = 0;
      if (l.is_linear()) {
        const rule_terms rt = terms_of(opt_.layer_rules[rule_of[i]]);
        std::array<bool, token_variant_count> psi_seen{}, phi_seen{}, bias_seen{};
        auto first = [](std::array<bool, token_variant_count>& seen, V v) {
          return !std::exchange(seen[static_cast<std::size_t>(v)], true);
        };
        n_phi = 0;
        for (const auto& t : rt.terms) {
          n_psi += t.has_psi && first(psi_seen, t.psi);
          n_phi += first(phi_seen, t.phi);
        }
        for (const auto& b : rt.bias) n_bias_psi += first(bias_seen, b.psi);
        T = rt.terms.size();
      }
      std::size_t weights = 0, biases = 0;
      if (const auto* d = std::get_if<dense_op>(&l.op)) weights = d->weight.size(), biases = d->bias.size();
      if (const auto* cv = std::get_if<conv2d_op>(&l.op)) weights = cv->weight.size(), biases = cv->bias.size();
      most += n_psi * weights + n_bias_psi * biases + n_phi * fwd_.activations[i].size() +
              T * fwd_.activations[i + 1].size();
    }
    if (most <= SIZE_MAX / 64 && c_.fits_memory(32 * most)) try {
        c_.tokens().reserve_values(c_.tokens().size() + most);
      } catch (const std::bad_alloc&) {
        // only a hint: the blocks grow the table as before
      }
  }
  std::size_t stages_done = 0;
  for (std::size_t i = L; i-- > 0;) {
    const layer& l = net_.layers[i];
    try {
      if (stage_of_[i]) {
        if (opt_.progress) opt_.progress(stages_done, stages);
        ++stages_done;
        build_stage(i, stage_of_[i], l.is_linear() ? opt_.layer_rules[rule_of[i]] : rules::epsilon(opt_.pool_epsilon));
      } else if (const auto* p = std::get_if<pool_op>(&l.op); p && p->mode == pool_op::kind::max) {
        route_max_pool(i);
      }
      // ReLU, flatten, reshape: the same flat data, the same gates.
    } catch (const limit_error& e) {
      throw limit_error(fmt::format(
          "{}: building the circuit stopped at layer {} ('{}', stage {} of {} from the output down, {} edge gates "
          "so far): {}. Raise the limits with --max-gates N and --max-memory SIZE (e.g. 16G) on the command line, "
          "or circuit_options::max_gates / max_memory in the API; the defaults are {} gates and {} GiB",
          net_.source, i, l.name, stages_done, stages, edges_, e.what(), default_max_gates, default_max_memory >> 30));
    }
  }
  std::reverse(stage_rules_.begin(), stage_rules_.end());

  std::vector<std::uint32_t> idx;
  std::size_t n_roots = bias_roots_.size();
  for (const auto& g : groups_) n_roots += g.r.size();
  c_.reserve_roots(c_.roots().size() + n_roots);
  std::string name;
  for (const auto& g : groups_)
    for (std::size_t f = 0; f < g.r.size(); ++f) {
      unravel(f, net_.input_shape, idx);
      // R(x[i,j,…]suffix), written with to_chars: fmt::format with fmt::join, and hashing
      // the name twice in add_root, were a quarter of an MLP's build (784 roots).
      name.assign("R(x[");
      for (std::size_t d = 0; d < idx.size(); ++d) {
        if (d) name += ',';
        append_number(name, idx[d]);
      }
      name += ']';
      name += g.suffix;
      name += ')';
      c_.add_root({name, g.r[f], root_kind::feature, 0, static_cast<std::uint32_t>(f), g.target});
    }
  // Bias roots were collected from the top stage down; list them bottom-up.
  std::stable_sort(bias_roots_.begin(), bias_roots_.end(),
                   [](const root& x, const root& y) { return x.layer < y.layer; });
  for (auto& r : bias_roots_) c_.add_root(std::move(r));
  c_.set_sharing(true);

  std::vector<std::size_t> targets;
  std::vector<double> scores;
  for (const auto& g : groups_) {
    if (g.target != no_target) targets.push_back(g.target);
    double sc = 0;
    for (auto [y, v] : g.start) sc += v;
    scores.push_back(sc);
  }
  auto& md = c_.metadata();
  md["model"] = opt_.model.empty() ? net_.source : opt_.model;
  md["input"] = opt_.input;
  md["targets"] = targets.empty() ? std::string("initial relevance vector") : fmt::format("{}", fmt::join(targets, ","));
  md["scores"] = fmt::format("{}", fmt::join(scores, ","));
  md["rules"] = fmt::format("{}", fmt::join(stage_rules_, "; "));
  md["bias"] = keep_bias_ ? "kept" : "zeroed";
  if (opt_.layout == circuit_layout::fused) md["layout"] = "fused";
  if (opt_.layout == circuit_layout::structured) md["layout"] = "structured";
  md["builder"] = "provnn build_circuit (DESIGN §3)";
  if (info) {
    info->targets = std::move(targets);
    info->scores = std::move(scores);
    info->edges = edges_;
  }
  // The reserve() hints are upper bounds per stage (every unit may be active); give back what
  // they left unused (lenet5: 10 % of the arena, mostly its few single tokens' tables).
  c_.shrink_to_fit();
  return std::move(c_);
}

}  // namespace

std::vector<std::size_t> stage_numbers(const network& net) {
  std::vector<std::size_t> out(net.layers.size(), 0);
  std::size_t s = 0;
  for (std::size_t i = 0; i < net.layers.size(); ++i)
    if (is_stage(net.layers[i])) out[i] = ++s;
  return out;
}

circuit build_circuit(const network& net, const forward_result& fwd, const circuit_options& options,
                      circuit_build_info* info) {
  return builder(net, fwd, options).run(info);
}

}  // namespace provnn::engine
