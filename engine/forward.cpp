#include "engine/forward.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.hpp"
#include "engine/conv_gemm.hpp"

namespace provnn::engine {
namespace {

// Networks may be built by hand (tests, the LRP code), not only by the importer: check the
// sizes the loops rely on, so a malformed network is an error and never an out-of-bounds read.
[[noreturn]] void bad_layer(const network& net, std::size_t i, const std::string& what) {
  throw error(
      fmt::format("{}: layer {} ('{}', {}): {}", net.source, i, net.layers[i].name, net.layers[i].op_type, what));
}

void check_layer(const network& net, std::size_t i, const shape_t& in_shape) {
  const layer& l = net.layers[i];
  if (l.in_shape != in_shape) bad_layer(net, i, "its input shape differs from the previous layer's output shape");
  const std::size_t n_in = element_count(l.in_shape), n_out = element_count(l.out_shape);
  if (n_in > std::numeric_limits<std::uint32_t>::max()) bad_layer(net, i, "the input has more than 2^32 elements");
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, dense_op>) {
          if (op.in != n_in || op.out != n_out || op.weight.size() != op.in * op.out || op.bias.size() != op.out)
            bad_layer(net, i, "dense sizes (in, out, weight, bias) do not match the shapes");
        } else if constexpr (std::is_same_v<T, conv2d_op>) {
          if (l.in_shape.size() != 3 || l.out_shape.size() != 3 || op.group == 0 || op.in_channels != l.in_shape[0] ||
              op.out_channels != l.out_shape[0] || op.in_channels % op.group != 0 || op.out_channels % op.group != 0 ||
              op.weight.size() != op.out_channels * (op.in_channels / op.group) * op.kernel_h * op.kernel_w ||
              op.bias.size() != op.out_channels || op.stride_h == 0 || op.stride_w == 0 || op.dilation_h == 0 ||
              op.dilation_w == 0 || op.kernel_h == 0 || op.kernel_w == 0)
            bad_layer(net, i, "convolution sizes do not match the shapes");
          const std::size_t eh = (op.kernel_h - 1) * op.dilation_h + 1, ew = (op.kernel_w - 1) * op.dilation_w + 1;
          const std::size_t ph = l.in_shape[1] + op.pad_top + op.pad_bottom,
                            pw = l.in_shape[2] + op.pad_left + op.pad_right;
          if (ph < eh || pw < ew || l.out_shape[1] != (ph - eh) / op.stride_h + 1 ||
              l.out_shape[2] != (pw - ew) / op.stride_w + 1)
            bad_layer(net, i,
                      "the convolution's output shape does not follow from its input, kernel, pads and strides");
        } else if constexpr (std::is_same_v<T, pool_op>) {
          if (l.in_shape.size() != 3 || l.out_shape.size() != 3 || l.out_shape[0] != l.in_shape[0] ||
              op.kernel_h == 0 || op.kernel_w == 0 || op.stride_h == 0 || op.stride_w == 0 ||
              op.pad_top >= op.kernel_h || op.pad_bottom >= op.kernel_h || op.pad_left >= op.kernel_w ||
              op.pad_right >= op.kernel_w)
            bad_layer(net, i, "pooling sizes do not match the shapes (or a pad is not smaller than the kernel)");
          const std::size_t ph = l.in_shape[1] + op.pad_top + op.pad_bottom,
                            pw = l.in_shape[2] + op.pad_left + op.pad_right;
          if (ph < op.kernel_h || pw < op.kernel_w || l.out_shape[1] != (ph - op.kernel_h) / op.stride_h + 1 ||
              l.out_shape[2] != (pw - op.kernel_w) / op.stride_w + 1)
            bad_layer(net, i, "the pooling output shape does not follow from its input, kernel, pads and strides");
        } else {
          if (n_in != n_out) bad_layer(net, i, "input and output sizes differ");
        }
      },
      l.op);
}

// z = W·a + b as Eigen's matrix-vector product (vectorised for the build's CPU; a scalar
// loop waits for each addition, ≈ 4× slower on 784-300-100-10).
void dense(const dense_op& d, const double* a, double* z) {
  using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto in = static_cast<Eigen::Index>(d.in), out = static_cast<Eigen::Index>(d.out);
  Eigen::Map<Eigen::VectorXd> zv(z, out);
  zv.noalias() = Eigen::Map<const row_matrix>(d.weight.data(), out, in) * Eigen::Map<const Eigen::VectorXd>(a, in);
  zv += Eigen::Map<const Eigen::VectorXd>(d.bias.data(), out);
}

// Convolutions run as matrix products (engine/conv_gemm.hpp): im2col and Eigen's GEMM.
void conv(const conv2d_op& c, const shape_t& in_shape, const shape_t& out_shape, const double* x, double* y) {
  detail::conv_forward_gemm(c, in_shape, out_shape, x, y);
}

void pool(const pool_op& p, const shape_t& in_shape, const shape_t& out_shape, const double* x, double* y,
          std::vector<std::uint32_t>& argmax) {
  const std::size_t C = in_shape[0], H = in_shape[1], W = in_shape[2], OH = out_shape[1], OW = out_shape[2];
  const bool is_max = p.mode == pool_op::kind::max;
  if (is_max) argmax.resize(C * OH * OW);
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t oy = 0; oy < OH; ++oy)
      for (std::size_t ox = 0; ox < OW; ++ox) {
        const std::ptrdiff_t y0 = static_cast<std::ptrdiff_t>(oy * p.stride_h) - static_cast<std::ptrdiff_t>(p.pad_top);
        const std::ptrdiff_t x0 =
            static_cast<std::ptrdiff_t>(ox * p.stride_w) - static_cast<std::ptrdiff_t>(p.pad_left);
        const std::ptrdiff_t ya = std::max<std::ptrdiff_t>(y0, 0), xa = std::max<std::ptrdiff_t>(x0, 0);
        const std::ptrdiff_t yb =
            std::min<std::ptrdiff_t>(y0 + static_cast<std::ptrdiff_t>(p.kernel_h), static_cast<std::ptrdiff_t>(H));
        const std::ptrdiff_t xb =
            std::min<std::ptrdiff_t>(x0 + static_cast<std::ptrdiff_t>(p.kernel_w), static_cast<std::ptrdiff_t>(W));
        const std::size_t o = (c * OH + oy) * OW + ox;
        // Pads are smaller than the kernel (checked), so every window holds a real input.
        if (is_max) {
          std::size_t best = c * H * W + static_cast<std::size_t>(ya) * W + static_cast<std::size_t>(xa);
          double v = x[best];
          for (std::ptrdiff_t iy = ya; iy < yb; ++iy)
            for (std::ptrdiff_t ix = xa; ix < xb; ++ix) {
              const std::size_t idx = c * H * W + static_cast<std::size_t>(iy) * W + static_cast<std::size_t>(ix);
              if (x[idx] > v) v = x[idx], best = idx;  // strict: the first maximum wins ties
            }
          y[o] = v;
          argmax[o] = static_cast<std::uint32_t>(best);
        } else {
          double s = 0.0;
          for (std::ptrdiff_t iy = ya; iy < yb; ++iy)
            for (std::ptrdiff_t ix = xa; ix < xb; ++ix)
              s += x[c * H * W + static_cast<std::size_t>(iy) * W + static_cast<std::size_t>(ix)];
          const std::size_t n =
              p.count_include_pad ? p.kernel_h * p.kernel_w : static_cast<std::size_t>((yb - ya) * (xb - xa));
          y[o] = s / static_cast<double>(n);
        }
      }
}

}  // namespace

forward_result forward(const network& net, std::span<const double> input) {
  const std::size_t n = element_count(net.input_shape);
  if (input.size() != n)
    throw error(fmt::format("{}: the input has {} values, but the network expects shape ({}) = {} values", net.source,
                            input.size(), fmt::join(net.input_shape, ", "), n));
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(input[i]))
      throw error(fmt::format("{}: input value {} at flat index {} is not finite", net.source, input[i], i));
  forward_result r;
  r.activations.reserve(net.layers.size() + 1);
  r.activations.emplace_back(input.begin(), input.end());
  r.argmax.resize(net.layers.size());
  shape_t shape = net.input_shape;
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    check_layer(net, i, shape);
    const layer& l = net.layers[i];
    const std::vector<double>& a = r.activations.back();
    std::vector<double> z(element_count(l.out_shape));
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, dense_op>)
            dense(op, a.data(), z.data());
          else if constexpr (std::is_same_v<T, conv2d_op>)
            conv(op, l.in_shape, l.out_shape, a.data(), z.data());
          else if constexpr (std::is_same_v<T, pool_op>)
            pool(op, l.in_shape, l.out_shape, a.data(), z.data(), r.argmax[i]);
          else if constexpr (std::is_same_v<T, relu_op>)
            for (std::size_t k = 0; k < z.size(); ++k) z[k] = a[k] > 0.0 ? a[k] : 0.0;
          else
            std::copy(a.begin(), a.end(), z.begin());
        },
        l.op);
    r.activations.push_back(std::move(z));
    shape = l.out_shape;
  }
  return r;
}

void check_forward_result(const network& net, const forward_result& fwd) {
  const std::size_t L = net.layers.size();
  if (fwd.activations.size() != L + 1)
    throw error(fmt::format("forward result has {} activation arrays but network '{}' has {} layers (expected {})",
                            fwd.activations.size(), net.source, L, L + 1));
  for (std::size_t i = 0; i <= L; ++i) {
    const shape_t& s = i == 0 ? net.input_shape : net.layers[i - 1].out_shape;
    if (fwd.activations[i].size() != element_count(s))
      throw error(fmt::format("forward result: activations[{}] has {} values, the network expects shape {} ({} values)",
                              i, fwd.activations[i].size(), fmt::format("({})", fmt::join(s, ",")), element_count(s)));
  }
  if (fwd.activations.back().empty()) throw error(fmt::format("network '{}' has an empty output", net.source));
}

}  // namespace provnn::engine
