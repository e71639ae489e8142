#include "engine/conv_gemm.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <vector>

#include "engine/geometry.hpp"

namespace provnn::engine::detail {
namespace {

using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using const_view = Eigen::Map<const row_matrix>;
using view = Eigen::Map<row_matrix>;

struct conv_dims {
  std::ptrdiff_t H, W, OH, OW;
  std::size_t icg, ocg, K, P;
  conv_dims(const conv2d_op& c, const shape_t& in, const shape_t& out)
      : H(static_cast<std::ptrdiff_t>(in[1])),
        W(static_cast<std::ptrdiff_t>(in[2])),
        OH(static_cast<std::ptrdiff_t>(out[1])),
        OW(static_cast<std::ptrdiff_t>(out[2])),
        icg(c.in_channels / c.group),
        ocg(c.out_channels / c.group),
        K(icg * c.kernel_h * c.kernel_w),
        P(out[1] * out[2]) {}
  std::size_t in_plane() const noexcept { return static_cast<std::size_t>(H * W); }
};

// f(row, input plane offset of the tap's first real position, oy0, oy1, ox0, ox1, offy, offx)
// for every row (c, ky, kx) of cols: the real positions are oy ∈ [oy0, oy1), ox ∈ [ox0, ox1),
// reading x[c, oy·sh + offy, ox·sw + offx].
template <class F>
void for_each_tap(const conv2d_op& c, const conv_dims& d, F&& f) {
  const auto sh = static_cast<std::ptrdiff_t>(c.stride_h), sw = static_cast<std::ptrdiff_t>(c.stride_w);
  std::size_t row = 0;
  for (std::size_t ic = 0; ic < d.icg; ++ic)
    for (std::size_t ky = 0; ky < c.kernel_h; ++ky) {
      const auto offy = static_cast<std::ptrdiff_t>(ky * c.dilation_h) - static_cast<std::ptrdiff_t>(c.pad_top);
      const auto [oy0, oy1] = valid_range(offy, sh, d.H, d.OH);
      for (std::size_t kx = 0; kx < c.kernel_w; ++kx, ++row) {
        const auto offx = static_cast<std::ptrdiff_t>(kx * c.dilation_w) - static_cast<std::ptrdiff_t>(c.pad_left);
        const auto [ox0, ox1] = valid_range(offx, sw, d.W, d.OW);
        f(row, ic * d.in_plane(), oy0, oy1, ox0, ox1, offy, offx);
      }
    }
}

// cols (K × P) from one group's input planes xg.
void im2col(const conv2d_op& c, const conv_dims& d, const double* xg, double* cols) {
  const auto sh = static_cast<std::ptrdiff_t>(c.stride_h), sw = static_cast<std::ptrdiff_t>(c.stride_w);
  for_each_tap(c, d, [&](std::size_t row, std::size_t plane, auto oy0, auto oy1, auto ox0, auto ox1, auto offy,
                         auto offx) {
    double* r = cols + row * d.P;
    std::fill(r, r + d.P, 0.0);
    if (ox0 >= ox1) return;
    for (std::ptrdiff_t oy = oy0; oy < oy1; ++oy) {
      const double* src = xg + plane + (oy * sh + offy) * d.W + offx;
      double* dst = r + oy * d.OW;
      for (std::ptrdiff_t ox = ox0; ox < ox1; ++ox) dst[ox] = src[ox * sw];
    }
  });
}

// acc_g[input of (row, position)] += cols[row, position] over the real positions.
void col2im_add(const conv2d_op& c, const conv_dims& d, const double* cols, double* accg) {
  const auto sh = static_cast<std::ptrdiff_t>(c.stride_h), sw = static_cast<std::ptrdiff_t>(c.stride_w);
  for_each_tap(c, d, [&](std::size_t row, std::size_t plane, auto oy0, auto oy1, auto ox0, auto ox1, auto offy,
                         auto offx) {
    if (ox0 >= ox1) return;
    const double* r = cols + row * d.P;
    for (std::ptrdiff_t oy = oy0; oy < oy1; ++oy) {
      double* dst = accg + plane + (oy * sh + offy) * d.W + offx;
      const double* src = r + oy * d.OW;
      for (std::ptrdiff_t ox = ox0; ox < ox1; ++ox) dst[ox * sw] += src[ox];
    }
  });
}

// Scratch per thread, kept between calls: fresh pages cost more than the products.
std::vector<double>& scratch(int which, std::size_t n) {
  thread_local std::vector<double> buffers[3];
  auto& b = buffers[which];
  if (b.size() < n) b.resize(n);
  return b;
}

// [W⁺; W⁻] of group g (2·ocg × K).
void split_weights(const conv2d_op& c, const conv_dims& d, std::size_t g, double* out) {
  const double* w = c.weight.data() + g * d.ocg * d.K;
  const std::size_t n = d.ocg * d.K;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = w[i] >= 0 ? w[i] : 0.0;
    out[n + i] = w[i] < 0 ? w[i] : 0.0;
  }
}

}  // namespace

void conv_forward_gemm(const conv2d_op& c, const shape_t& in, const shape_t& out, const double* x, double* y) {
  const conv_dims d(c, in, out);
  double* cols = scratch(0, d.K * d.P).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    im2col(c, d, x + g * d.icg * d.in_plane(), cols);
    view yg(y + g * d.ocg * d.P, static_cast<Eigen::Index>(d.ocg), static_cast<Eigen::Index>(d.P));
    yg.noalias() = const_view(c.weight.data() + g * d.ocg * d.K, static_cast<Eigen::Index>(d.ocg),
                              static_cast<Eigen::Index>(d.K)) *
                   const_view(cols, static_cast<Eigen::Index>(d.K), static_cast<Eigen::Index>(d.P));
    for (std::size_t m = 0; m < d.ocg; ++m) yg.row(static_cast<Eigen::Index>(m)).array() += c.bias[g * d.ocg + m];
  }
}

void conv_transposed_gemm(const conv2d_op& c, const shape_t& in, const shape_t& out, const double* ck,
                          double* acc) {
  const conv_dims d(c, in, out);
  double* cols = scratch(0, d.K * d.P).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    view(cols, static_cast<Eigen::Index>(d.K), static_cast<Eigen::Index>(d.P)).noalias() =
        const_view(c.weight.data() + g * d.ocg * d.K, static_cast<Eigen::Index>(d.ocg), static_cast<Eigen::Index>(d.K))
            .transpose() *
        const_view(ck + g * d.ocg * d.P, static_cast<Eigen::Index>(d.ocg), static_cast<Eigen::Index>(d.P));
    col2im_add(c, d, cols, acc + g * d.icg * d.in_plane());
  }
}

void conv_split_gemm(const conv2d_op& c, const shape_t& in, const shape_t& out, const double* x, double* pos,
                     double* neg) {
  const conv_dims d(c, in, out);
  double* cols = scratch(0, d.K * d.P).data();
  double* ws = scratch(1, 2 * d.ocg * d.K).data();
  double* r = scratch(2, 2 * d.ocg * d.P).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    im2col(c, d, x + g * d.icg * d.in_plane(), cols);
    split_weights(c, d, g, ws);
    view(r, static_cast<Eigen::Index>(2 * d.ocg), static_cast<Eigen::Index>(d.P)).noalias() =
        const_view(ws, static_cast<Eigen::Index>(2 * d.ocg), static_cast<Eigen::Index>(d.K)) *
        const_view(cols, static_cast<Eigen::Index>(d.K), static_cast<Eigen::Index>(d.P));
    const std::size_t n = d.ocg * d.P, base = g * n;
    for (std::size_t i = 0; i < n; ++i) {
      pos[base + i] += r[i];
      neg[base + i] += r[n + i];
    }
  }
}

void conv_split_transposed_gemm(const conv2d_op& c, const shape_t& in, const shape_t& out, const double* cp,
                                const double* cn, double* acc) {
  const conv_dims d(c, in, out);
  double* cols = scratch(0, d.K * d.P).data();
  double* ws = scratch(1, 2 * d.ocg * d.K).data();
  double* stacked = scratch(2, 2 * d.ocg * d.P).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    split_weights(c, d, g, ws);
    const std::size_t n = d.ocg * d.P;
    std::copy(cp + g * n, cp + (g + 1) * n, stacked);
    std::copy(cn + g * n, cn + (g + 1) * n, stacked + n);
    view(cols, static_cast<Eigen::Index>(d.K), static_cast<Eigen::Index>(d.P)).noalias() =
        const_view(ws, static_cast<Eigen::Index>(2 * d.ocg), static_cast<Eigen::Index>(d.K)).transpose() *
        const_view(stacked, static_cast<Eigen::Index>(2 * d.ocg), static_cast<Eigen::Index>(d.P));
    col2im_add(c, d, cols, acc + g * d.icg * d.in_plane());
  }
}

}  // namespace provnn::engine::detail
