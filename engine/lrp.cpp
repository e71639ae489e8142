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
#include <type_traits>
#include <utility>

#include "common/error.hpp"

namespace provnn::engine {

namespace {

// Every pass runs in T: double, or float for the fp32 path (forward.hpp); the parameters come
// from the network (double) or from float32_parameters (float).

// Branch-free (maxsd/minsd): weight signs are random, a branch would mispredict per edge.
template <class T>
inline T pos(T x) noexcept { return std::max(x, T{0}); }
template <class T>
inline T neg(T x) noexcept { return std::min(x, T{0}); }

/// stab(z) = z + ε·s(z), s(z) = +1 if z ≥ 0 else −1 (DESIGN §2; Zennit's stabilize).
template <class T>
inline T stab(T z, T eps) noexcept { return z >= 0 ? z + eps : z - eps; }

/// r / stab(d): the per-unit coefficient with R_k folded in. A unit without relevance, or
/// whose stabilised denominator is exactly 0 (only possible with ε = 0), passes nothing on.
template <class T>
inline T coef(T r, T d, T eps) noexcept {
  if (r == 0) return T{0};
  const T s = stab(d, eps);
  return s == 0 ? T{0} : r / s;
}

std::string shape_string(const shape_t& s) { return fmt::format("({})", fmt::join(s, ",")); }

template <class T, std::size_t N>
using vals = std::array<T, N>;

// ---- edge geometry ----------------------------------------------------------------------
//
// A rule needs two sweeps over the edges j → k of a layer:
//   reduce:  d_m[k] += f(j, w)[m]                 (per-unit denominators)
//   scatter: acc_m[j] += f(w, (c_0[k], c_1[k], …))[m]   (R_j before the input modifier)
// Each geometry runs them in the order its memory wants: a dense layer row by row (a unit's
// weights are contiguous, so the reduction stays in registers and the scatter is a
// vectorisable axpy that skips units without relevance); a convolution per kernel tap.

template <class T>
struct dense_geom {
  const dense_op& op;
  const T* weight_data;  // op's weights in T (out × in)
  const T* bias_data;    // op's biases in T
  std::size_t n_in() const noexcept { return op.in; }
  std::size_t n_out() const noexcept { return op.out; }
  T bias(std::size_t k) const noexcept { return op.bias.empty() ? T{0} : bias_data[k]; }

  template <std::size_t M, class F>
  void reduce(std::array<T*, M> d, F&& f) const {
    const std::size_t in = op.in;
    const T* w = weight_data;
    // Four partial sums break the add latency chain of a single accumulator (about 3x).
    for (std::size_t k = 0; k < op.out; ++k, w += in) {
      std::array<vals<T, M>, 4> s{};
      std::size_t j = 0;
      for (; j + 4 <= in; j += 4)
        for (std::size_t u = 0; u < 4; ++u) {
          const vals<T, M> t = f(j + u, w[j + u]);
          for (std::size_t m = 0; m < M; ++m) s[u][m] += t[m];
        }
      for (; j < in; ++j) {
        const vals<T, M> t = f(j, w[j]);
        for (std::size_t m = 0; m < M; ++m) s[0][m] += t[m];
      }
      for (std::size_t m = 0; m < M; ++m) d[m][k] += (s[0][m] + s[1][m]) + (s[2][m] + s[3][m]);
    }
  }

  template <std::size_t NA, std::size_t NC, class F>
  void scatter(std::array<T*, NA> acc, std::array<const T*, NC> c, F&& f) const {
    const std::size_t in = op.in;
    for (std::size_t k = 0; k < op.out; ++k) {
      vals<T, NC> ck;
      bool any = false;
      for (std::size_t m = 0; m < NC; ++m) {
        ck[m] = c[m][k];
        any = any || ck[m] != 0;
      }
      if (!any) continue;  // inactive or irrelevant unit: its row contributes nothing
      const T* __restrict w = weight_data + k * in;
      for (std::size_t j = 0; j < in; ++j) {
        const vals<T, NA> t = f(w[j], ck);
        for (std::size_t m = 0; m < NA; ++m) acc[m][j] += t[m];
      }
    }
  }

  // pos[k] += Σ_{w_jk ≥ 0} x_j·w_jk, neg[k] += Σ_{w_jk < 0} x_j·w_jk.
  void reduce_split(T* pos, T* neg, const T* x) const {
    reduce<2>({pos, neg}, [x](std::size_t j, T w) {
      const T t = x[j] * w;
      return w >= 0 ? vals<T, 2>{t, T{0}} : vals<T, 2>{T{0}, t};
    });
  }
  // acc[j] += Σ_k w_jk · (w_jk ≥ 0 ? cp[k] : cn[k]).
  void scatter_split(T* acc, const T* cp, const T* cn) const {
    scatter<1, 2>({acc}, {cp, cn}, [](T w, const vals<T, 2>& ck) { return vals<T, 1>{w * (w >= 0 ? ck[0] : ck[1])}; });
  }
  // acc[j] += Σ_k w_jk · c[k].
  void scatter_plain(T* acc, const T* c) const {
    scatter<1, 1>({acc}, {c}, [](T w, const vals<T, 1>& ck) { return vals<T, 1>{w * ck[0]}; });
  }
};

template <class T>
struct conv_geom {
  const conv2d_op& op;
  const T* weight_data;      // op's weights in T
  const T* bias_data;        // op's biases in T
  std::size_t h, w, oh, ow;  // input and output planes

  conv_geom(const conv2d_op& c, const T* weights, const T* biases, const shape_t& in, const shape_t& out)
      : op(c), weight_data(weights), bias_data(biases) {
    PROVNN_ASSERT(in.size() == 3 && out.size() == 3);
    h = in[1];
    w = in[2];
    oh = out[1];
    ow = out[2];
  }
  std::size_t n_in() const noexcept { return op.in_channels * h * w; }
  std::size_t n_out() const noexcept { return op.out_channels * oh * ow; }
  T bias(std::size_t k) const noexcept { return op.bias.empty() ? T{0} : bias_data[k / (oh * ow)]; }

  // f(k0, j0, n, w) for every run of edges sharing weight w (detail::conv_runs).
  template <class F>
  void runs(F&& f) const {
    detail::conv_runs(op, {op.in_channels, h, w}, {op.out_channels, oh, ow},
                      [&f, this](std::size_t k0, std::size_t j0, std::size_t n, std::size_t p, double) {
                        f(k0, j0, n, weight_data[p]);
                      });
  }

  template <std::size_t M, class F>
  void reduce(std::array<T*, M> d, F&& f) const {
    const std::size_t sw = op.stride_w;
    runs([&, d](std::size_t k0, std::size_t j0, std::size_t n, T wv) {
      std::array<T*, M> dk;
      for (std::size_t m = 0; m < M; ++m) dk[m] = d[m] + k0;
      for (std::size_t t = 0; t < n; ++t) {
        const vals<T, M> v = f(j0 + t * sw, wv);
        for (std::size_t m = 0; m < M; ++m) dk[m][t] += v[m];
      }
    });
  }

  template <std::size_t NA, std::size_t NC, class F>
  void scatter(std::array<T*, NA> acc, std::array<const T*, NC> c, F&& f) const {
    const std::size_t sw = op.stride_w;
    runs([&, acc, c](std::size_t k0, std::size_t j0, std::size_t n, T wv) {
      std::array<T*, NA> aj;
      std::array<const T*, NC> ck;
      for (std::size_t m = 0; m < NA; ++m) aj[m] = acc[m] + j0;
      for (std::size_t m = 0; m < NC; ++m) ck[m] = c[m] + k0;
      for (std::size_t t = 0; t < n; ++t) {
        vals<T, NC> cv;
        for (std::size_t m = 0; m < NC; ++m) cv[m] = ck[m][t];
        const vals<T, NA> v = f(wv, cv);
        for (std::size_t m = 0; m < NA; ++m) aj[m][t * sw] += v[m];
      }
    });
  }

  // The sweeps whose every edge has the same form run as matrix products (conv_gemm.hpp):
  // at 98 M multiply-adds (vgg-small) Eigen's GEMM is ≈ 2× the runs above.
  shape_t in_shape() const { return {op.in_channels, h, w}; }
  shape_t out_shape() const { return {op.out_channels, oh, ow}; }
  void reduce_split(T* pos, T* neg, const T* x) const {
    detail::conv_split_gemm(op, weight_data, in_shape(), out_shape(), x, pos, neg);
  }
  void scatter_split(T* acc, const T* cp, const T* cn) const {
    detail::conv_split_transposed_gemm(op, weight_data, in_shape(), out_shape(), cp, cn, acc);
  }
  void scatter_plain(T* acc, const T* c) const {
    detail::conv_transposed_gemm(op, weight_data, in_shape(), out_shape(), c, acc);
  }
};

// ---- one linear layer under one rule ---------------------------------------------------

template <class T>
struct layer_io {
  const T* a;      // layer input (activations[i])
  const T* z;      // forward pre-activation (activations[i + 1])
  const T* r_out;  // R_k
  T* r_in;         // R_j, zero on entry
  T* r_bias;       // R(b_k), zero on entry
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
template <class T>
struct scratch {
  std::array<std::vector<T>, 4> out;  // per output unit
  std::array<std::vector<T>, 3> in;   // per input unit
};

/// v resized to n and filled with `value`, keeping its capacity.
template <class T>
inline std::vector<T>& fill(std::vector<T>& v, std::size_t n, T value = T{0}) {
  v.assign(n, value);
  return v;
}

template <class T, class Geom>
void linear_backward(const Geom& g, const rule& r, bool keep_bias, const layer_io<T>& io, scratch<T>& sc) {
  const std::size_t n_in = g.n_in(), n_out = g.n_out();
  const auto eps = static_cast<T>(r.epsilon);
  const T* a = io.a;
  const T* R = io.r_out;
  T* out = io.r_in;
  T* rb = io.r_bias;
  auto bias = [&](std::size_t k) { return keep_bias ? g.bias(k) : T{0}; };

  switch (r.kind) {
    case rule_kind::zero:
    case rule_kind::epsilon: {
      // (a, w, 1/stab(z_k)); with biases kept z_k is the forward pre-activation itself.
      std::vector<T>& c = fill(sc.out[0], n_out);
      if (keep_bias) {
        for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], io.z[k], eps);
      } else {
        std::vector<T>& d = fill(sc.out[1], n_out);
        g.template reduce<1>({d.data()}, [a](std::size_t j, T w) { return vals<T, 1>{a[j] * w}; });
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
      const auto alpha = static_cast<T>(ab ? r.alpha : 1.0), beta = static_cast<T>(ab ? r.beta : 0.0);
      std::vector<T>& dp = fill(sc.out[0], n_out);
      std::vector<T>& dn = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        dp[k] = pos(bias(k));
        dn[k] = neg(bias(k));
      }
      // Of a⁺w⁺, a⁻w⁻, a⁺w⁻, a⁻w⁺ exactly one is a·w and the others are 0, and the first two
      // are ≥ 0, the last two ≤ 0: so a⁺w⁺ + a⁻w⁻ = (a·w)⁺ and a⁺w⁻ + a⁻w⁺ = (a·w)⁻, exactly.
      g.template reduce<2>({dp.data(), dn.data()}, [a](std::size_t j, T w) {
        const T t = a[j] * w;
        return vals<T, 2>{pos(t), neg(t)};
      });
      std::vector<T>& cpos = fill(sc.out[2], n_out);
      std::vector<T>& cneg = fill(sc.out[3], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        cpos[k] = alpha * coef(R[k], dp[k], eps);
        // z⁻_k = 0 means every negative contribution is 0: the unit has no negative share.
        if (ab && beta != 0 && dn[k] != 0) cneg[k] = -beta * coef(R[k], dn[k], eps);
      }
      std::vector<T>& acc_pos = fill(sc.in[0], n_in);  // for a⁺
      std::vector<T>& acc_neg = fill(sc.in[1], n_in);  // for a⁻
      if (ab) {
        g.template scatter<2, 2>({acc_pos.data(), acc_neg.data()}, {cpos.data(), cneg.data()},
                                 [](T w, const vals<T, 2>& ck) {
                                   const T wp = pos(w), wn = neg(w);
                                   return vals<T, 2>{wp * ck[0] + wn * ck[1], wn * ck[0] + wp * ck[1]};
                                 });
      } else {
        g.template scatter<2, 1>({acc_pos.data(), acc_neg.data()}, {cpos.data()}, [](T w, const vals<T, 1>& ck) {
          return vals<T, 2>{pos(w) * ck[0], neg(w) * ck[0]};
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
      const auto gm = static_cast<T>(r.gamma);
      auto up = [gm](T w) { return w + gm * pos(w); };
      auto un = [gm](T w) { return w + gm * neg(w); };
      if (std::none_of(a, a + n_in, [](T x) { return x < 0; })) {
        // a ≥ 0 (after a ReLU, or an image): a⁻ = 0 and the sign of a_j·w_jk is w_jk's. With
        // P_k = Σ_{w ≥ 0} a w and N_k = Σ_{w < 0} a w, the denominators are
        // (1+γ)P + N + b + γb⁺ and P + (1+γ)N + b + γb⁻; and since only one of c⁺_k, c⁻_k is
        // nonzero, w·up(w)… folds into one coefficient per unit and weight sign:
        //   up(w)·c⁺ + un(w)·c⁻ = w·((1+γ)c⁺ + c⁻) for w ≥ 0, w·(c⁺ + (1+γ)c⁻) for w < 0.
        // One multiply-add per edge in each sweep, as for ε (the general form below takes four).
        std::vector<T>& sp = fill(sc.out[0], n_out);
        std::vector<T>& sn = fill(sc.out[1], n_out);
        g.reduce_split(sp.data(), sn.data(), a);
        std::vector<T>& ep = fill(sc.out[2], n_out);
        std::vector<T>& en = fill(sc.out[3], n_out);
        for (std::size_t k = 0; k < n_out; ++k) {
          T cp = 0, cn = 0;
          if (io.z[k] > 0) cp = coef(R[k], (1 + gm) * sp[k] + sn[k] + up(bias(k)), eps);
          else if (io.z[k] < 0) cn = coef(R[k], sp[k] + (1 + gm) * sn[k] + un(bias(k)), eps);
          ep[k] = (1 + gm) * cp + cn;
          en[k] = cp + (1 + gm) * cn;
          rb[k] = up(bias(k)) * cp + un(bias(k)) * cn;
        }
        std::vector<T>& acc = fill(sc.in[0], n_in);
        g.scatter_split(acc.data(), ep.data(), en.data());
        for (std::size_t j = 0; j < n_in; ++j) out[j] = a[j] * acc[j];
        return;
      }
      std::vector<T>& dp = fill(sc.out[0], n_out);
      std::vector<T>& dn = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        dp[k] = up(bias(k));
        dn[k] = un(bias(k));
      }
      // a⁺(w+γw⁺) + a⁻(w+γw⁻) = a·w + γ(a·w)⁺ and a⁺(w+γw⁻) + a⁻(w+γw⁺) = a·w + γ(a·w)⁻
      // (the same sign argument as for z⁺), which saves the split per edge.
      g.template reduce<2>({dp.data(), dn.data()}, [a, gm](std::size_t j, T w) {
        const T t = a[j] * w;
        return vals<T, 2>{t + gm * pos(t), t + gm * neg(t)};
      });
      std::vector<T>& cpos = fill(sc.out[2], n_out);
      std::vector<T>& cneg = fill(sc.out[3], n_out);
      for (std::size_t k = 0; k < n_out; ++k) {
        if (io.z[k] > 0) cpos[k] = coef(R[k], dp[k], eps);
        else if (io.z[k] < 0) cneg[k] = coef(R[k], dn[k], eps);
      }
      std::vector<T>& acc_pos = fill(sc.in[0], n_in);
      std::vector<T>& acc_neg = fill(sc.in[1], n_in);
      g.template scatter<2, 2>({acc_pos.data(), acc_neg.data()}, {cpos.data(), cneg.data()},
                               [up, un](T w, const vals<T, 2>& ck) {
                                 const T wu = up(w), wd = un(w);
                                 return vals<T, 2>{wu * ck[0] + wd * ck[1], wd * ck[0] + wu * ck[1]};
                               });
      for (std::size_t j = 0; j < n_in; ++j) out[j] = pos(a[j]) * acc_pos[j] + neg(a[j]) * acc_neg[j];
      for (std::size_t k = 0; k < n_out; ++k) rb[k] = up(bias(k)) * cpos[k] + un(bias(k)) * cneg[k];
      return;
    }
    case rule_kind::zbox: {
      // (a, w, c), (l, w⁺, −c), (h, w⁻, −c); the bias enters as b − b⁺ − b⁻ = 0: nothing.
      const zbox_bound& lo = r.low;
      const zbox_bound& hi = r.high;
      std::vector<T>& d = fill(sc.out[0], n_out);
      g.template reduce<1>({d.data()}, [a, &lo, &hi](std::size_t j, T w) {
        return vals<T, 1>{a[j] * w - static_cast<T>(lo.at(j)) * pos(w) - static_cast<T>(hi.at(j)) * neg(w)};
      });
      std::vector<T>& c = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], d[k], eps);
      std::vector<T>& acc_w = fill(sc.in[0], n_in);
      std::vector<T>& acc_p = fill(sc.in[1], n_in);
      std::vector<T>& acc_n = fill(sc.in[2], n_in);
      g.template scatter<3, 1>({acc_w.data(), acc_p.data(), acc_n.data()}, {c.data()},
                               [](T w, const vals<T, 1>& ck) {
                                 return vals<T, 3>{w * ck[0], pos(w) * ck[0], neg(w) * ck[0]};
                               });
      for (std::size_t j = 0; j < n_in; ++j)
        out[j] = a[j] * acc_w[j] - static_cast<T>(lo.at(j)) * acc_p[j] - static_cast<T>(hi.at(j)) * acc_n[j];
      return;
    }
    case rule_kind::flat: {
      // (1, 1, 1/stab(fan-in_k)); fan-in counts the edges, so padding counts for nothing.
      std::vector<T>& d = fill(sc.out[0], n_out);
      g.template reduce<1>({d.data()}, [](std::size_t, T) { return vals<T, 1>{T{1}}; });
      for (std::size_t k = 0; k < n_out; ++k) d[k] = coef(R[k], d[k], eps);
      g.template scatter<1, 1>({out}, {d.data()}, [](T, const vals<T, 1>& ck) { return vals<T, 1>{ck[0]}; });
      return;
    }
    case rule_kind::wsquare: {
      // (1, w², 1/stab(Σ_j w² + b²)); the bias absorbs b²·c.
      std::vector<T>& d = fill(sc.out[0], n_out);
      for (std::size_t k = 0; k < n_out; ++k) d[k] = bias(k) * bias(k);
      g.template reduce<1>({d.data()}, [](std::size_t, T w) { return vals<T, 1>{w * w}; });
      std::vector<T>& c = fill(sc.out[1], n_out);
      for (std::size_t k = 0; k < n_out; ++k) c[k] = coef(R[k], d[k], eps);
      g.template scatter<1, 1>({out}, {c.data()}, [](T w, const vals<T, 1>& ck) { return vals<T, 1>{w * w * ck[0]}; });
      for (std::size_t k = 0; k < n_out; ++k) rb[k] = bias(k) * bias(k) * c[k];
      return;
    }
  }
}


}  // namespace

namespace {

/// For the fp32 path: every rule parameter must be a float. A finite parameter beyond float's
/// range would become ±inf (NaN relevance), and a nonzero ε, γ, α or β below it would become 0
/// (another rule). Throws provnn::error naming the layer and the parameter.
void check_float_rule(const rule& r, const network& net, std::size_t lin) {
  const layer* l = nullptr;
  for (std::size_t i = 0, seen = 0; i < net.layers.size(); ++i)
    if (net.layers[i].is_linear() && seen++ == lin) l = &net.layers[i];
  const auto fail = [&](const std::string& what, double v, const char* how) {
    throw error(fmt::format("{}: linear layer {} ('{}'): {} {} {}; use fp64", net.source, lin,
                            l ? l->name : std::string("?"), what, v, how));
  };
  const auto check = [&](const std::string& what, double v, bool nonzero_must_stay) {
    const auto f = static_cast<float>(v);
    if (std::isfinite(v) && !std::isfinite(f)) fail(what, v, "is beyond float32's range");
    if (nonzero_must_stay && v != 0 && f == 0) fail(what, v, "rounds to 0 in float32");
  };
  check("epsilon", r.epsilon, true);
  if (r.kind == rule_kind::gamma) check("gamma", r.gamma, true);
  if (r.kind == rule_kind::alphabeta) {
    check("alpha", r.alpha, true);
    check("beta", r.beta, true);
  }
  if (r.kind == rule_kind::zbox)
    for (const auto* b : {&r.low, &r.high}) {
      const char* name = b == &r.low ? "zbox bound L" : "zbox bound H";
      check(name, b->scalar, false);
      for (std::size_t j = 0; j < b->values.size(); ++j)
        check(fmt::format("{} at flat index {}", name, j), b->values[j], false);
    }
}

}  // namespace

template <class T>
std::size_t predicted(const basic_forward_result<T>& fwd) {
  const auto& out = fwd.output();
  PROVNN_ASSERT(!out.empty());
  return static_cast<std::size_t>(std::max_element(out.begin(), out.end()) - out.begin());
}
template std::size_t predicted<double>(const forward_result&);
template std::size_t predicted<float>(const forward_result_f32&);

namespace {

// The pass in T; weights(i) and biases(i) give linear layer i's parameters in T.
template <class T, class Weights, class Biases>
basic_lrp_result<T> lrp_in(const network& net, const basic_forward_result<T>& fwd, const lrp_options& options,
                           Weights&& weights, Biases&& biases) {
  check_forward_result(net, fwd);
  const std::size_t L = net.layers.size();
  const std::size_t n_linear =
      static_cast<std::size_t>(std::count_if(net.layers.begin(), net.layers.end(), [](const layer& l) { return l.is_linear(); }));
  if (options.layer_rules.size() != n_linear)
    throw error(fmt::format("lrp: {} rules given but network '{}' has {} linear layers; use resolve() to get one per layer",
                            options.layer_rules.size(), net.source, n_linear));

  if (!(options.pool_epsilon >= 0) || !std::isfinite(options.pool_epsilon))
    throw error(fmt::format("lrp: pool_epsilon must be a finite number >= 0, got {}", options.pool_epsilon));
  if constexpr (std::is_same_v<T, float>)
    if (const auto f = static_cast<float>(options.pool_epsilon); !std::isfinite(f) || (options.pool_epsilon != 0 && f == 0))
      throw error(fmt::format("lrp: pool_epsilon {} {}; use fp64", options.pool_epsilon,
                              std::isfinite(f) ? "rounds to 0 in float32" : "is beyond float32's range"));

  basic_lrp_result<T> res;
  const std::vector<T>& logits = fwd.output();
  std::vector<T> init(logits.size(), T{0});
  if (const auto* v = std::get_if<std::vector<double>>(&options.target)) {
    if (v->size() != logits.size())
      throw error(fmt::format("initial relevance has {} values but the network output has {}", v->size(), logits.size()));
    for (std::size_t i = 0; i < v->size(); ++i)
      if (!std::isfinite((*v)[i])) throw error(fmt::format("initial relevance value {} is not finite ({})", i, (*v)[i]));
    for (std::size_t i = 0; i < v->size(); ++i) {
      init[i] = static_cast<T>((*v)[i]);
      if constexpr (std::is_same_v<T, float>)
        if (!std::isfinite(init[i]))
          throw error(fmt::format("initial relevance value {} ({}) is beyond float32's range", i, (*v)[i]));
    }
    for (T x : init) res.score += x;
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
  scratch<T> sc;
  std::size_t lin = n_linear;
  for (std::size_t i = L; i-- > 0;) {
    const layer& l = net.layers[i];
    const std::vector<T>& r_out = res.relevance[i + 1];
    std::vector<T> r_in(fwd.activations[i].size(), T{0});
    const T* a = fwd.activations[i].data();
    const T* z = fwd.activations[i + 1].data();
    if (l.is_linear()) {
      --lin;
      const rule& r = options.layer_rules[lin];
      std::vector<T>& rb = res.bias_relevance[lin];
      rb.assign(r_out.size(), T{0});
      if (r.kind == rule_kind::zbox) {
        check_bound(r.low, "L", r_in.size(), l, lin);
        check_bound(r.high, "H", r_in.size(), l, lin);
      }
      if constexpr (std::is_same_v<T, float>) check_float_rule(r, net, lin);
      const layer_io<T> io{a, z, r_out.data(), r_in.data(), rb.data()};
      if (const auto* d = std::get_if<dense_op>(&l.op)) {
        PROVNN_ASSERT(d->in == r_in.size() && d->out == r_out.size());
        linear_backward(dense_geom<T>{*d, weights(i), biases(i)}, r, keep_bias, io, sc);
      } else {
        const conv_geom<T> g(std::get<conv2d_op>(l.op), weights(i), biases(i), l.in_shape, l.out_shape);
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
        std::vector<T>& c = fill(sc.out[0], r_out.size());
        const auto pool_eps = static_cast<T>(options.pool_epsilon);
        if (p->count_include_pad) {
          const auto n = static_cast<T>(p->kernel_h * p->kernel_w);
          for (std::size_t k = 0; k < c.size(); ++k) c[k] = coef(r_out[k], z[k], pool_eps) / n;
        } else {
          detail::pool_edges(*p, l.in_shape, l.out_shape, [&](std::size_t k, std::size_t) { c[k] += 1; });
          for (std::size_t k = 0; k < c.size(); ++k) c[k] = c[k] == 0 ? T{0} : coef(r_out[k], z[k], pool_eps) / c[k];
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
    for (T x : rb) res.bias_share += x;
  return res;
}

}  // namespace

lrp_result lrp(const network& net, const forward_result& fwd, const lrp_options& options) {
  return lrp_in<double>(
      net, fwd, options, [&net](std::size_t i) { return parameters_of(net.layers[i]).weight->data(); },
      [&net](std::size_t i) { return parameters_of(net.layers[i]).bias->data(); });
}

lrp_result_f32 lrp(const network& net, const float32_parameters& p, const forward_result_f32& fwd,
                   const lrp_options& options) {
  check_float32_parameters(net, p);
  return lrp_in<float>(
      net, fwd, options, [&p](std::size_t i) { return p.weight[i].data(); },
      [&p](std::size_t i) { return p.bias[i].data(); });
}

lrp_result to_double(const lrp_result_f32& r) {
  lrp_result d;
  const auto widen = [](const std::vector<std::vector<float>>& from, std::vector<std::vector<double>>& to) {
    to.reserve(from.size());
    for (const auto& v : from) to.emplace_back(v.begin(), v.end());
  };
  widen(r.relevance, d.relevance);
  widen(r.bias_relevance, d.bias_relevance);
  d.bias_share = r.bias_share;
  d.target = r.target;
  d.score = r.score;
  return d;
}

}  // namespace provnn::engine
