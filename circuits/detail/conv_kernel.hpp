// The real semiring's kernel for a structured convolution stage (circuits/evaluate.hpp): the
// transposed convolution acc[j] += Σ_k w_jk · ck[k] over every edge the geometry implies, as
// one matrix product per group (Eigen) and a scatter of its columns back to the inputs.
// Padding has no edges and adds nothing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "circuits/circuit.hpp"

namespace provnn::detail {

/// The product's column block, in doubles (8 MB): a block holds whole output rows, so a
/// geometry whose one row needs more (in_channels/group · kernel · out_w) goes to the scatter.
inline constexpr std::size_t conv_transposed_max_block = std::size_t{1} << 20;

/// acc (g.inputs() values) += the transposed convolution of ck (g.outputs() values) with the
/// weights w (g.weights() values, layout (oc, icl, ky, kx)). O(weights · output positions)
/// time, O(conv_transposed_max_block) scratch. Precondition: in_channels/group · kernel_h ·
/// kernel_w · out_w ≤ conv_transposed_max_block.
void conv_transposed_real(const conv_geometry& g, const double* w, const double* ck, double* acc);

/// The scatter that ends a transposed convolution: row (icl, ky, kx) of `cols` (one column
/// per output position oy0 ≤ oy < oy1, all ox) holds what flows to input (ci, oy·sh + ky·dh −
/// pad_top, ox·sw + kx·dw − pad_left) of group grp, which `plus` adds into acc. Padding has
/// no input and gets nothing.
template <class V, class Plus>
void scatter_columns(const conv_geometry& g, std::size_t grp, std::size_t oy0, std::size_t oy1, const V* cols, V* acc,
                     Plus plus) {
  const std::size_t icg = g.in_channels / g.group, pb = (oy1 - oy0) * g.out_w;
  const std::size_t plane = std::size_t{g.in_h} * g.in_w;
  const auto sw = static_cast<std::ptrdiff_t>(g.stride_w), W = static_cast<std::ptrdiff_t>(g.in_w);
  for (std::size_t icl = 0, r = 0; icl < icg; ++icl) {
    V* in = acc + (grp * icg + icl) * plane;
    for (std::size_t ky = 0; ky < g.kernel_h; ++ky)
      for (std::size_t kx = 0; kx < g.kernel_w; ++kx, ++r) {
        const V* row = cols + r * pb;
        const auto offy = static_cast<std::ptrdiff_t>(ky * g.dilation_h) - static_cast<std::ptrdiff_t>(g.pad_top);
        const auto offx = static_cast<std::ptrdiff_t>(kx * g.dilation_w) - static_cast<std::ptrdiff_t>(g.pad_left);
        // the output columns whose input column ox·sw + offx lies inside the image
        const std::ptrdiff_t ox0 = offx >= 0 ? 0 : (-offx + sw - 1) / sw;
        const std::ptrdiff_t ox1 =
            std::min(static_cast<std::ptrdiff_t>(g.out_w), W - offx <= 0 ? 0 : (W - offx + sw - 1) / sw);
        for (std::size_t oy = oy0; oy < oy1; ++oy) {
          const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride_h) + offy;
          if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.in_h)) continue;
          const V* __restrict src = row + (oy - oy0) * g.out_w;
          V* __restrict dst = in + iy * W;
          for (std::ptrdiff_t ox = ox0; ox < ox1; ++ox) dst[ox * sw + offx] = plus(dst[ox * sw + offx], src[ox]);
        }
      }
  }
}

/// The same transposed convolution in a semiring whose ⊕ is max or ∨ over plain values V
/// (Op: static V plus(V, V), times(V, V), and V zero): acc[j] = acc[j] ⊕ w_p ⊗ ck[k] over
/// every edge the geometry implies. Per weight (four output channels at a time) and output
/// plane one contiguous ⊕-⊗ loop the compiler vectorises, into columns (blocks of whole
/// output rows, 256 KB: they stay in L2), then the columns ⊕-scattered to the inputs. ⊕ is
/// exact and order-free, so the value is the edge-by-edge one. Absent weights and units must
/// be zero, which ⊗ makes zero (or NaN, which max ignores) and ⊕ ignores; zero weights are
/// skipped. O(weights · output positions).
template <class Op, class V>
void conv_transposed_semiring(const conv_geometry& g, const V* w, const V* ck, V* acc) {
  const std::size_t icg = g.in_channels / g.group, ocg = g.out_channels / g.group;
  const std::size_t K = icg * g.kernel_h * g.kernel_w, P = std::size_t{g.out_h} * g.out_w;
  const std::size_t rows =
      std::max<std::size_t>(1, (std::size_t{1} << 18) / std::max<std::size_t>(1, K * g.out_w * sizeof(V)));
  thread_local std::vector<V> cols;
  cols.resize(K * std::min<std::size_t>(P, rows * g.out_w));
  for (std::size_t grp = 0; grp < g.group; ++grp)
    for (std::size_t oy0 = 0; oy0 < g.out_h; oy0 += rows) {
      const std::size_t oy1 = std::min<std::size_t>(g.out_h, oy0 + rows), pb = (oy1 - oy0) * g.out_w;
      std::fill(cols.begin(), cols.begin() + static_cast<std::ptrdiff_t>(K * pb), Op::zero);
      // Four output channels per pass over a column row where their weights are all present:
      // the row is read and written once for four products rather than once per product (a
      // third less time for vgg-small's max-plus). Each column still takes the products in
      // output-channel order, as one channel at a time would.
      const std::size_t oc_end = (grp + 1) * ocg;
      for (std::size_t oc0 = grp * ocg; oc0 < oc_end; oc0 += 4) {
        const std::size_t nb = std::min<std::size_t>(4, oc_end - oc0);
        for (std::size_t r = 0; r < K; ++r) {
          V* __restrict dst = cols.data() + r * pb;  // (no alias with src: lets byte loops vectorise)
          bool all = nb == 4;
          for (std::size_t b = 0; b < nb; ++b) all = all && w[(oc0 + b) * K + r] != Op::zero;
          if (all) {
            const V* __restrict s0 = ck + oc0 * P + oy0 * g.out_w;
            const V* __restrict s1 = s0 + P;
            const V* __restrict s2 = s1 + P;
            const V* __restrict s3 = s2 + P;
            const V w0 = w[oc0 * K + r], w1 = w[(oc0 + 1) * K + r], w2 = w[(oc0 + 2) * K + r], w3 = w[(oc0 + 3) * K + r];
            for (std::size_t q = 0; q < pb; ++q)
              dst[q] = Op::plus(
                  Op::plus(Op::plus(Op::plus(dst[q], Op::times(w0, s0[q])), Op::times(w1, s1[q])), Op::times(w2, s2[q])),
                  Op::times(w3, s3[q]));
            continue;
          }
          for (std::size_t b = 0; b < nb; ++b) {
            const V wb = w[(oc0 + b) * K + r];
            if (wb == Op::zero) continue;
            const V* __restrict from = ck + (oc0 + b) * P + oy0 * g.out_w;
            for (std::size_t q = 0; q < pb; ++q) dst[q] = Op::plus(dst[q], Op::times(wb, from[q]));
          }
        }
      }
      scatter_columns(g, grp, oy0, oy1, cols.data(), acc, [](V a, V b) { return Op::plus(a, b); });
    }
}

}  // namespace provnn::detail
