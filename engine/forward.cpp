#include "engine/forward.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

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

// A layer's parameters in the pass's precision: the network's own (double), or
// float32_parameters' copies (float).
template <class T>
struct params {
  const T* weight;
  const T* bias;
};

// z = W·a + b as Eigen's matrix-vector product (vectorised for the build's CPU; a scalar
// loop waits for each addition, ≈ 4× slower on 784-300-100-10).
template <class T>
void dense(const dense_op& d, params<T> p, const T* a, T* z) {
  using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  const auto in = static_cast<Eigen::Index>(d.in), out = static_cast<Eigen::Index>(d.out);
  Eigen::Map<vector> zv(z, out);
  zv.noalias() = Eigen::Map<const row_matrix>(p.weight, out, in) * Eigen::Map<const vector>(a, in);
  zv += Eigen::Map<const vector>(p.bias, out);
}

// Convolutions run as matrix products (engine/conv_gemm.hpp): im2col and Eigen's GEMM.
template <class T>
void conv(const conv2d_op& c, params<T> p, const shape_t& in_shape, const shape_t& out_shape, const T* x, T* y) {
  detail::conv_forward_gemm(c, p.weight, p.bias, in_shape, out_shape, x, y);
}

template <class T>
void pool(const pool_op& p, const shape_t& in_shape, const shape_t& out_shape, const T* x, T* y,
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
          T v = x[best];
          for (std::ptrdiff_t iy = ya; iy < yb; ++iy)
            for (std::ptrdiff_t ix = xa; ix < xb; ++ix) {
              const std::size_t idx = c * H * W + static_cast<std::size_t>(iy) * W + static_cast<std::size_t>(ix);
              if (x[idx] > v) v = x[idx], best = idx;  // strict: the first maximum wins ties
            }
          y[o] = v;
          argmax[o] = static_cast<std::uint32_t>(best);
        } else {
          T s = 0;
          for (std::ptrdiff_t iy = ya; iy < yb; ++iy)
            for (std::ptrdiff_t ix = xa; ix < xb; ++ix)
              s += x[c * H * W + static_cast<std::size_t>(iy) * W + static_cast<std::size_t>(ix)];
          const std::size_t n =
              p.count_include_pad ? p.kernel_h * p.kernel_w : static_cast<std::size_t>((yb - ya) * (xb - xa));
          y[o] = s / static_cast<T>(n);
        }
      }
}

// The pass in T; param(i) gives linear layer i's parameters in T.
template <class T, class Params>
basic_forward_result<T> forward_in(const network& net, std::span<const double> input, Params&& param) {
  const std::size_t n = element_count(net.input_shape);
  if (input.size() != n)
    throw error(fmt::format("{}: the input has {} values, but the network expects shape ({}) = {} values", net.source,
                            input.size(), fmt::join(net.input_shape, ", "), n));
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(input[i]))
      throw error(fmt::format("{}: input value {} at flat index {} is not finite", net.source, input[i], i));
  basic_forward_result<T> r;
  r.activations.reserve(net.layers.size() + 1);
  auto& x = r.activations.emplace_back(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<T>(input[i]);
    if constexpr (std::is_same_v<T, float>)
      if (!std::isfinite(x[i]))
        throw error(fmt::format("{}: input value {} at flat index {} is beyond float32's range; use fp64", net.source,
                                input[i], i));
  }
  r.argmax.resize(net.layers.size());
  shape_t shape = net.input_shape;
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    check_layer(net, i, shape);
    const layer& l = net.layers[i];
    const std::vector<T>& a = r.activations.back();
    std::vector<T> z(element_count(l.out_shape));
    std::visit(
        [&](const auto& op) {
          using Op = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<Op, dense_op>)
            dense(op, param(i), a.data(), z.data());
          else if constexpr (std::is_same_v<Op, conv2d_op>)
            conv(op, param(i), l.in_shape, l.out_shape, a.data(), z.data());
          else if constexpr (std::is_same_v<Op, pool_op>)
            pool(op, l.in_shape, l.out_shape, a.data(), z.data(), r.argmax[i]);
          else if constexpr (std::is_same_v<Op, relu_op>)
            for (std::size_t k = 0; k < z.size(); ++k) z[k] = a[k] > 0 ? a[k] : T{0};
          else
            std::copy(a.begin(), a.end(), z.begin());
        },
        l.op);
    if constexpr (std::is_same_v<T, float>) {
      // fp64 holds what float cannot: say where float overflowed rather than return inf/NaN.
      for (std::size_t k = 0; k < z.size(); ++k)
        if (!std::isfinite(z[k]))
          bad_layer(net, i, fmt::format("output {} at flat index {} overflows float32; use fp64", z[k], k));
    }
    r.activations.push_back(std::move(z));
    shape = l.out_shape;
  }
  return r;
}

}  // namespace

layer_parameters parameters_of(const layer& l) {
  if (const auto* d = std::get_if<dense_op>(&l.op)) return {&d->weight, &d->bias};
  if (const auto* c = std::get_if<conv2d_op>(&l.op)) return {&c->weight, &c->bias};
  return {};
}

forward_result forward(const network& net, std::span<const double> input) {
  return forward_in<double>(net, input, [&net](std::size_t i) {
    const auto q = parameters_of(net.layers[i]);
    return params<double>{q.weight->data(), q.bias->data()};
  });
}

float32_parameters to_float32(const network& net) {
  float32_parameters p;
  p.weight.resize(net.layers.size());
  p.bias.resize(net.layers.size());
  const auto round = [&net](std::size_t i, const char* what, const std::vector<double>& from, std::vector<float>& to) {
    to.resize(from.size());
    for (std::size_t j = 0; j < from.size(); ++j) {
      to[j] = static_cast<float>(from[j]);
      if (std::isfinite(from[j]) && !std::isfinite(to[j]))
        bad_layer(net, i, fmt::format("{} {} at flat index {} is beyond float32's range", what, from[j], j));
    }
  };
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    const auto q = parameters_of(net.layers[i]);
    if (!q.weight) continue;
    round(i, "weight", *q.weight, p.weight[i]);
    round(i, "bias", *q.bias, p.bias[i]);
  }
  return p;
}

void check_float32_parameters(const network& net, const float32_parameters& p) {
  const std::size_t L = net.layers.size();
  if (p.weight.size() != L || p.bias.size() != L)
    throw error(fmt::format("float32 parameters have {} weight and {} bias arrays but network '{}' has {} layers; "
                            "make them with to_float32() of the same network",
                            p.weight.size(), p.bias.size(), net.source, L));
  for (std::size_t i = 0; i < L; ++i) {
    const auto q = parameters_of(net.layers[i]);
    const std::size_t nw = q.weight ? q.weight->size() : 0, nb = q.bias ? q.bias->size() : 0;
    if (p.weight[i].size() != nw || p.bias[i].size() != nb)
      bad_layer(net, i,
                fmt::format("its float32 parameters have {} weights and {} biases, the layer {} and {}; make them "
                            "with to_float32() of the same network",
                            p.weight[i].size(), p.bias[i].size(), nw, nb));
  }
}

forward_result_f32 forward(const network& net, const float32_parameters& p, std::span<const double> input) {
  check_float32_parameters(net, p);
  return forward_in<float>(net, input,
                           [&p](std::size_t i) { return params<float>{p.weight[i].data(), p.bias[i].data()}; });
}

template <class T>
void check_forward_result(const network& net, const basic_forward_result<T>& fwd) {
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

template void check_forward_result<double>(const network&, const forward_result&);
template void check_forward_result<float>(const network&, const forward_result_f32&);

}  // namespace provnn::engine
