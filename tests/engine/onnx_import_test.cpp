// ONNX import: models built with the protobuf classes, each op checked by the forward pass
// against values computed by hand or by an unfolded evaluation written here; every refusal
// checked for the names its message must carry.
#include "engine/onnx_import.hpp"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fmt/format.h>

#include "common/error.hpp"
#include "engine/forward.hpp"
#include "tests/engine/engine_test_util.hpp"

namespace provnn::engine {
namespace {

using test::onnx_builder;
using storage = onnx_builder::storage;

network load(const onnx_builder& b, const std::string& name = "test.onnx") { return load_onnx_bytes(b.bytes(), name); }

// y = W x + b with W given (out, in).
std::vector<double> affine(const std::vector<double>& W, const std::vector<double>& b, const std::vector<double>& x) {
  std::vector<double> y(b);
  for (std::size_t k = 0; k < b.size(); ++k)
    for (std::size_t j = 0; j < x.size(); ++j) y[k] += W[k * x.size() + j] * x[j];
  return y;
}

}  // namespace

TEST_CASE("onnx: Gemm with transB, alpha and beta") {
  for (int trans_b : {0, 1}) {
    CAPTURE(trans_b);
    onnx_builder b({0, 3});
    // Stored B: (out=2, in=3) when transB = 1, (3, 2) otherwise.
    const std::vector<double> w_out_in = {1, -2, 0.5, 3, 0.25, -1};
    std::vector<double> stored = w_out_in;
    if (!trans_b) stored = {1, 3, -2, 0.25, 0.5, -1};
    b.init("B", trans_b ? std::vector<std::int64_t>{2, 3} : std::vector<std::int64_t>{3, 2}, stored);
    b.init("C", {2}, {0.5, -4});
    auto& n = b.node("Gemm", {"x", "B", "C"}, {"y"}, "fc1");
    onnx_builder::set_float(n, "alpha", 2.0);
    onnx_builder::set_float(n, "beta", 0.5);
    onnx_builder::set_int(n, "transB", trans_b);
    b.output("y");
    const network net = load(b);
    CHECK(net.input_shape == shape_t{3});
    REQUIRE(net.layers.size() == 1);
    CHECK(net.layers[0].name == "fc1");
    const auto& d = std::get<dense_op>(net.layers[0].op);
    CHECK(d.weight == std::vector<double>{2, -4, 1, 6, 0.5, -2});
    CHECK(d.bias == std::vector<double>{0.25, -2});
    // y = 2·W·x + 0.5·C, by hand for x = (1, 2, 4): W·x = (1 - 4 + 2, 3 + 0.5 - 4) = (-1, -0.5)
    CHECK(forward(net, std::vector<double>{1, 2, 4}).output() == std::vector<double>{-2 + 0.25, -1 - 2});
  }
}

TEST_CASE("onnx: Gemm without C, and with a (1, out) bias") {
  onnx_builder b({1, 2});
  b.init("W", {2, 2}, {1, 2, 3, 4});
  auto& n = b.node("Gemm", {"x", "W"}, {"h"});
  onnx_builder::set_int(n, "transB", 1);
  b.init("W2", {2, 1}, {1, -1});
  b.init("c2", {1, 1}, {10});
  b.node("Gemm", {"h", "W2", "c2"}, {"y"});
  b.output("y");
  const network net = load(b);
  REQUIRE(net.layers.size() == 2);
  CHECK(net.layers[0].name == "Gemm_0");  // unnamed nodes get <op>_<index>
  CHECK(std::get<dense_op>(net.layers[0].op).bias == std::vector<double>{0, 0});
  // h = (1 + 2·2, 3 + 4·2) = (5, 11); y = 5 - 11 + 10 = 4
  CHECK(forward(net, std::vector<double>{1, 2}).output() == std::vector<double>{4});
}

TEST_CASE("onnx: MatMul followed by Add is one dense layer, and typed and double storage") {
  for (auto how : {storage::raw_float, storage::typed_float, storage::raw_double, storage::typed_double}) {
    onnx_builder b({0, 3});
    b.init("W", {3, 2}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, how);  // (in, out)
    b.init("bias", {2}, {1, 2}, how);
    b.node("MatMul", {"x", "W"}, {"m"}, "mm");
    b.node("Add", {"bias", "m"}, {"y"}, "add");  // constant first: order must not matter
    b.output("y");
    const network net = load(b);
    REQUIRE(net.layers.size() == 1);
    CHECK(net.layers[0].op_type == "MatMul");
    const auto& d = std::get<dense_op>(net.layers[0].op);
    const double eps = (how == storage::raw_double || how == storage::typed_double) ? 0.0 : 1e-7;
    const std::vector<double> expect_w = {0.1, 0.3, 0.5, 0.2, 0.4, 0.6};
    for (std::size_t i = 0; i < 6; ++i) CHECK(std::abs(d.weight[i] - expect_w[i]) <= eps);
    CHECK(d.bias == std::vector<double>{1, 2});
  }
}

TEST_CASE("onnx: Add after Conv is a per-channel bias, and Identity of a weight is an alias") {
  onnx_builder b({1, 1, 2, 2});
  b.init("w", {2, 1, 1, 1}, {1, -1});
  b.init("shared", {1, 2, 1, 1}, {10, 20});
  b.node("Identity", {"shared"}, {"bias_alias"});
  b.node("Conv", {"x", "w"}, {"c"});
  b.node("Add", {"c", "bias_alias"}, {"y"});
  b.output("y");
  const network net = load(b);
  REQUIRE(net.layers.size() == 1);
  CHECK(std::get<conv2d_op>(net.layers[0].op).bias == std::vector<double>{10, 20});
  CHECK(forward(net, std::vector<double>{1, 2, 3, 4}).output() == std::vector<double>{11, 12, 13, 14, 19, 18, 17, 16});

  onnx_builder r({1, 2});
  r.init("k", {2}, {1, 1});
  r.node("Relu", {"x"}, {"h"});
  r.node("Add", {"h", "k"}, {"y"}, "shift");
  r.output("y");
  test::check_throws_with<unsupported_error>([&] { load(r); }, {"'shift'", "per-unit bias", "Relu"});
}

TEST_CASE("onnx: a zero Pad folds into the following AveragePool or Conv") {
  SUBCASE("opset 13: pads as an input, before AveragePool (counted, as PyTorch's count_include_pad)") {
    onnx_builder b({1, 1, 2, 2});
    b.int_init("pads", {0, 0, 1, 1, 0, 0, 1, 1});
    b.node("Pad", {"x", "pads"}, {"p"}, "pad");
    auto& n = b.node("AveragePool", {"p"}, {"y"});
    onnx_builder::set_ints(n, "kernel_shape", {2, 2});
    b.output("y");
    const network net = load(b);
    REQUIRE(net.layers.size() == 1);
    const auto& pool = std::get<pool_op>(net.layers[0].op);
    CHECK(pool.count_include_pad);
    CHECK(net.layers[0].in_shape == shape_t{1, 2, 2});
    CHECK(forward(net, std::vector<double>{1, 2, 3, 4}).output() ==
          std::vector<double>{0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1});
  }
  SUBCASE("opset 9: pads as an attribute, before Conv") {
    onnx_builder b({1, 1, 2, 2}, 9);
    auto& p = b.node("Pad", {"x"}, {"p"}, "pad");
    onnx_builder::set_ints(p, "pads", {0, 0, 2, 0, 0, 0, 0, 1});
    b.init("w", {1, 1, 1, 1}, {2});
    b.node("Conv", {"p", "w"}, {"y"});
    b.output("y");
    const network net = load(b);
    const auto& c = std::get<conv2d_op>(net.layers[0].op);
    CHECK((c.pad_top == 2 && c.pad_left == 0 && c.pad_bottom == 0 && c.pad_right == 1));
    CHECK(forward(net, std::vector<double>{1, 2, 3, 4}).output() ==
          std::vector<double>{0, 0, 0, 0, 0, 0, 2, 4, 0, 6, 8, 0});
  }
  SUBCASE("refusals: before MaxPool, at the end, reflect mode, non-zero value") {
    auto make = [](const std::string& next, const std::string& mode, double value) {
      onnx_builder b({1, 1, 4, 4}, 9);
      auto& p = b.node("Pad", {"x"}, {"p"}, "pad");
      onnx_builder::set_ints(p, "pads", {0, 0, 1, 1, 0, 0, 1, 1});
      onnx_builder::set_string(p, "mode", mode);
      onnx_builder::set_float(p, "value", value);
      if (next.empty()) {
        b.output("p");
      } else {
        auto& n = b.node(next, {"p"}, {"y"}, "next");
        onnx_builder::set_ints(n, "kernel_shape", {2, 2});
        b.output("y");
      }
      return b;
    };
    test::check_throws_with<unsupported_error>([&] { load(make("MaxPool", "constant", 0)); },
                                               {"'next'", "'pad'", "max"});
    test::check_throws_with<unsupported_error>([&] { load(make("", "constant", 0)); },
                                               {"ends with the Pad node 'pad'"});
    test::check_throws_with<unsupported_error>([&] { load(make("AveragePool", "reflect", 0)); }, {"'pad'", "reflect"});
    test::check_throws_with<unsupported_error>([&] { load(make("AveragePool", "constant", 1)); }, {"'pad'", "value 1"});
  }
}

TEST_CASE("onnx: MaxPool ceil_mode adds the partial last window") {
  onnx_builder b({1, 1, 3, 3});
  auto& n = b.node("MaxPool", {"x"}, {"y"});
  onnx_builder::set_ints(n, "kernel_shape", {2, 2});
  onnx_builder::set_ints(n, "strides", {2, 2});
  onnx_builder::set_int(n, "ceil_mode", 1);
  b.output("y");
  const network net = load(b);
  CHECK(net.layers[0].out_shape == shape_t{1, 2, 2});
  const auto r = forward(net, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(r.output() == std::vector<double>{5, 6, 8, 9});
  CHECK(r.argmax[0] == std::vector<std::uint32_t>{4, 5, 7, 8});
}

TEST_CASE("onnx: absurd attribute values are refused before any size computation") {
  onnx_builder b({1, 1, 4, 4});
  b.init("w", {1, 1, 2, 2}, {1, 1, 1, 1});
  auto& n = b.node("Conv", {"x", "w"}, {"y"}, "c");
  onnx_builder::set_ints(n, "pads", {0, 0, INT64_MAX, 0});
  b.output("y");
  test::check_throws_with<parse_error>([&] { load(b); }, {"'c'", "pads", "out of range"});
  onnx_builder p({1, 1, 4, 4});
  auto& m = p.node("MaxPool", {"x"}, {"y"}, "mp");
  onnx_builder::set_ints(m, "kernel_shape", {2, 2});
  onnx_builder::set_ints(m, "pads", {2, 0, 0, 0});
  p.output("y");
  test::check_throws_with<parse_error>([&] { load(p); }, {"'mp'", "smaller than the kernel"});
  onnx_builder g({1, 1000000, 1000000});
  g.node("Relu", {"x"}, {"y"});
  g.output("y");
  test::check_throws_with<limit_error>([&] { load(g); }, {"max_onnx_activation"});
}

TEST_CASE("onnx: Conv attributes map to the layer and agree with an unpadded evaluation") {
  // A 1-channel 4×4 input, a 2×2 kernel of ones, stride 2, pads (1, 0, 1, 0), dilation 1:
  // by hand, output rows use padded rows {0,1} and {2,3}, i.e. real rows {0} and {1,2}.
  onnx_builder b({1, 1, 4, 4});
  b.init("w", {1, 1, 2, 2}, {1, 1, 1, 1});
  b.init("bc", {1}, {0.5});
  auto& n = b.node("Conv", {"x", "w", "bc"}, {"y"}, "conv");
  onnx_builder::set_ints(n, "strides", {2, 2});
  onnx_builder::set_ints(n, "pads", {1, 0, 1, 0});
  onnx_builder::set_ints(n, "kernel_shape", {2, 2});
  b.output("y");
  const network net = load(b);
  REQUIRE(net.layers.size() == 1);
  CHECK(net.layers[0].out_shape == shape_t{1, 3, 2});
  std::vector<double> x(16);
  for (std::size_t i = 0; i < 16; ++i) x[i] = static_cast<double>(i);
  // rows: 0:[0..3] 1:[4..7] 2:[8..11] 3:[12..15]
  // oy=0: row 0 → cols {0,1}: 0+1, {2,3}: 2+3 ; oy=1: rows 1,2 → 4+5+8+9, 6+7+10+11 ; oy=2: row 3 → 12+13, 14+15
  CHECK(forward(net, x).output() == std::vector<double>{1.5, 5.5, 26.5, 34.5, 25.5, 29.5});
}

TEST_CASE("onnx: Conv dilations, groups and auto_pad") {
  SUBCASE("depthwise with dilation") {
    onnx_builder b({1, 2, 5, 5});
    b.init("w", {2, 1, 2, 2}, {1, 0, 0, 1, 0, 1, 1, 0});
    auto& n = b.node("Conv", {"x", "w"}, {"y"});
    onnx_builder::set_int(n, "group", 2);
    onnx_builder::set_ints(n, "dilations", {2, 2});
    b.output("y");
    const network net = load(b);
    const auto& c = std::get<conv2d_op>(net.layers[0].op);
    CHECK(c.group == 2);
    CHECK(c.dilation_h == 2);
    CHECK(net.layers[0].out_shape == shape_t{2, 3, 3});
    std::vector<double> x(50);
    for (std::size_t i = 0; i < 50; ++i) x[i] = static_cast<double>(i);
    const auto y = forward(net, x).output();
    // channel 0: x[oy][ox] + x[oy+2][ox+2]; channel 1: x[oy][ox+2] + x[oy+2][ox] (offset 25)
    CHECK(y[0] == 0 + 12);
    CHECK(y[4] == 6 + 18);
    CHECK(y[9] == (25 + 2) + (25 + 10));
    CHECK(y[17] == (25 + 14) + (25 + 22));
  }
  SUBCASE("SAME_UPPER and SAME_LOWER place the odd pad at the end or the start") {
    for (const char* mode : {"SAME_UPPER", "SAME_LOWER"}) {
      CAPTURE(mode);
      onnx_builder b({1, 1, 4, 4});
      b.init("w", {1, 1, 2, 2}, {1, 2, 3, 4});
      auto& n = b.node("Conv", {"x", "w"}, {"y"});
      onnx_builder::set_string(n, "auto_pad", mode);
      b.output("y");
      const network net = load(b);
      const auto& c = std::get<conv2d_op>(net.layers[0].op);
      CHECK(net.layers[0].out_shape == shape_t{1, 4, 4});
      const bool upper = std::string(mode) == "SAME_UPPER";
      CHECK(c.pad_top == (upper ? 0u : 1u));
      CHECK(c.pad_bottom == (upper ? 1u : 0u));
      CHECK(c.pad_left == (upper ? 0u : 1u));
      CHECK(c.pad_right == (upper ? 1u : 0u));
    }
  }
  SUBCASE("VALID") {
    onnx_builder b({1, 1, 4, 4});
    b.init("w", {1, 1, 3, 3}, std::vector<double>(9, 1.0));
    auto& n = b.node("Conv", {"x", "w"}, {"y"});
    onnx_builder::set_string(n, "auto_pad", "VALID");
    onnx_builder::set_ints(n, "strides", {1, 1});
    b.output("y");
    CHECK(load(b).layers[0].out_shape == shape_t{1, 2, 2});
  }
}

TEST_CASE("onnx: pooling, flatten, reshape from an initialiser or a Constant node") {
  onnx_builder b({1, 1, 4, 4});
  auto& mp = b.node("MaxPool", {"x"}, {"p"}, "pool");
  onnx_builder::set_ints(mp, "kernel_shape", {2, 2});
  onnx_builder::set_ints(mp, "strides", {2, 2});
  auto& ap = b.node("AveragePool", {"p"}, {"q"});
  onnx_builder::set_ints(ap, "kernel_shape", {2, 2});
  onnx_builder::set_ints(ap, "pads", {1, 1, 1, 1});
  onnx_builder::set_ints(ap, "strides", {2, 2});
  onnx_builder::set_int(ap, "count_include_pad", 1);
  b.node("GlobalAveragePool", {"q"}, {"g"});
  b.int_init("shape", {1, -1});
  b.node("Reshape", {"g", "shape"}, {"r"});
  auto& k = b.node("Constant", {}, {"shape2"});
  auto* a = k.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto_AttributeType_TENSOR);
  a->mutable_t()->set_name("shape2");
  a->mutable_t()->set_data_type(onnx::TensorProto_DataType_INT64);
  a->mutable_t()->add_dims(4);
  for (auto v : {1, 1, 1, 1}) a->mutable_t()->add_int64_data(v);
  b.node("Reshape", {"r", "shape2"}, {"r2"});
  b.node("Flatten", {"r2"}, {"f"});
  b.output("f");
  const network net = load(b);
  REQUIRE(net.layers.size() == 6);
  CHECK(net.layers[0].out_shape == shape_t{1, 2, 2});
  CHECK(net.layers[1].out_shape == shape_t{1, 2, 2});
  CHECK(net.layers[2].out_shape == shape_t{1, 1, 1});
  CHECK(net.layers[3].out_shape == shape_t{1});
  CHECK(net.layers[4].out_shape == shape_t{1, 1, 1});
  CHECK(net.layers[5].out_shape == shape_t{1});
  const std::vector<double> x = {1, 5, 2, 0, 3, 4, 8, 1, 0, 0, 2, 2, 9, 0, 2, 7};
  const auto r = forward(net, x);
  // max pool: (5, 8, 9, 7); average with pad 1, count_include_pad: each window holds one real value /4
  CHECK(r.activations[1] == std::vector<double>{5, 8, 9, 7});
  CHECK(r.activations[2] == std::vector<double>{1.25, 2, 2.25, 1.75});
  CHECK(r.output() == std::vector<double>{7.25 / 4});
}

TEST_CASE("onnx: Dropout and Identity are skipped, a trailing Softmax is skipped and recorded") {
  onnx_builder b({1, 2});
  b.init("W", {2, 2}, {1, 0, 0, 1});
  b.node("Identity", {"x"}, {"i"});
  b.node("Gemm", {"i", "W"}, {"g"});
  b.node("Dropout", {"g"}, {"d"});
  b.node("Relu", {"d"}, {"r"});
  b.node("Softmax", {"r"}, {"s"});
  b.node("Identity", {"s"}, {"y"});
  b.output("y");
  const network net = load(b);
  REQUIRE(net.layers.size() == 2);
  CHECK(net.layers[1].op_type == "Relu");
  CHECK(net.skipped_softmax == "Softmax");
  CHECK(forward(net, std::vector<double>{-1, 2}).output() == std::vector<double>{0, 2});
}

TEST_CASE("onnx: BatchNormalization is folded into the preceding Conv and Gemm") {
  const double eps = 1e-3;
  const std::vector<double> gamma = {1.5, -0.5}, beta = {0.25, 1}, mean = {0.5, -1}, var = {4, 0.25};
  auto bn = [&](onnx_builder& b, const std::string& in, const std::string& out, const std::string& p) {
    b.init(p + "g", {2}, gamma);
    b.init(p + "b", {2}, beta);
    b.init(p + "m", {2}, mean);
    b.init(p + "v", {2}, var);
    auto& n = b.node("BatchNormalization", {in, p + "g", p + "b", p + "m", p + "v"}, {out});
    onnx_builder::set_float(n, "epsilon", eps);
  };
  // Unfolded reference: the BN formula applied to the raw layer output (eps as stored in float).
  const double feps = static_cast<float>(eps);
  auto apply_bn = [&](std::vector<double> z, std::size_t per_channel) {
    for (std::size_t i = 0; i < z.size(); ++i) {
      const std::size_t k = i / per_channel;
      z[i] = (z[i] - mean[k]) / std::sqrt(var[k] + feps) * gamma[k] + beta[k];
    }
    return z;
  };
  SUBCASE("Conv") {
    onnx_builder b({1, 1, 3, 3});
    const auto w = test::pseudo_random(2 * 1 * 2 * 2, 7);
    b.init("w", {2, 1, 2, 2}, w);
    b.init("c", {2}, {0.1, -0.2});
    b.node("Conv", {"x", "w", "c"}, {"z"}, "conv1");
    bn(b, "z", "y", "bn");
    b.output("y");
    const network net = load(b);
    REQUIRE(net.layers.size() == 1);
    CHECK(net.layers[0].name == "conv1");
    const auto x = test::pseudo_random(9, 8);
    // Unfolded: the same conv without BN, then BN by formula.
    onnx_builder u({1, 1, 3, 3});
    u.init("w", {2, 1, 2, 2}, w);
    u.init("c", {2}, {0.1, -0.2});
    u.node("Conv", {"x", "w", "c"}, {"z"});
    u.output("z");
    const auto expected = apply_bn(forward(load(u), x).output(), 4);
    CHECK(test::scaled_error(forward(net, x).output(), expected) < 1e-6);  // float-stored biases (0.1) differ in ulp
  }
  SUBCASE("Gemm") {
    onnx_builder b({1, 3});
    const auto w = test::pseudo_random(6, 9);
    b.init("W", {2, 3}, w);
    auto& g = b.node("Gemm", {"x", "W"}, {"z"});
    onnx_builder::set_int(g, "transB", 1);
    bn(b, "z", "y", "bn");
    b.output("y");
    const network net = load(b);
    const auto x = test::pseudo_random(3, 10);
    const auto expected = apply_bn(affine(w, {0, 0}, x), 1);
    CHECK(test::scaled_error(forward(net, x).output(), expected) < 1e-14);
    // The folded parameters are what the layer stores: W' = W·γ/√(var+ε).
    const auto& d = std::get<dense_op>(net.layers[0].op);
    CHECK(d.weight[3] == doctest::Approx(w[3] * gamma[1] / std::sqrt(var[1] + feps)).epsilon(1e-15));
    CHECK(d.bias[0] == doctest::Approx((0 - mean[0]) * gamma[0] / std::sqrt(var[0] + feps) + beta[0]).epsilon(1e-15));
  }
  SUBCASE("BN after a Relu is refused") {
    onnx_builder b({1, 3});
    b.init("W", {3, 2}, test::pseudo_random(6, 9));
    b.node("Gemm", {"x", "W"}, {"z"});
    b.node("Relu", {"z"}, {"r"}, "act");
    bn(b, "r", "y", "bn");
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); },
                                               {"BatchNormalization_2", "#2", "folded", "'act' (Relu)"});
  }
}

TEST_CASE("onnx: refusals name the node, its index, its op type and the way out") {
  SUBCASE("unknown op") {
    onnx_builder b({1, 2});
    b.node("Relu", {"x"}, {"r"});
    b.node("Sigmoid", {"r"}, {"y"}, "squash");
    b.output("y");
    test::check_throws_with<unsupported_error>(
        [&] { load(b, "m.onnx"); }, {"m.onnx", "'squash'", "#1", "Sigmoid", "supported ops", "Gemm", "Conv"});
  }
  SUBCASE("residual Add of two computed tensors") {
    onnx_builder b({1, 2});
    b.init("W", {2, 2}, {1, 0, 0, 1});
    b.node("Gemm", {"x", "W"}, {"h"});
    b.node("Relu", {"h"}, {"r"});
    b.node("Add", {"r", "x"}, {"y"}, "skip");
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"'skip'", "#2", "Add", "residual", "chains"});
  }
  SUBCASE("two graph inputs (an initialiser listed as input does not count)") {
    onnx_builder b({1, 2});
    b.init("W", {2, 2}, {1, 0, 0, 1});
    b.add_input("W", {2, 2});
    b.node("Gemm", {"x", "W"}, {"y"});
    b.output("y");
    CHECK_NOTHROW(load(b));
    b.add_input("z", {1, 2});
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"2 inputs", "'x'", "'z'"});
  }
  SUBCASE("an output read twice") {
    onnx_builder b({1, 2});
    b.node("Relu", {"x"}, {"r"});
    b.node("Relu", {"r"}, {"a"});
    b.node("Relu", {"r"}, {"c"});
    b.output("c");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"'r'", "read 2 times"});
  }
  SUBCASE("Softmax in the middle") {
    onnx_builder b({1, 2});
    b.node("Softmax", {"x"}, {"s"});
    b.node("Relu", {"s"}, {"y"}, "late");
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"'late'", "Softmax", "last layer"});
  }
  SUBCASE("Reshape that moves the batch axis, Flatten with axis 2") {
    onnx_builder b({1, 2, 3});
    b.int_init("s", {2, 3});
    b.node("Reshape", {"x", "s"}, {"y"});
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"Reshape", "batch axis"});
    onnx_builder f({1, 2, 3});
    auto& n = f.node("Flatten", {"x"}, {"y"});
    onnx_builder::set_int(n, "axis", 2);
    f.output("y");
    test::check_throws_with<unsupported_error>([&] { load(f); }, {"Flatten", "axis 2"});
  }
  SUBCASE("Gemm with transA, a weight that does not fit") {
    onnx_builder b({1, 2});
    b.init("W", {2, 2}, {1, 0, 0, 1});
    auto& n = b.node("Gemm", {"x", "W"}, {"y"}, "g");
    onnx_builder::set_int(n, "transA", 1);
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"'g'", "transA"});
    onnx_builder c({1, 3});
    c.init("W", {2, 2}, {1, 0, 0, 1});
    c.node("Gemm", {"x", "W"}, {"y"}, "g");
    c.output("y");
    test::check_throws_with<parse_error>([&] { load(c); }, {"'g'", "expects 2 inputs", "receives 3"});
  }
  SUBCASE("a weight computed by the graph") {
    onnx_builder b({1, 2});
    b.node("Gemm", {"x", "x"}, {"y"}, "g");
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"'g'"});
  }
  SUBCASE("opset out of range") {
    onnx_builder b({1, 2}, 8);
    b.node("Relu", {"x"}, {"y"});
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"opset 8", "9 to 17"});
  }
  SUBCASE("batch dimension larger than 1") {
    onnx_builder b({4, 2});
    b.node("Relu", {"x"}, {"y"});
    b.output("y");
    test::check_throws_with<unsupported_error>([&] { load(b); }, {"batch dimension 4"});
  }
}

TEST_CASE("onnx: non-finite weights name the tensor and the flat index") {
  for (double bad : {std::nan(""), double{INFINITY}, -double{INFINITY}}) {
    for (auto how : {storage::raw_float, storage::typed_double}) {
      onnx_builder b({1, 3});
      b.init("fc.weight", {2, 3}, {0, 1, 2, 3, bad, 5}, how);
      auto& n = b.node("Gemm", {"x", "fc.weight"}, {"y"});
      onnx_builder::set_int(n, "transB", 1);
      b.output("y");
      test::check_throws_with<error>([&] { load(b, "nan.onnx"); }, {"nan.onnx", "'fc.weight'", "flat index 4"});
    }
  }
}

TEST_CASE("onnx: truncated, garbage and inconsistent files are parse errors naming the file") {
  onnx_builder b({1, 3});
  b.init("W", {2, 3}, test::pseudo_random(6, 1));
  auto& n = b.node("Gemm", {"x", "W"}, {"y"});
  onnx_builder::set_int(n, "transB", 1);
  b.output("y");
  const std::string bytes = b.bytes();
  CHECK_NOTHROW(load_onnx_bytes(bytes, "ok.onnx"));
  // Every proper prefix must fail cleanly (never crash, never load a partial network).
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    CAPTURE(len);
    CHECK_THROWS_AS(load_onnx_bytes(std::string_view(bytes).substr(0, len), "cut.onnx"), error);
  }
  test::check_throws_with<parse_error>([&] { load_onnx_bytes(bytes.substr(0, bytes.size() / 2), "cut.onnx"); },
                                       {"cut.onnx"});
  test::check_throws_with<parse_error>([&] { load_onnx_bytes("\xff\xff\xff\xff garbage", "junk.onnx"); },
                                       {"junk.onnx"});
  // raw_data size disagreeing with dims
  onnx_builder c({1, 3});
  auto& t = c.init("W", {2, 3}, test::pseudo_random(6, 1));
  t.mutable_raw_data()->resize(20);
  c.node("Gemm", {"x", "W"}, {"y"});
  c.output("y");
  test::check_throws_with<parse_error>([&] { load(c, "short.onnx"); }, {"short.onnx", "'W'", "20 bytes", "24"});
}

TEST_CASE("onnx: external data is refused without touching the file system") {
  onnx_builder b({1, 3});
  auto& t = b.init("W", {2, 3}, {});
  t.clear_raw_data();
  t.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  auto* e = t.add_external_data();
  e->set_key("location");
  e->set_value("/etc/passwd");
  b.node("Gemm", {"x", "W"}, {"y"});
  b.output("y");
  test::check_throws_with<unsupported_error>([&] { load(b, "ext.onnx"); }, {"ext.onnx", "'W'", "external"});
}

TEST_CASE("onnx: limits on parameters and nodes") {
  onnx_builder b({1, 3});
  auto& t = b.init("huge", {100000, 100000}, {});
  t.clear_raw_data();
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  test::check_throws_with<limit_error>([&] { load(b); }, {"'huge'", "max_onnx_parameters"});

  onnx_builder c({1, 3});
  std::string prev = "x";
  for (std::size_t i = 0; i <= max_onnx_nodes; ++i) {
    const std::string next = fmt::format("t{}", i);  // not "t" + to_string: GCC 12 -Wrestrict false positive
    c.node("Identity", {prev}, {next});
    prev = next;
  }
  c.output(prev);
  test::check_throws_with<limit_error>([&] { load(c); }, {"max_onnx_nodes"});
}

TEST_CASE("onnx: a tensor whose data is missing is refused before its claimed size is allocated") {
  // Found by fuzz_onnx (fuzz/regressions/onnx/oom-claimed-tensor-size): dimensions within
  // max_onnx_parameters but no data behind them used to allocate the whole tensor (2.8 GB for
  // a 30 KB file) before the data count was checked.
  for (bool raw : {true, false}) {
    CAPTURE(raw);
    onnx_builder b({1, 3});
    auto& t = b.init("claims", {20000, 20000}, {});  // 4·10^8 values, 3.2 GB as doubles
    t.clear_raw_data();
    if (raw) t.set_raw_data(std::string(4, '\0'));
    b.node("Relu", {"x"}, {"y"});
    b.output("y");
    const std::string bytes = b.bytes();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // Sanitizers reserve terabytes of address space, so RLIMIT_AS cannot be used there.
    test::check_throws_with<parse_error>([&] { (void)load_onnx_bytes(bytes, "m.onnx"); }, {"'claims'", "needs"});
#else
    // In a child whose address space is capped at 1 GiB: allocating first would throw
    // bad_alloc (exit 2) instead of the parse_error about the data (exit 0).
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const rlimit cap{1ul << 30, 1ul << 30};
      ::setrlimit(RLIMIT_AS, &cap);
      try {
        (void)load_onnx_bytes(bytes, "m.onnx");
        ::_exit(1);
      } catch (const parse_error& e) {
        ::_exit(std::string(e.what()).find("needs") != std::string::npos ? 0 : 3);
      } catch (const std::bad_alloc&) {
        ::_exit(2);
      } catch (...) {
        ::_exit(4);
      }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
#endif
  }
}

TEST_CASE("onnx: load_onnx reads a file and reports a missing one") {
  const auto dir = test::scratch_dir("onnx_file");
  onnx_builder b({1, 2});
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  test::write_bytes(dir / "m.onnx", b.bytes());
  const network net = load_onnx(dir / "m.onnx");
  CHECK(net.source == (dir / "m.onnx").string());
  CHECK(net.input_name == "x");
  test::check_throws_with<io_error>([&] { load_onnx(dir / "missing.onnx"); }, {"missing.onnx"});
}

}  // namespace provnn::engine

// ---------------------------------------------------------------------------------------
// Bundled fixtures (tests/data): the layer list of every model as the fixture script recorded
// it (BatchNorm folded away, Softmax skipped), and the clear error of every broken model.

namespace provnn::engine {

TEST_CASE("onnx: bundled models import to the layer lists of the manifest") {
  for (const auto& [path, info] : test::fixture_manifest().at("models").items()) {
    CAPTURE(path);
    const network net = load_onnx(test::data_dir() / path);
    const auto& layers = info.at("layers");
    REQUIRE(net.layers.size() == layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
      CAPTURE(i);
      CHECK(net.layers[i].name == layers[i].at("name").get<std::string>());
      CHECK(net.layers[i].op_type == layers[i].at("op_type").get<std::string>());
      CHECK(net.layers[i].in_shape == layers[i].at("in_shape").get<shape_t>());
      CHECK(net.layers[i].out_shape == layers[i].at("out_shape").get<shape_t>());
    }
    const auto ops = info.at("ops").get<std::vector<std::string>>();
    CHECK(net.skipped_softmax == (ops.back() == "Softmax" ? "Softmax" : ""));
  }
}

TEST_CASE("onnx: every bundled broken model gives its clear error") {
  const auto dir = test::data_dir() / "models" / "bad";
  REQUIRE(test::fixture_manifest().at("bad_models").size() == 6);
  test::check_throws_with<unsupported_error>([&] { load_onnx(dir / "unknown_op.onnx"); },
                                             {"unknown_op.onnx", "Sigmoid", "#1", "supported ops"});
  test::check_throws_with<unsupported_error>([&] { load_onnx(dir / "residual.onnx"); },
                                             {"residual.onnx", "Add", "residual"});
  test::check_throws_with<unsupported_error>([&] { load_onnx(dir / "two_inputs.onnx"); },
                                             {"two_inputs.onnx", "2 inputs", "'x'", "'y'"});
  test::check_throws_with<error>([&] { load_onnx(dir / "nan_weight.onnx"); },
                                 {"nan_weight.onnx", "nan", "flat index 5"});
  test::check_throws_with<parse_error>([&] { load_onnx(dir / "truncated.onnx"); }, {"truncated.onnx"});
  test::check_throws_with<parse_error>([&] { load_onnx(dir / "not_onnx.onnx"); }, {"not_onnx.onnx"});
}

}  // namespace provnn::engine
