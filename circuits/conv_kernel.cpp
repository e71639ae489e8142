#include "circuits/detail/conv_kernel.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace provnn::detail {

namespace {
using matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
Eigen::Index ix(std::size_t v) noexcept { return static_cast<Eigen::Index>(v); }
}  // namespace

void conv_transposed_real(const conv_geometry& g, const double* w, const double* ck, double* acc) {
  const std::size_t icg = g.in_channels / g.group, ocg = g.out_channels / g.group;
  const std::size_t K = icg * g.kernel_h * g.kernel_w, P = std::size_t{g.out_h} * g.out_w;
  const std::size_t plane = std::size_t{g.in_h} * g.in_w;
  // Output positions in blocks of whole rows, so that the product stays near 8 MB.
  const std::size_t rows = std::max<std::size_t>(1, conv_transposed_max_block / std::max<std::size_t>(1, K * g.out_w));
  thread_local std::vector<double> cols;
  cols.resize(K * std::min<std::size_t>(P, rows * g.out_w));
  using strided = Eigen::Map<const matrix, 0, Eigen::OuterStride<>>;
  for (std::size_t grp = 0; grp < g.group; ++grp) {
    const Eigen::Map<const matrix> wg(w + grp * ocg * K, ix(ocg), ix(K));
    for (std::size_t oy0 = 0; oy0 < g.out_h; oy0 += rows) {
      const std::size_t oy1 = std::min<std::size_t>(g.out_h, oy0 + rows), pb = (oy1 - oy0) * g.out_w;
      Eigen::Map<matrix>(cols.data(), ix(K), ix(pb)).noalias() =
          wg.transpose() * strided(ck + grp * ocg * P + oy0 * g.out_w, ix(ocg), ix(pb), Eigen::OuterStride<>(ix(P)));
      // Row (icl, ky, kx) of the product holds, per output position, what flows to input
      // (ci, oy·sh + ky·dh − pad_top, ox·sw + kx·dw − pad_left).
      for (std::size_t icl = 0, r = 0; icl < icg; ++icl) {
        double* in = acc + (grp * icg + icl) * plane;
        for (std::size_t ky = 0; ky < g.kernel_h; ++ky)
          for (std::size_t kx = 0; kx < g.kernel_w; ++kx, ++r) {
            const double* row = cols.data() + r * pb;
            const auto offy = static_cast<std::ptrdiff_t>(ky * g.dilation_h) - static_cast<std::ptrdiff_t>(g.pad_top);
            const auto offx = static_cast<std::ptrdiff_t>(kx * g.dilation_w) - static_cast<std::ptrdiff_t>(g.pad_left);
            // the output columns whose input column ox·sw + offx lies inside the image
            const auto sw = static_cast<std::ptrdiff_t>(g.stride_w), W = static_cast<std::ptrdiff_t>(g.in_w);
            const std::ptrdiff_t ox0 = offx >= 0 ? 0 : (-offx + sw - 1) / sw;
            const std::ptrdiff_t ox1 =
                std::min(static_cast<std::ptrdiff_t>(g.out_w), W - offx <= 0 ? 0 : (W - offx + sw - 1) / sw);
            for (std::size_t oy = oy0; oy < oy1; ++oy) {
              const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride_h) + offy;
              if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.in_h)) continue;
              const double* src = row + (oy - oy0) * g.out_w;
              double* dst = in + iy * W;
              for (std::ptrdiff_t ox = ox0; ox < ox1; ++ox) dst[ox * sw + offx] += src[ox];
            }
          }
      }
    }
  }
}

}  // namespace provnn::detail
