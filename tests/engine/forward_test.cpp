// Forward pass on hand-built networks: hand-computed values, and a naive convolution over an
// explicitly zero-padded input as an independent reference for strides/pads/dilations/groups.
#include "engine/forward.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "engine/png_io.hpp"
#include "tests/engine/engine_test_util.hpp"

namespace provnn::engine {
namespace {

layer make_layer(std::string name, decltype(layer::op) op, shape_t in, shape_t out) {
  layer l;
  l.name = name;
  l.op_type = name;
  l.op = std::move(op);
  l.in_shape = std::move(in);
  l.out_shape = std::move(out);
  return l;
}

// Independent reference: pad the input explicitly, then apply the textbook formula.
std::vector<double> naive_conv(const conv2d_op& c, std::size_t H, std::size_t W, const std::vector<double>& x,
                               std::size_t& OH, std::size_t& OW) {
  const std::size_t PH = H + c.pad_top + c.pad_bottom, PW = W + c.pad_left + c.pad_right;
  std::vector<double> padded(c.in_channels * PH * PW, 0.0);
  for (std::size_t ch = 0; ch < c.in_channels; ++ch)
    for (std::size_t y = 0; y < H; ++y)
      for (std::size_t xx = 0; xx < W; ++xx)
        padded[(ch * PH + y + c.pad_top) * PW + xx + c.pad_left] = x[(ch * H + y) * W + xx];
  OH = (PH - (c.kernel_h - 1) * c.dilation_h - 1) / c.stride_h + 1;
  OW = (PW - (c.kernel_w - 1) * c.dilation_w - 1) / c.stride_w + 1;
  const std::size_t cin_g = c.in_channels / c.group, cout_g = c.out_channels / c.group;
  std::vector<double> y(c.out_channels * OH * OW);
  for (std::size_t m = 0; m < c.out_channels; ++m)
    for (std::size_t oy = 0; oy < OH; ++oy)
      for (std::size_t ox = 0; ox < OW; ++ox) {
        double s = c.bias[m];
        for (std::size_t ci = 0; ci < cin_g; ++ci)
          for (std::size_t ky = 0; ky < c.kernel_h; ++ky)
            for (std::size_t kx = 0; kx < c.kernel_w; ++kx) {
              const std::size_t ch = (m / cout_g) * cin_g + ci;
              s += c.weight[((m * cin_g + ci) * c.kernel_h + ky) * c.kernel_w + kx] *
                   padded[(ch * PH + oy * c.stride_h + ky * c.dilation_h) * PW + ox * c.stride_w + kx * c.dilation_w];
            }
        y[(m * OH + oy) * OW + ox] = s;
      }
  return y;
}

}  // namespace

TEST_CASE("forward: dense + relu by hand") {
  network net;
  net.source = "hand";
  net.input_shape = {3};
  dense_op d;
  d.in = 3, d.out = 2;
  d.weight = {1, 2, 3, -1, 0.5, -2};
  d.bias = {0.5, -1};
  net.layers.push_back(make_layer("Gemm", d, {3}, {2}));
  net.layers.push_back(make_layer("Relu", relu_op{}, {2}, {2}));
  const std::vector<double> x = {1, -2, 0.25};
  const auto r = forward(net, x);
  REQUIRE(r.activations.size() == 3);
  // z0 = 1 - 4 + 0.75 + 0.5 = -1.75 ; z1 = -1 - 1 - 0.5 - 1 = -3.5
  CHECK(r.activations[1] == std::vector<double>{-1.75, -3.5});
  CHECK(r.output() == std::vector<double>{0.0, 0.0});
  CHECK(r.argmax.size() == 2);
  CHECK(r.argmax[0].empty());
}

TEST_CASE("forward: convolution against a naive padded reference") {
  struct cfg {
    std::size_t cin, cout, group, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, H, W;
  };
  const cfg cases[] = {
      {1, 1, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 5, 5},  // plain
      {2, 3, 1, 3, 2, 2, 1, 1, 1, 1, 0, 1, 1, 7, 6},  // strides, asymmetric pads
      {2, 2, 1, 2, 3, 1, 2, 2, 1, 2, 1, 0, 2, 6, 7},  // dilation, stride in w
      {4, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5},  // depthwise
      {4, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8, 8},  // grouped, strided
      {3, 2, 1, 1, 1, 3, 3, 1, 1, 2, 2, 2, 2, 4, 4},  // 1×1 with padding larger than stride
  };
  std::uint32_t seed = 1;
  for (const auto& k : cases) {
    conv2d_op c;
    c.in_channels = k.cin, c.out_channels = k.cout, c.group = k.group, c.kernel_h = k.kh, c.kernel_w = k.kw;
    c.stride_h = k.sh, c.stride_w = k.sw, c.dilation_h = k.dh, c.dilation_w = k.dw;
    c.pad_top = k.pt, c.pad_left = k.pl, c.pad_bottom = k.pb, c.pad_right = k.pr;
    c.weight = test::pseudo_random(k.cout * (k.cin / k.group) * k.kh * k.kw, seed++);
    c.bias = test::pseudo_random(k.cout, seed++);
    const auto x = test::pseudo_random(k.cin * k.H * k.W, seed++);
    std::size_t OH = 0, OW = 0;
    const auto expected = naive_conv(c, k.H, k.W, x, OH, OW);
    network net;
    net.input_shape = {k.cin, k.H, k.W};
    net.layers.push_back(make_layer("Conv", c, net.input_shape, {k.cout, OH, OW}));
    const auto r = forward(net, x);
    CHECK(test::scaled_error(r.output(), expected) < 1e-14);
  }
}

TEST_CASE("forward: max pooling takes the first maximum and padding never wins") {
  network net;
  net.input_shape = {1, 3, 3};
  pool_op p;
  p.kernel_h = p.kernel_w = 2;
  p.stride_h = p.stride_w = 2;
  p.pad_top = p.pad_left = 1;  // windows: {x00}, {x01,x02}, {x10,x20}, {x11,x12,x21,x22}
  net.layers.push_back(make_layer("MaxPool", p, {1, 3, 3}, {1, 2, 2}));
  // All negative: a padding zero would win if padding were counted.
  const std::vector<double> x = {-5, -3, -3, -2, -1, -4, -2, -1, -1};
  const auto r = forward(net, x);
  CHECK(r.output() == std::vector<double>{-5, -3, -2, -1});
  // Ties: x01 = x02 → index 1 (first in window order); x11 = x21 = x22 = -1 → index 4.
  CHECK(r.argmax[0] == std::vector<std::uint32_t>{0, 1, 3, 4});
}

TEST_CASE("forward: average pooling with and without counting padding") {
  network net;
  net.input_shape = {1, 2, 2};
  pool_op p;
  p.mode = pool_op::kind::average;
  p.kernel_h = p.kernel_w = 2;
  p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1;
  net.layers.push_back(make_layer("AveragePool", p, {1, 2, 2}, {1, 3, 3}));
  const std::vector<double> x = {1, 2, 3, 4};
  auto r = forward(net, x);
  CHECK(r.output() == std::vector<double>{1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4});
  CHECK(r.argmax[0].empty());
  std::get<pool_op>(net.layers[0].op).count_include_pad = true;
  r = forward(net, x);
  CHECK(r.output() == std::vector<double>{0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1});
}

TEST_CASE("forward: reshape copies, input errors are clear") {
  network net;
  net.source = "m.onnx";
  net.input_shape = {2, 2};
  net.layers.push_back(make_layer("Flatten", reshape_op{}, {2, 2}, {4}));
  CHECK(forward(net, std::vector<double>{1, 2, 3, 4}).output() == std::vector<double>{1, 2, 3, 4});
  test::check_throws_with<error>([&] { forward(net, std::vector<double>{1, 2, 3}); }, {"m.onnx", "3 values", "(2, 2)"});
  test::check_throws_with<error>([&] { forward(net, std::vector<double>{1, std::nan(""), 3, 4}); }, {"flat index 1"});
  test::check_throws_with<error>([&] { forward(net, std::vector<double>{1, 2, 3, INFINITY}); }, {"flat index 3"});
}

TEST_CASE("forward: a hand-built network with inconsistent sizes is an error, not a crash") {
  network net;
  net.source = "hand";
  net.input_shape = {3};
  dense_op d;
  d.in = 3, d.out = 2;
  d.weight = {1, 2, 3};  // too short
  d.bias = {0, 0};
  net.layers.push_back(make_layer("fc", d, {3}, {2}));
  test::check_throws_with<error>([&] { forward(net, std::vector<double>{1, 2, 3}); }, {"layer 0", "fc"});
  net.layers[0] = make_layer("relu", relu_op{}, {4}, {4});
  test::check_throws_with<error>([&] { forward(net, std::vector<double>{1, 2, 3}); }, {"layer 0", "input shape"});
}

TEST_CASE("forward (fp32): inputs and parameters are rounded to float once, and the pass runs in float") {
  network net;
  net.source = "hand";
  net.input_shape = {2};
  dense_op d;
  d.in = 2, d.out = 1;
  // 2^24 + 1 is the first integer float cannot hold: it rounds to 2^24 (ties to even).
  // 1 + 2^-30 rounds to 1; the bias 2^-30 is exact in float.
  d.weight = {1.0 + std::ldexp(1.0, -30), -1.0};
  d.bias = {std::ldexp(1.0, -30)};
  net.layers.push_back(make_layer("fc", d, {2}, {1}));
  const std::vector<double> x = {16777217.0, 16777216.0};
  const float32_parameters p = to_float32(net);
  REQUIRE(p.weight.size() == 1);
  CHECK(p.weight[0] == std::vector<float>{1.0f, -1.0f});
  CHECK(p.bias[0] == std::vector<float>{static_cast<float>(std::ldexp(1.0, -30))});
  // In double: (2^24 + 1)(1 + 2^-30) − 2^24 + 2^-30 = 1 + 2^-6 + 2^-30 (to rounding).
  CHECK(forward(net, x).output()[0] == doctest::Approx(1.0 + std::ldexp(1.0, -6)).epsilon(1e-8));
  // In float: 2^24·1 − 2^24 + 2^-30 = 2^-30 exactly, whatever the order of the sum.
  const forward_result_f32 f = forward(net, p, x);
  REQUIRE(f.activations.size() == 2);
  CHECK(f.activations[0] == std::vector<float>{16777216.0f, 16777216.0f});
  CHECK(f.output() == std::vector<float>{static_cast<float>(std::ldexp(1.0, -30))});
}

TEST_CASE("forward (fp32): values beyond float's range and parameters of another network are errors") {
  network net;
  net.source = "hand.onnx";
  net.input_shape = {2};
  dense_op d;
  d.in = 2, d.out = 1;
  d.weight = {1.0, 1e39};
  d.bias = {0.0};
  net.layers.push_back(make_layer("fc", d, {2}, {1}));
  test::check_throws_with<error>([&] { (void)to_float32(net); },
                                 {"hand.onnx", "layer 0", "'fc'", "weight 1e+39 at flat index 1", "float32"});
  std::get<dense_op>(net.layers[0].op).weight[1] = 1.0;
  std::get<dense_op>(net.layers[0].op).bias[0] = -1e39;
  test::check_throws_with<error>([&] { (void)to_float32(net); }, {"layer 0", "bias -1e+39 at flat index 0"});
  std::get<dense_op>(net.layers[0].op).bias[0] = 0.0;
  const float32_parameters p = to_float32(net);
  test::check_throws_with<error>([&] { forward(net, p, std::vector<double>{1.0, 5e38}); },
                                 {"hand.onnx", "flat index 1", "float32"});
  test::check_throws_with<error>([&] { forward(net, p, std::vector<double>{1.0, NAN}); }, {"flat index 1", "not finite"});
  test::check_throws_with<error>([&] { forward(net, float32_parameters{}, std::vector<double>{1.0, 2.0}); },
                                 {"float32 parameters have 0 weight", "1 layers", "to_float32"});
  // A layer whose float output overflows (fp64 holds 1e39) is named, not passed on as inf.
  test::check_throws_with<error>([&] { forward(net, p, std::vector<double>{3e38, 3e38}); },
                                 {"layer 0", "'fc'", "output inf at flat index 0 overflows float32", "fp64"});
  CHECK(forward(net, std::vector<double>{3e38, 3e38}).output()[0] == doctest::Approx(6e38));
  float32_parameters q = p;
  q.weight[0].pop_back();
  test::check_throws_with<error>([&] { forward(net, q, std::vector<double>{1.0, 2.0}); },
                                 {"layer 0", "'fc'", "1 weights and 1 biases, the layer 2 and 1"});
}

}  // namespace provnn::engine

// ---------------------------------------------------------------------------------------
// Bundled models (tests/data, made by tools/make_fixtures.py): the forward pass in double on
// the float32 weights must reproduce the double-precision logits the fixture script computed
// with PyTorch, for every model and every listed input (npy with/without batch, uint8/int64,
// --index, PNG).

namespace provnn::engine {

TEST_CASE("forward: bundled models reproduce PyTorch's logits") {
  const auto& models = test::fixture_manifest().at("models");
  REQUIRE(models.size() >= 4);
  double worst = 0.0, worst32 = 0.0;
  std::size_t checked = 0;
  for (const auto& [path, info] : models.items()) {
    CAPTURE(path);
    const network net = load_onnx(test::data_dir() / path);
    CHECK(net.input_shape == info.at("input_shape").get<shape_t>());
    for (const auto& f : info.at("forward")) {
      const std::string input = f.at("input");
      CAPTURE(input);
      std::vector<double> x;
      if (input.ends_with(".png")) {
        x = png_to_input(read_png(test::data_dir() / input), net.input_shape, input);
      } else {
        std::optional<std::size_t> index;
        if (!f.at("index").is_null()) index = f.at("index").get<std::size_t>();
        x = select_sample(read_npy(test::data_dir() / input), net.input_shape, index, input);
      }
      const auto r = forward(net, x);
      const auto expected = f.at("logits").get<std::vector<double>>();
      const double err = test::scaled_error(r.output(), expected);
      CHECK(err <= 1e-9);
      worst = std::max(worst, err);
      const auto best = std::max_element(r.output().begin(), r.output().end()) - r.output().begin();
      CHECK(best == f.at("predicted").get<std::ptrdiff_t>());
      // The fp32 pass (the models' weights are float32 already: rounding them is exact).
      const auto r32 = forward(net, to_float32(net), x);
      const double err32 = test::scaled_error(std::vector<double>(r32.output().begin(), r32.output().end()), expected);
      CHECK(err32 <= 1e-5);
      worst32 = std::max(worst32, err32);
      CHECK(std::max_element(r32.output().begin(), r32.output().end()) - r32.output().begin() ==
            f.at("predicted").get<std::ptrdiff_t>());
      ++checked;
    }
  }
  CHECK(checked >= 20);
  // The bundled NaN input is refused by the forward pass, naming the index.
  const network mlp = load_onnx(test::data_dir() / "models" / "digits_mlp.onnx");
  const auto nan = read_npy(test::data_dir() / "inputs" / "nan_input.npy");
  test::check_throws_with<error>(
      [&] { forward(mlp, select_sample(nan, mlp.input_shape, std::nullopt, "nan_input.npy")); },
      {"digits_mlp.onnx", "flat index 10", "not finite"});
  MESSAGE("largest logit error relative to max|logit|: ", worst, " over ", checked, " forward passes; fp32: ", worst32);
}

}  // namespace provnn::engine
