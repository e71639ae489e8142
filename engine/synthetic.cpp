#include "engine/synthetic.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "common/error.hpp"

namespace provnn::engine {
namespace {

constexpr std::string_view valid_specs = "mlp:N0-N1-…-Nk (e.g. mlp:784-300-100-10), lenet5, vgg-small";

struct builder {
  network net;
  std::mt19937_64 gen;
  shape_t shape;
  std::size_t dense_count = 0, conv_count = 0, other_count = 0;

  builder(shape_t input, std::uint64_t seed) : gen(seed), shape(std::move(input)) { net.input_shape = shape; }

  double symmetric(double limit) { return (2.0 * synthetic_uniform(gen) - 1.0) * limit; }

  void push(std::string name, std::string op_type, decltype(layer::op) op, shape_t out) {
    layer l;
    l.name = std::move(name);
    l.op_type = std::move(op_type);
    l.op = std::move(op);
    l.in_shape = shape;
    l.out_shape = out;
    shape = std::move(out);
    net.layers.push_back(std::move(l));
  }

  void dense(std::size_t out) {
    dense_op d;
    d.in = element_count(shape);
    d.out = out;
    const double w_limit = std::sqrt(6.0 / static_cast<double>(d.in));
    const double b_limit = 1.0 / std::sqrt(static_cast<double>(d.in));
    d.weight.resize(d.in * d.out);
    for (auto& w : d.weight) w = symmetric(w_limit);
    d.bias.resize(d.out);
    for (auto& b : d.bias) b = symmetric(b_limit);
    push(fmt::format("fc{}", ++dense_count), "Gemm", std::move(d), shape_t{out});
  }

  void conv(std::size_t out_channels, std::size_t k, std::size_t pad) {
    conv2d_op c;
    c.in_channels = shape[0];
    c.out_channels = out_channels;
    c.kernel_h = c.kernel_w = k;
    c.pad_top = c.pad_left = c.pad_bottom = c.pad_right = pad;
    const std::size_t fan_in = c.in_channels * k * k;
    const double w_limit = std::sqrt(6.0 / static_cast<double>(fan_in));
    const double b_limit = 1.0 / std::sqrt(static_cast<double>(fan_in));
    c.weight.resize(out_channels * fan_in);
    for (auto& w : c.weight) w = symmetric(w_limit);
    c.bias.resize(out_channels);
    for (auto& b : c.bias) b = symmetric(b_limit);
    const std::size_t h = shape[1] + 2 * pad - k + 1, w = shape[2] + 2 * pad - k + 1;
    push(fmt::format("conv{}", ++conv_count), "Conv", std::move(c), shape_t{out_channels, h, w});
  }

  void relu() { push(fmt::format("relu_{}", other_count++), "Relu", relu_op{}, shape); }

  void maxpool2() {
    pool_op p;
    p.kernel_h = p.kernel_w = p.stride_h = p.stride_w = 2;
    push(fmt::format("maxpool_{}", other_count++), "MaxPool", p, shape_t{shape[0], shape[1] / 2, shape[2] / 2});
  }

  void flatten() { push(fmt::format("flatten_{}", other_count++), "Flatten", reshape_op{}, shape_t{element_count(shape)}); }
};

std::vector<std::size_t> mlp_sizes(std::string_view spec, std::string_view sizes) {
  std::vector<std::size_t> out;
  std::size_t pos = 0;
  while (pos <= sizes.size()) {
    const auto dash = std::min(sizes.find('-', pos), sizes.size());
    const auto part = sizes.substr(pos, dash - pos);
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
    if (part.empty() || ec != std::errc{} || end != part.data() + part.size() || n == 0)
      throw parse_error(fmt::format("synthetic network '{}': '{}' is not a positive layer size; valid forms: {}", spec,
                                    part, valid_specs));
    if (n > 100'000)
      throw limit_error(fmt::format("synthetic network '{}': layer size {} is above the limit of 100000", spec, n));
    out.push_back(n);
    pos = dash + 1;
  }
  if (out.size() < 2)
    throw parse_error(fmt::format("synthetic network '{}': an MLP needs at least two sizes (input and output); valid "
                                  "forms: {}", spec, valid_specs));
  for (std::size_t i = 1; i < out.size(); ++i)
    if (static_cast<double>(out[i - 1]) * static_cast<double>(out[i]) > 1e9)
      throw limit_error(fmt::format("synthetic network '{}': layer {}-{} has more than 10^9 weights", spec, out[i - 1],
                                    out[i]));
  return out;
}

}  // namespace

network synthetic_network(std::string_view spec, std::uint64_t seed) {
  network net;
  if (spec.substr(0, 4) == "mlp:") {
    const auto sizes = mlp_sizes(spec, spec.substr(4));
    builder b({sizes[0]}, seed);
    for (std::size_t i = 1; i < sizes.size(); ++i) {
      b.dense(sizes[i]);
      if (i + 1 < sizes.size()) b.relu();
    }
    net = std::move(b.net);
  } else if (spec == "lenet5") {
    builder b({1, 28, 28}, seed);
    b.conv(6, 5, 2), b.relu(), b.maxpool2();
    b.conv(16, 5, 0), b.relu(), b.maxpool2();
    b.flatten();
    b.dense(120), b.relu(), b.dense(84), b.relu(), b.dense(10);
    net = std::move(b.net);
  } else if (spec == "vgg-small") {
    builder b({3, 32, 32}, seed);
    b.conv(64, 3, 1), b.relu(), b.conv(64, 3, 1), b.relu(), b.maxpool2();
    b.conv(128, 3, 1), b.relu(), b.conv(128, 3, 1), b.relu(), b.maxpool2();
    b.flatten();
    b.dense(256), b.relu(), b.dense(10);
    net = std::move(b.net);
  } else {
    throw parse_error(fmt::format("unknown synthetic network '{}'; valid forms: {}", spec, valid_specs));
  }
  net.source = fmt::format("synthetic:{}", spec);
  net.input_name = "input";
  return net;
}

std::vector<double> synthetic_input(const network& net, std::uint64_t seed) {
  std::mt19937_64 g(seed + 1);
  std::vector<double> x(element_count(net.input_shape));
  for (auto& v : x) v = synthetic_uniform(g);
  return x;
}

}  // namespace provnn::engine
