#include "engine/lrp.hpp"

#include "engine/conv_gemm.hpp"
#include "engine/geometry.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>

#include "common/error.hpp"

namespace provnn::engine {

namespace {

// Branch-free (maxsd/minsd): weight signs are random, a branch would mispredict per edge.
inline double pos(double x) noexcept { return std::max(x, 0.0); }
inline double neg(double x) noexcept { return std::min(x, 0.0); }

/// stab(z) = z + ε·s(z), s(z) = +1 if z ≥ 0 else −1 (DESIGN §2; Zennit's stabilize).
inline double stab(double z, double eps) noexcept { return z >= 0 ? z + eps : z - eps; }

/// r / stab(d): the per-unit coefficient with R_k folded in. A unit without relevance, or
/// whose stabilised denominator is exactly 0 (only possible with ε = 0), passes nothing on.
inline double coef(double r, double d, double eps) noexcept {
  if (r == 0) return 0.0;
  const double s = stab(d, eps);
  return s == 0 ? 0.0 : r / s;
}

std::string shape_string(const shape_t& s) { return fmt::format("({})", fmt::join(s, ",")); }

template <std::size_t N>
using vals = std::array<double, N>;

// ---- edge geometry ----------------------------------------------------------------------
//
// A rule needs two sweeps over the edges j → k of a layer:
//   reduce:  d_m[k] += f(j, w)[m]                 (per-unit denominators)
//   scatter: acc_m[j] += f(w, (c_0[k], c_1[k], …))[m]   (R_j before the input modifier)
// Each geometry runs them in the order its memory wants: a dense layer row by row (a unit's
// weights are contiguous, so the reduction stays in registers and the scatter is a
// vectorisable axpy that skips units without relevance); a convolution per kernel tap.

struct dense_geom {
  const dense_op& op;
  std::size_t n_in() const noexcept { return op.in; }
  std::size_t n_out() const noexcept { return op.out; }
  double bias(std::size_t k) const noexcept { return op.bias.empty() ? 0.0 : op.bias[k]; }

  template <std::size_t M, class F>
  void reduce(std::array<double*, M> d, F&& f) const {
    const std::size_t in = op.in;
    const double* w = op.weight.data();
    // Four partial sums break the add latency chain of a single accumulator (about 3x).
    for (std::size_t k = 0; k < op.out; ++k, w += in) {
      std::array<vals<M>, 4> s{};
      std::size_t j = 0;
      for (; j + 4 <= in; j += 4)
        for (std::size_t u = 0; u < 4; ++u) {
          const vals<M> t = f(j + u, w[j + u]);
          for (std::size_t m = 0; m < M; ++m) s[u][m] += t[m];
        }
      for (; j < in; ++j) {
        const vals<M> t = f(j, w[j]);
        for (std::size_t m = 0; m < M; ++m) s[0][m] += t[m];
      }
      for (std::size_t m = 0; m < M; ++m) d[m][k] += (s[0][m] + s[1][m]) + (s[2][m] + s[3][m]);
    }
  }

  template <std::size_t NA, std::size_t NC, class F>
  void scatter(std::array<double*, NA> acc, std::array<const double*, NC> c, F&& f) const {
    const std::size_t in = op.in;
    for (std::size_t k = 0; k < op.out; ++k) {
      vals<NC> ck;
      bool any = false;
      for (std::size_t m = 0; m < NC; ++m) {
        ck[m] = c[m][k];
        any = any || ck[m] != 0;
      }
      if (!any) continue;  // inactive or irrelevant unit: its row contributes nothing
      const double* __restrict w = op.weight.data() + k * in;
      for (std::size_t j = 0; j < in; ++j) {
        const vals<NA> t = f(w[j], ck);
        for (std::size_t m = 0; m < NA; ++m) acc[m][j] += t[m];
      }
    }
  }

  // pos[k] += Σ_{w_jk ≥ 0} x_j·w_jk, neg[k] += Σ_{w_jk < 0} x_j·w_jk.
  void reduce_split(double* pos, double* neg, const double* x) const {
    reduce<2>({pos, neg}, [x](std::size_t j, double w) {
      const double t = x[j] * w;
      return w >= 0 ? vals<2>{t, 0.0} : vals<2>{0.0, t};
    });
  }
  // acc[j] += Σ_k w_jk · (w_jk ≥ 0 ? cp[k] : cn[k]).
  void scatter_split(double* acc, const double* cp, const double* cn) const {
    scatter<1, 2>({acc}, {cp, cn}, [](double w, const vals<2>& ck) { return vals<1>{w * (w >= 0 ? ck[0] : ck[1])}; });
  }
  // acc[j] += Σ_k w_jk · c[k].
  void scatter_plain(double* acc, const double* c) const {
    scatter<1, 1>({acc}, {c}, [](double w, const vals<1>& ck) { return vals<1>{w * ck[0]}; });
  }
};

struct conv_geom {
  const conv2d_op& op;
  std::size_t h, w, oh, ow;  // input and output planes

  conv_geom(const conv2d_op& c, const shape_t& in, const shape_t& out) : op(c) {
    PROVNN_ASSERT(in.size() == 3 && out.size() == 3);
    h = in[1];
    w = in[2];
    oh = out[1];
    ow = out[2];
  }
  std::size_t n_in() const noexcept { return op.in_channels * h * w; }
  std::size_t n_out() const noexcept { return op.out_channels * oh * ow; }
  double bias(std::size_t k) const noexcept { return op.bias.empty() ? 0.0 : op.bias[k / (oh * ow)]; }

  // f(k0, j0, n, w) for every run of edges sharing weight w (detail::conv_runs).
  template <class F>
  void runs(F&& f) const {
    detail::conv_runs(op, {op.in_channels, h, w}, {op.out_channels, oh, ow},
                      [&f](std::size_t k0, std::size_t j0, std::size_t n, std::size_t, double wv) { f(k0, j0, n, wv); });
  }

  template <std::size_t M, class F>
  void reduce(std::array<double*, M> d, F&& f) const {
    const std::size_t sw = op.stride_w;
    runs([&, d](std::size_t k0, std::size_t j0, std::size_t n, double wv) {
      std::array<double*, M> dk;
      for (std::size_t m = 0; m < M; ++m) dk[m] = d[m] + k0;
      for (std::size_t t = 0; t < n; ++t) {
        const vals<M> v = f(j0 + t * sw, wv);
        for (std::size_t m = 0; m < M; ++m) dk[m][t] += v[m];
      }
    });
  }

  template <std::size_t NA, std::size_t NC, class F>
  void scatter(std::array<double*, NA> acc, std::array<const double*, NC> c, F&& f) const {
    const std::size_t sw = op.stride_w;
    runs([&, acc, c](std::size_t k0, std::size_t j0, std::size_t n, double wv) {
      std::array<double*, NA> aj;
      std::array<const double*, NC> ck;
      for (std::size_t m = 0; m < NA; ++m) aj[m] = acc[m] + j0;
      for (std::size_t m = 0; m < NC; ++m) ck[m] = c[m] + k0;
      for (std::size_t t = 0; t < n; ++t) {
        vals<NC> cv;
        for (std::size_t m = 0; m < NC; ++m) cv[m] = ck[m][t];
        const vals<NA> v = f(wv, cv);
        for (std::size_t m = 0; m < NA; ++m) aj[m][t * sw] += v[m];
      }
    });
  }

  // The sweeps whose every edge has the same form run as matrix products (conv_gemm.hpp):
  // at 98 M multiply-adds (vgg-small) Eigen's GEMM is ≈ 2× the runs above.
  shape_t in_shape() const { return {op.in_channels, h, w}; }
  shape_t out_shape() const { return {op.out_channels, oh, ow}; }
  void reduce_split(double* pos, double* neg, const double* x) const {
    detail::conv_split_gemm(op, in_shape(), out_shape(), x, pos, neg);
  }
  void scatter_split(double* acc, const double* cp, const double* cn) const {
    detail::conv_split_transposed_gemm(op, in_shape(), out_shape(), cp, cn, acc);
  }
  void scatter_plain(double* acc, const double* c) const {
    detail::conv_transposed_gemm(op, in_shape(), out_shape(), c, acc);
  }
};

// ---- one linear layer under one rule ---------------------------------------------------

struct layer_io {
  const double* a;      // layer input (activations[i])
  const double* z;      // forward pre-activation (activations[i + 1])
  const double* r_out;  // R_k
  double* r_in;         // R_j, zero on entry
  double* r_bias;       // R(b_k), zero on entry
};

void check_bound(const zbox_bound& b, const char* which, std::size_t n_in, const layer& l, std::size_t lin) {
  if (!b.loaded())
    throw error(fmt::format("zbox bound {} '{}' of linear layer {} ('{}') is not loaded; resolve_bounds() reads it",
                            which, b.path, lin, l.name));
  if (!b.values.empty() && b.values.size() != n_in)
    throw error(fmt::format(
        "zbox bound {} '{}' has {} values but linear layer {} ('{}') has {} inputs of shape {}; give a scalar or "
        "one bound per input feature",
        which, b.path.empty() ? "<values>" : b.path, b.values.size(), lin, l.name, n_in, shape_string(l.in_shape)));
  for (std::size_t j = 0; j < b.values.size(); ++j)
    if (!std::isfinite(b.values[j]))
      throw error(fmt::format("zbox bound {} '{}' of linear layer {} ('{}') has a non-finite value at flat index {}",
                              which, b.path.empty() ? "<values>" : b.path, lin, l.name, j));
}

/// Work arrays reused across layers (and kept by lrp() for a whole pass), so a layer costs
/// no allocation once the largest layer has been seen.
struct scratch {
  std::array<std::vector<double>, 4> out;  // per output unit
  std::array<std::vector<double>, 3> in;   // per input unit
};

/// v resized to n and filled with `value`, keeping its capacity.
inline std::vector<double>& fill(std::vector<double>& v, std::size_t n, double value = 0.0) {
  v.assign(n, value);
  return v;
}

template <class Geom>
void linear_backward(const Geom& g, const rule& r, bool keep_bias, const layer_io& io, scratch& sc) {
  const std::size_t n_in = g.n_in(), n_out = g.n_out();
  const double eps = r.epsilon;
  const double* a = io.a;
  const double* R = io.r_out;
  double* out = io.r_in;
  double* rb = io.r_bias;
  auto bias = [&](std::size_t k) { return keep_bias ? g.bias(k) : 0.0; };

  switch (r.kind) {
    case rule_kind::zero:
    case rule_kind::epsilon: {
      // (a, w, 1/stab(z_k)); with biases kept z_k is the forward pre-activation itself.
      std::vector<double>& c = fill(sc.out[0], n_out);
      if (keep_bias) {
        for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], io.z[k], eps);
      } else {
        std::vector<double>& d = fill(sc.out[1], n_out);
        g.template reduce<1>({d.data()}, [a](std::size_t j, double w) { return vals<1>{a[j] * w}; });
        for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], d[k], eps);
      }
      g.scatter_plain(out, c.data());
      for (std::size_t j = 0; j < n_in; ++j) out[j] *= a[j];
      for (std::size_t k = 0; k < n_out; ++k) rb[k] = bias(k) * c[k];
      return;
    }
    case rule_kind::zplus:
    case rule_kind::alphabeta: {
      // Positive part (a⁺,w⁺),(a⁻,w⁻) over stab(z⁺), times α (z⁺ = α1β0: α = 1, no β part).
      const bool ab = r.kind == rule_kind::alphabeta;
      const double alpha = ab ? r.alpha : 1.0, beta = ab ? r.beta : 0.0;
      std::vector<double>& dp = fill(sc.out[0], n_out);
      std::vector<double>& dn = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        dp[k] = pos(bias(k));
        dn[k] = neg(bias(k));
      }
      // Of a⁺w⁺, a⁻w⁻, a⁺w⁻, a⁻w⁺ exactly one is a·w and the others are 0, and the first two
      // are ≥ 0, the last two ≤ 0: so a⁺w⁺ + a⁻w⁻ = (a·w)⁺ and a⁺w⁻ + a⁻w⁺ = (a·w)⁻, exactly.
      g.template reduce<2>({dp.data(), dn.data()}, [a](std::size_t j, double w) {
        const double t = a[j] * w;
        return vals<2>{pos(t), neg(t)};
      });
      std::vector<double>& cpos = fill(sc.out[2], n_out);
      std::vector<double>& cneg = fill(sc.out[3], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        cpos[k] = alpha * coef(R[k], dp[k], eps);
        // z⁻_k = 0 means every negative contribution is 0: the unit has no negative share.
        if (ab && beta != 0 && dn[k] != 0) cneg[k] = -beta * coef(R[k], dn[k], eps);
      }
      std::vector<double>& acc_pos = fill(sc.in[0], n_in);  // for a⁺
      std::vector<double>& acc_neg = fill(sc.in[1], n_in);  // for a⁻
      if (ab) {
        g.template scatter<2, 2>({acc_pos.data(), acc_neg.data()}, {cpos.data(), cneg.data()},
                                 [](double w, const vals<2>& ck) {
                                   const double wp = pos(w), wn = neg(w);
                                   return vals<2>{wp * ck[0] + wn * ck[1], wn * ck[0] + wp * ck[1]};
                                 });
      } else {
        g.template scatter<2, 1>({acc_pos.data(), acc_neg.data()}, {cpos.data()}, [](double w, const vals<1>& ck) {
          return vals<2>{pos(w) * ck[0], neg(w) * ck[0]};
        });
      }
      for (std::size_t j = 0; j < n_in; ++j) out[j] = pos(a[j]) * acc_pos[j] + neg(a[j]) * acc_neg[j];
      for (std::size_t k = 0; k < n_out; ++k) rb[k] = pos(bias(k)) * cpos[k] + neg(bias(k)) * cneg[k];
      return;
    }
    case rule_kind::gamma: {
      // Units with z_k > 0: (a⁺, w+γw⁺), (a⁻, w+γw⁻), bias b+γb⁺. Units with z_k < 0: the
      // mirror, (a⁺, w+γw⁻), (a⁻, w+γw⁺), bias b+γb⁻. z_k = 0: nothing. The sign test is on
      // the forward z_k, whatever the bias mode (Zennit's Gamma: NoMod() on the sign term).
      const double gm = r.gamma;
      auto up = [gm](double w) { return w + gm * pos(w); };
      auto un = [gm](double w) { return w + gm * neg(w); };
      if (std::none_of(a, a + n_in, [](double x) { return x < 0; })) {
        // a ≥ 0 (after a ReLU, or an image): a⁻ = 0 and the sign of a_j·w_jk is w_jk's. With
        // P_k = Σ_{w ≥ 0} a w and N_k = Σ_{w < 0} a w, the denominators are
        // (1+γ)P + N + b + γb⁺ and P + (1+γ)N + b + γb⁻; and since only one of c⁺_k, c⁻_k is
        // nonzero, w·up(w)… folds into one coefficient per unit and weight sign:
        //   up(w)·c⁺ + un(w)·c⁻ = w·((1+γ)c⁺ + c⁻) for w ≥ 0, w·(c⁺ + (1+γ)c⁻) for w < 0.
        // One multiply-add per edge in each sweep, as for ε (the general form below takes four).
        std::vector<double>& sp = fill(sc.out[0], n_out);
        std::vector<double>& sn = fill(sc.out[1], n_out);
        g.reduce_split(sp.data(), sn.data(), a);
        std::vector<double>& ep = fill(sc.out[2], n_out);
        std::vector<double>& en = fill(sc.out[3], n_out);
        for (std::size_t k = 0; k < n_out; ++k) {
          double cp = 0.0, cn = 0.0;
          if (io.z[k] > 0) cp = coef(R[k], (1 + gm) * sp[k] + sn[k] + up(bias(k)), eps);
          else if (io.z[k] < 0) cn = coef(R[k], sp[k] + (1 + gm) * sn[k] + un(bias(k)), eps);
          ep[k] = (1 + gm) * cp + cn;
          en[k] = cp + (1 + gm) * cn;
          rb[k] = up(bias(k)) * cp + un(bias(k)) * cn;
        }
        std::vector<double>& acc = fill(sc.in[0], n_in);
        g.scatter_split(acc.data(), ep.data(), en.data());
        for (std::size_t j = 0; j < n_in; ++j) out[j] = a[j] * acc[j];
        return;
      }
      std::vector<double>& dp = fill(sc.out[0], n_out);
      std::vector<double>& dn = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        dp[k] = up(bias(k));
        dn[k] = un(bias(k));
      }
      // a⁺(w+γw⁺) + a⁻(w+γw⁻) = a·w + γ(a·w)⁺ and a⁺(w+γw⁻) + a⁻(w+γw⁺) = a·w + γ(a·w)⁻
      // (the same sign argument as for z⁺), which saves the split per edge.
      g.template reduce<2>({dp.data(), dn.data()}, [a, gm](std::size_t j, double w) {
        const double t = a[j] * w;
        return vals<2>{t + gm * pos(t), t + gm * neg(t)};
      });
      std::vector<double>& cpos = fill(sc.out[2], n_out);
      std::vector<double>& cneg = fill(sc.out[3], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        if (io.z[k] > 0) cpos[k] = coef(R[k], dp[k], eps);
        else if (io.z[k] < 0) cneg[k] = coef(R[k], dn[k], eps);
      }
      std::vector<double>& acc_pos = fill(sc.in[0], n_in);
      std::vector<double>& acc_neg = fill(sc.in[1], n_in);
      g.template scatter<2, 2>({acc_pos.data(), acc_neg.data()}, {cpos.data(), cneg.data()},
                               [up, un](double w, const vals<2>& ck) {
                                 const double wu = up(w), wd = un(w);
                                 return vals<2>{wu * ck[0] + wd * ck[1], wd * ck[0] + wu * ck[1]};
                               });
      for (std::size_t j = 0; j < n_in; ++j) out[j] = pos(a[j]) * acc_pos[j] + neg(a[j]) * acc_neg[j];
      for (std::size_t k = 0; k < n_out; ++k) rb[k] = up(bias(k)) * cpos[k] + un(bias(k)) * cneg[k];
      return;
    }
    case rule_kind::zbox: {
      // (a, w, c), (l, w⁺, −c), (h, w⁻, −c); the bias enters as b − b⁺ − b⁻ = 0: nothing.
      const zbox_bound& lo = r.low;
      const zbox_bound& hi = r.high;
      std::vector<double>& d = fill(sc.out[0], n_out);
      g.template reduce<1>({d.data()}, [a, &lo, &hi](std::size_t j, double w) {
        return vals<1>{a[j] * w - lo.at(j) * pos(w) - hi.at(j) * neg(w)};
      });
      std::vector<double>& c = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], d[k], eps);
      std::vector<double>& acc_w = fill(sc.in[0], n_in);
      std::vector<double>& acc_p = fill(sc.in[1], n_in);
      std::vector<double>& acc_n = fill(sc.in[2], n_in);
      g.template scatter<3, 1>({acc_w.data(), acc_p.data(), acc_n.data()}, {c.data()},
                               [](double w, const vals<1>& ck) {
                                 return vals<3>{w * ck[0], pos(w) * ck[0], neg(w) * ck[0]};
                               });
      for (std::size_t j = 0; j < n_in; ++j) out[j] = a[j] * acc_w[j] - lo.at(j) * acc_p[j] - hi.at(j) * acc_n[j];
      return;
    }
    case rule_kind::flat: {
      // (1, 1, 1/stab(fan-in_k)); fan-in counts the edges, so padding counts for nothing.
      std::vector<double>& d = fill(sc.out[0], n_out);
      g.template reduce<1>({d.data()}, [](std::size_t, double) { return vals<1>{1.0}; });
      for (std::size_t k = 0; k < n_out; ++k) d[k] = coef(R[k], d[k], eps);
      g.template scatter<1, 1>({out}, {d.data()}, [](double, const vals<1>& ck) { return vals<1>{ck[0]}; });
      return;
    }
    case rule_kind::wsquare: {
      // (1, w², 1/stab(Σ_j w² + b²)); the bias absorbs b²·c.
      std::vector<double>& d = fill(sc.out[0], n_out);
      for (std::size_t k = 0; k < n_out; ++k) d[k] = bias(k) * bias(k);
      g.template reduce<1>({d.data()}, [](std::size_t, double w) { return vals<1>{w * w}; });
      std::vector<double>& c = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], d[k], eps);
      g.template scatter<1, 1>({out}, {c.data()}, [](double w, const vals<1>& ck) { return vals<1>{w * w * ck[0]}; });
      for (std::size_t k = 0; k < n_out; ++k) rb[k] = bias(k) * bias(k) * c[k];
      return;
    }
  }
}


}  // namespace

std::size_t predicted(const forward_result& fwd) {
  const auto& out = fwd.output();
  PROVNN_ASSERT(!out.empty());
  return static_cast<std::size_t>(std::max_element(out.begin(), out.end()) - out.begin());
}

lrp_result lrp(const network& net, const forward_result& fwd, const lrp_options& options) {
  check_forward_result(net, fwd);
  const std::size_t L = net.layers.size();
  const std::size_t n_linear =
      static_cast<std::size_t>(std::count_if(net.layers.begin(), net.layers.end(), [](const layer& l) { return l.is_linear(); }));
  if (options.layer_rules.size() != n_linear)
    throw error(fmt::format("lrp: {} rules given but network '{}' has {} linear layers; use resolve() to get one per layer",
                            options.layer_rules.size(), net.source, n_linear));

  if (!(options.pool_epsilon >= 0) || !std::isfinite(options.pool_epsilon))
    throw error(fmt::format("lrp: pool_epsilon must be a finite number >= 0, got {}", options.pool_epsilon));

  lrp_result res;
  const std::vector<double>& logits = fwd.output();
  std::vector<double> init(logits.size(), 0.0);
  if (const auto* v = std::get_if<std::vector<double>>(&options.target)) {
    if (v->size() != logits.size())
      throw error(fmt::format("initial relevance has {} values but the network output has {}", v->size(), logits.size()));
    for (std::size_t i = 0; i < v->size(); ++i)
      if (!std::isfinite((*v)[i])) throw error(fmt::format("initial relevance value {} is not finite ({})", i, (*v)[i]));
    init = *v;
    for (double x : init) res.score += x;
  } else {
    std::size_t t = 0;
    if (const auto* c = std::get_if<std::size_t>(&options.target)) {
      t = *c;
      if (t >= logits.size())
        throw error(fmt::format("target class {} is out of range: the network has {} outputs (0..{})", t, logits.size(),
                                logits.size() - 1));
    } else {
      t = predicted(fwd);
    }
    res.target = t;
    res.score = logits[t];
    init[t] = res.score;
  }

  res.relevance.resize(L + 1);
  res.relevance[L] = std::move(init);
  res.bias_relevance.resize(n_linear);
  const bool keep_bias = options.bias == bias_mode::kept;
  scratch sc;
  std::size_t lin = n_linear;
  for (std::size_t i = L; i-- > 0;) {
    const layer& l = net.layers[i];
    const std::vector<double>& r_out = res.relevance[i + 1];
    std::vector<double> r_in(fwd.activations[i].size(), 0.0);
    const double* a = fwd.activations[i].data();
    const double* z = fwd.activations[i + 1].data();
    if (l.is_linear()) {
      --lin;
      const rule& r = options.layer_rules[lin];
      std::vector<double>& rb = res.bias_relevance[lin];
      rb.assign(r_out.size(), 0.0);
      if (r.kind == rule_kind::zbox) {
        check_bound(r.low, "L", r_in.size(), l, lin);
        check_bound(r.high, "H", r_in.size(), l, lin);
      }
      const layer_io io{a, z, r_out.data(), r_in.data(), rb.data()};
      if (const auto* d = std::get_if<dense_op>(&l.op)) {
        PROVNN_ASSERT(d->in == r_in.size() && d->out == r_out.size());
        linear_backward(dense_geom{*d}, r, keep_bias, io, sc);
      } else {
        const conv_geom g(std::get<conv2d_op>(l.op), l.in_shape, l.out_shape);
        PROVNN_ASSERT(g.n_in() == r_in.size() && g.n_out() == r_out.size());
        linear_backward(g, r, keep_bias, io, sc);
      }
    } else if (const auto* p = std::get_if<pool_op>(&l.op)) {
      if (p->mode == pool_op::kind::max) {
        if (i >= fwd.argmax.size() || fwd.argmax[i].size() != r_out.size())
          throw error(fmt::format("forward result: max-pool layer {} ('{}') has no winner for each of its {} outputs",
                                  i, l.name, r_out.size()));
        const auto& win = fwd.argmax[i];
        for (std::size_t k = 0; k < r_out.size(); ++k) {
          PROVNN_ASSERT(win[k] < r_in.size());
          r_in[win[k]] += r_out[k];
        }
      } else {
        // A linear layer with fixed weights 1/N under the ε rule (ε = 1e-6), z_k = the pool output.
        std::vector<double>& c = fill(sc.out[0], r_out.size());
        if (p->count_include_pad) {
          const double n = static_cast<double>(p->kernel_h * p->kernel_w);
          for (std::size_t k = 0; k < c.size(); ++k) c[k] = coef(r_out[k], z[k], options.pool_epsilon) / n;
        } else {
          detail::pool_edges(*p, l.in_shape, l.out_shape, [&](std::size_t k, std::size_t) { c[k] += 1.0; });
          for (std::size_t k = 0; k < c.size(); ++k) c[k] = c[k] == 0 ? 0.0 : coef(r_out[k], z[k], options.pool_epsilon) / c[k];
        }
        detail::pool_edges(*p, l.in_shape, l.out_shape, [&](std::size_t k, std::size_t j) { r_in[j] += a[j] * c[k]; });
      }
    } else {
      // ReLU (Zennit's Pass), flatten, reshape: same flat data, relevance unchanged.
      PROVNN_ASSERT(r_in.size() == r_out.size());
      r_in = r_out;
    }
    res.relevance[i] = std::move(r_in);
  }
  for (const auto& rb : res.bias_relevance)
    for (double x : rb) res.bias_share += x;
  return res;
}

}  // namespace provnn::engine
