#include "engine/conv_gemm.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <vector>

#include "engine/geometry.hpp"

namespace provnn::engine::detail {
namespace {

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using const_view = Eigen::Map<const row_matrix<T>>;
template <class T>
using view = Eigen::Map<row_matrix<T>>;

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

// The columns of cols are taken in blocks of at most `block_columns(K)` output positions, so
// that the scratch stays near 8 MB whatever the image size (a 224×224 VGG layer would
// otherwise need K·P ≈ 231 MB per thread).
std::size_t block_elements = std::size_t{1} << 20;
std::size_t block_columns(std::size_t K) noexcept { return std::max<std::size_t>(1, block_elements / K); }

// cols (K × (p1 − p0)) of output positions [p0, p1) from one group's input planes xg.
template <class T>
void im2col(const conv2d_op& c, const conv_dims& d, const T* xg, std::size_t p0, std::size_t p1, T* cols) {
  const auto sh = static_cast<std::ptrdiff_t>(c.stride_h), sw = static_cast<std::ptrdiff_t>(c.stride_w);
  const std::size_t pb = p1 - p0;
  const auto q0 = static_cast<std::ptrdiff_t>(p0), q1 = static_cast<std::ptrdiff_t>(p1);
  for_each_tap(c, d, [&](std::size_t row, std::size_t plane, auto oy0, auto oy1, auto ox0, auto ox1, auto offy,
                         auto offx) {
    T* r = cols + row * pb;
    std::fill(r, r + pb, T{0});
    if (ox0 >= ox1) return;
    for (std::ptrdiff_t oy = std::max(oy0, q0 / d.OW); oy < oy1 && oy * d.OW < q1; ++oy) {
      const std::ptrdiff_t a = std::max(ox0, q0 - oy * d.OW), e = std::min(ox1, q1 - oy * d.OW);
      // input index of (oy, ox): plane + (oy·sh + offy)·W + ox·sw + offx, ≥ 0 for real positions
      const std::ptrdiff_t in0 = static_cast<std::ptrdiff_t>(plane) + (oy * sh + offy) * d.W + offx;
      const std::ptrdiff_t out0 = oy * d.OW - q0;
      for (std::ptrdiff_t ox = a; ox < e; ++ox) r[out0 + ox] = xg[in0 + ox * sw];
    }
  });
}

// accg[input of (row, position)] += cols[row, position − p0] over the real positions in [p0, p1).
template <class T>
void col2im_add(const conv2d_op& c, const conv_dims& d, const T* cols, std::size_t p0, std::size_t p1, T* accg) {
  const auto sh = static_cast<std::ptrdiff_t>(c.stride_h), sw = static_cast<std::ptrdiff_t>(c.stride_w);
  const std::size_t pb = p1 - p0;
  const auto q0 = static_cast<std::ptrdiff_t>(p0), q1 = static_cast<std::ptrdiff_t>(p1);
  for_each_tap(c, d, [&](std::size_t row, std::size_t plane, auto oy0, auto oy1, auto ox0, auto ox1, auto offy,
                         auto offx) {
    if (ox0 >= ox1) return;
    const T* r = cols + row * pb;
    for (std::ptrdiff_t oy = std::max(oy0, q0 / d.OW); oy < oy1 && oy * d.OW < q1; ++oy) {
      const std::ptrdiff_t a = std::max(ox0, q0 - oy * d.OW), e = std::min(ox1, q1 - oy * d.OW);
      const std::ptrdiff_t in0 = static_cast<std::ptrdiff_t>(plane) + (oy * sh + offy) * d.W + offx;
      const std::ptrdiff_t out0 = oy * d.OW - q0;
      for (std::ptrdiff_t ox = a; ox < e; ++ox) accg[in0 + ox * sw] += r[out0 + ox];
    }
  });
}

// Scratch per thread and precision, kept between calls: fresh pages cost more than the products.
template <class T>
std::vector<T>& scratch(int which, std::size_t n) {
  thread_local std::vector<T> buffers[3];
  auto& b = buffers[which];
  if (b.size() < n) b.resize(n);
  return b;
}

// [W⁺; W⁻] of group g (2·ocg × K).
template <class T>
void split_weights(const conv_dims& d, const T* weight, std::size_t g, T* out) {
  const T* w = weight + g * d.ocg * d.K;
  const std::size_t n = d.ocg * d.K;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = w[i] >= 0 ? w[i] : T{0};
    out[n + i] = w[i] < 0 ? w[i] : T{0};
  }
}

template <class T>
using strided_view = Eigen::Map<row_matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using const_strided_view = Eigen::Map<const row_matrix<T>, 0, Eigen::OuterStride<>>;
Eigen::Index ix(std::size_t v) noexcept { return static_cast<Eigen::Index>(v); }

}  // namespace

void set_conv_gemm_block(std::size_t elements) noexcept { block_elements = std::max<std::size_t>(1, elements); }

template <class T>
void conv_forward_gemm(const conv2d_op& c, const T* weight, const T* bias, const shape_t& in, const shape_t& out,
                       const T* x, T* y) {
  const conv_dims d(c, in, out);
  const std::size_t pb_max = std::min(d.P, block_columns(d.K));
  T* cols = scratch<T>(0, d.K * pb_max).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    const const_view<T> w(weight + g * d.ocg * d.K, ix(d.ocg), ix(d.K));
    T* yg = y + g * d.ocg * d.P;
    for (std::size_t p0 = 0; p0 < d.P; p0 += pb_max) {
      const std::size_t p1 = std::min(d.P, p0 + pb_max), pb = p1 - p0;
      im2col(c, d, x + g * d.icg * d.in_plane(), p0, p1, cols);
      strided_view<T>(yg + p0, ix(d.ocg), ix(pb), Eigen::OuterStride<>(ix(d.P))).noalias() =
          w * const_view<T>(cols, ix(d.K), ix(pb));
    }
    view<T> yv(yg, ix(d.ocg), ix(d.P));
    for (std::size_t m = 0; m < d.ocg; ++m) yv.row(ix(m)).array() += bias[g * d.ocg + m];
  }
}

template <class T>
void conv_transposed_gemm(const conv2d_op& c, const T* weight, const shape_t& in, const shape_t& out, const T* ck,
                          T* acc) {
  const conv_dims d(c, in, out);
  const std::size_t pb_max = std::min(d.P, block_columns(d.K));
  T* cols = scratch<T>(0, d.K * pb_max).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    const const_view<T> w(weight + g * d.ocg * d.K, ix(d.ocg), ix(d.K));
    for (std::size_t p0 = 0; p0 < d.P; p0 += pb_max) {
      const std::size_t p1 = std::min(d.P, p0 + pb_max), pb = p1 - p0;
      view<T>(cols, ix(d.K), ix(pb)).noalias() =
          w.transpose() * const_strided_view<T>(ck + g * d.ocg * d.P + p0, ix(d.ocg), ix(pb), Eigen::OuterStride<>(ix(d.P)));
      col2im_add(c, d, cols, p0, p1, acc + g * d.icg * d.in_plane());
    }
  }
}

template <class T>
void conv_split_gemm(const conv2d_op& c, const T* weight, const shape_t& in, const shape_t& out, const T* x, T* pos,
                     T* neg) {
  const conv_dims d(c, in, out);
  const std::size_t pb_max = std::min(d.P, block_columns(d.K));
  T* cols = scratch<T>(0, d.K * pb_max).data();
  T* ws = scratch<T>(1, 2 * d.ocg * d.K).data();
  T* r = scratch<T>(2, 2 * d.ocg * pb_max).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    split_weights(d, weight, g, ws);
    for (std::size_t p0 = 0; p0 < d.P; p0 += pb_max) {
      const std::size_t p1 = std::min(d.P, p0 + pb_max), pb = p1 - p0;
      im2col(c, d, x + g * d.icg * d.in_plane(), p0, p1, cols);
      view<T>(r, ix(2 * d.ocg), ix(pb)).noalias() =
          const_view<T>(ws, ix(2 * d.ocg), ix(d.K)) * const_view<T>(cols, ix(d.K), ix(pb));
      for (std::size_t m = 0; m < d.ocg; ++m) {
        T* pk = pos + (g * d.ocg + m) * d.P + p0;
        T* nk = neg + (g * d.ocg + m) * d.P + p0;
        const T* rp = r + m * pb;
        const T* rn = r + (d.ocg + m) * pb;
        for (std::size_t t = 0; t < pb; ++t) {
          pk[t] += rp[t];
          nk[t] += rn[t];
        }
      }
    }
  }
}

template <class T>
void conv_split_transposed_gemm(const conv2d_op& c, const T* weight, const shape_t& in, const shape_t& out,
                                const T* cp, const T* cn, T* acc) {
  const conv_dims d(c, in, out);
  const std::size_t pb_max = std::min(d.P, block_columns(d.K));
  T* cols = scratch<T>(0, d.K * pb_max).data();
  T* ws = scratch<T>(1, 2 * d.ocg * d.K).data();
  T* stacked = scratch<T>(2, 2 * d.ocg * pb_max).data();
  for (std::size_t g = 0; g < c.group; ++g) {
    split_weights(d, weight, g, ws);
    for (std::size_t p0 = 0; p0 < d.P; p0 += pb_max) {
      const std::size_t p1 = std::min(d.P, p0 + pb_max), pb = p1 - p0;
      for (std::size_t m = 0; m < d.ocg; ++m) {
        const std::size_t k0 = (g * d.ocg + m) * d.P + p0;
        std::copy(cp + k0, cp + k0 + pb, stacked + m * pb);
        std::copy(cn + k0, cn + k0 + pb, stacked + (d.ocg + m) * pb);
      }
      view<T>(cols, ix(d.K), ix(pb)).noalias() =
          const_view<T>(ws, ix(2 * d.ocg), ix(d.K)).transpose() * const_view<T>(stacked, ix(2 * d.ocg), ix(pb));
      col2im_add(c, d, cols, p0, p1, acc + g * d.icg * d.in_plane());
    }
  }
}

// The two precisions of the numeric passes (forward.hpp): fp64, and fp32 with float32_parameters.
#define PROVNN_CONV_GEMM(T)                                                                                        \
  template void conv_forward_gemm<T>(const conv2d_op&, const T*, const T*, const shape_t&, const shape_t&, const T*, \
                                     T*);                                                                         \
  template void conv_transposed_gemm<T>(const conv2d_op&, const T*, const shape_t&, const shape_t&, const T*, T*);  \
  template void conv_split_gemm<T>(const conv2d_op&, const T*, const shape_t&, const shape_t&, const T*, T*, T*);   \
  template void conv_split_transposed_gemm<T>(const conv2d_op&, const T*, const shape_t&, const shape_t&, const T*, \
                                              const T*, T*);
PROVNN_CONV_GEMM(double)
PROVNN_CONV_GEMM(float)
#undef PROVNN_CONV_GEMM

}  // namespace provnn::engine::detail
