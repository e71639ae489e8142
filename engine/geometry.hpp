// The edges of linear layers, enumerated once for every pass that walks them (numeric LRP,
// the circuit builder). The circuit builder's order of terms is part of its contract (the
// fused and plain layouts are compared byte for byte). Numeric LRP walks the same runs,
// except for the convolution sweeps that run as matrix products (conv_gemm.hpp: the forward
// pass, ε, γ on non-negative inputs), which sum the same terms grouped differently; the
// circuit's real values match it up to rounding, as they do anyway through the circuit's own
// sums (compensated ⊕, four-way and eight-way fused sums).
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include "common/error.hpp"
#include "engine/network.hpp"

namespace provnn::engine::detail {

/// Output positions o in [lo, hi) whose input coordinate o·stride + off lies in [0, n).
inline std::pair<std::ptrdiff_t, std::ptrdiff_t> valid_range(std::ptrdiff_t off, std::ptrdiff_t stride,
                                                             std::ptrdiff_t n, std::ptrdiff_t n_out) noexcept {
  const std::ptrdiff_t lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  const std::ptrdiff_t last = n - 1 - off;  // o·stride ≤ last
  std::ptrdiff_t hi = last < 0 ? 0 : last / stride + 1;
  hi = std::min(hi, n_out);
  return {std::min(lo, hi), hi};
}

/// Convolution edges as runs: f(k0, j0, n, p, w) for every run of edges k0 + t ← j0 + t·stride_w
/// (t < n) sharing weight number p (flat index into op.weight) of value w, per kernel tap and
/// output row, over the output positions whose input is real. Order: output channel, input
/// channel of its group, kernel row, kernel column, output row. Padding has no edges, so padded
/// inputs count for nothing in any rule (Zennit pads every modified input with 0; flat's fan-in
/// counts real inputs). Preconditions: in and out are (C, H, W) shapes of the layer.
template <class F>
void conv_runs(const conv2d_op& c, const shape_t& in, const shape_t& out, F&& f) {
  PROVNN_ASSERT(in.size() == 3 && out.size() == 3);
  const std::size_t h = in[1], w = in[2], oh = out[1], ow = out[2];
  const std::size_t icg = c.in_channels / c.group, ocg = c.out_channels / c.group;
  const auto H = static_cast<std::ptrdiff_t>(h), W = static_cast<std::ptrdiff_t>(w);
  const auto OH = static_cast<std::ptrdiff_t>(oh), OW = static_cast<std::ptrdiff_t>(ow);
  const auto sh = static_cast<std::ptrdiff_t>(c.stride_h), sw = static_cast<std::ptrdiff_t>(c.stride_w);
  std::size_t p = 0;
  for (std::size_t oc = 0; oc < c.out_channels; ++oc) {
    const std::size_t grp = oc / ocg;
    const std::size_t out_base = oc * oh * ow;
    for (std::size_t icl = 0; icl < icg; ++icl) {
      const std::size_t in_base = (grp * icg + icl) * h * w;
      for (std::size_t ky = 0; ky < c.kernel_h; ++ky) {
        const auto offy = static_cast<std::ptrdiff_t>(ky * c.dilation_h) - static_cast<std::ptrdiff_t>(c.pad_top);
        const auto [oy0, oy1] = valid_range(offy, sh, H, OH);
        for (std::size_t kx = 0; kx < c.kernel_w; ++kx, ++p) {
          const double wv = c.weight[p];
          const auto offx = static_cast<std::ptrdiff_t>(kx * c.dilation_w) - static_cast<std::ptrdiff_t>(c.pad_left);
          const auto [ox0, ox1] = valid_range(offx, sw, W, OW);
          if (ox0 >= ox1) continue;
          for (std::ptrdiff_t oy = oy0; oy < oy1; ++oy) {
            const std::size_t k0 = out_base + static_cast<std::size_t>(oy * OW + ox0);
            const auto j0 =
                static_cast<std::size_t>(static_cast<std::ptrdiff_t>(in_base) + (oy * sh + offy) * W + offx + ox0 * sw);
            f(k0, j0, static_cast<std::size_t>(ox1 - ox0), p, wv);
          }
        }
      }
    }
  }
}

/// Pooling windows: f(k, j) for every real (unpadded) input j of output unit k, in window
/// order (row-major over the kernel). Preconditions: (C, H, W) shapes.
template <class F>
void pool_edges(const pool_op& p, const shape_t& in, const shape_t& out, F&& f) {
  PROVNN_ASSERT(in.size() == 3 && out.size() == 3);
  const auto C = in[0];
  const auto H = static_cast<std::ptrdiff_t>(in[1]), W = static_cast<std::ptrdiff_t>(in[2]);
  const auto OH = static_cast<std::ptrdiff_t>(out[1]), OW = static_cast<std::ptrdiff_t>(out[2]);
  for (std::size_t ch = 0; ch < C; ++ch)
    for (std::ptrdiff_t oy = 0; oy < OH; ++oy)
      for (std::ptrdiff_t ox = 0; ox < OW; ++ox) {
        const std::size_t k = (ch * static_cast<std::size_t>(OH) + static_cast<std::size_t>(oy)) *
                                  static_cast<std::size_t>(OW) + static_cast<std::size_t>(ox);
        for (std::size_t ky = 0; ky < p.kernel_h; ++ky) {
          const std::ptrdiff_t iy = oy * static_cast<std::ptrdiff_t>(p.stride_h) + static_cast<std::ptrdiff_t>(ky) -
                                    static_cast<std::ptrdiff_t>(p.pad_top);
          if (iy < 0 || iy >= H) continue;
          for (std::size_t kx = 0; kx < p.kernel_w; ++kx) {
            const std::ptrdiff_t ix = ox * static_cast<std::ptrdiff_t>(p.stride_w) +
                                      static_cast<std::ptrdiff_t>(kx) - static_cast<std::ptrdiff_t>(p.pad_left);
            if (ix < 0 || ix >= W) continue;
            f(k, (ch * static_cast<std::size_t>(H) + static_cast<std::size_t>(iy)) * static_cast<std::size_t>(W) +
                     static_cast<std::size_t>(ix));
          }
        }
      }
}

}  // namespace provnn::engine::detail
