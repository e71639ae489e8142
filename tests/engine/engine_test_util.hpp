// Shared helpers for the engine tests: fixture paths, scratch files, and a small builder of
// ONNX models made with the protobuf classes (so every op and error case is one test away).
#pragma once

#ifndef ONNX_ML
#define ONNX_ML 1  // tests link onnx_proto through provnn but do not inherit its definitions
#endif
#include <doctest/doctest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "circuits/circuit.hpp"
#include "engine/network.hpp"
#include "engine/npy.hpp"
#include "engine/rules.hpp"

namespace provnn::test {

/// tests/data in the source tree.
inline std::filesystem::path data_dir() { return PROVNN_TEST_DATA_DIR; }

/// A fresh per-test scratch folder under the build tree.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(PROVNN_BINARY_DIR) / "test-scratch" / "engine" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// tests/data/expected/manifest.json, written by tools/make_fixtures.py (paths inside are
/// relative to tests/data).
inline const nlohmann::json& fixture_manifest() {
  static const nlohmann::json m = [] {
    std::ifstream in(data_dir() / "expected" / "manifest.json");
    REQUIRE_MESSAGE(in.good(), "missing ", (data_dir() / "expected" / "manifest.json").string());
    return nlohmann::json::parse(in);
  }();
  return m;
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

/// Largest |a_i − b_i| / max(1, max_i |b_i|): the relative-to-scale error the tests bound.
inline double scaled_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double scale = 1.0, err = 0.0;
  for (double v : b) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < a.size(); ++i) err = std::max(err, std::abs(a[i] - b[i]));
  return err / scale;
}

/// Checks that calling f throws E whose message contains every one of `parts`.
template <class E, class F>
void check_throws_with(F&& f, std::initializer_list<std::string> parts) {
  bool thrown = false;
  try {
    f();
  } catch (const E& e) {
    thrown = true;
    const std::string msg = e.what();
    for (const auto& p : parts) {
      INFO("message: ", msg);
      CHECK_MESSAGE(msg.find(p) != std::string::npos, "missing '", p, "'");
    }
  }
  CHECK_MESSAGE(thrown, "expected exception not thrown");
}

/// Builds an ONNX model graph by hand.
class onnx_builder {
 public:
  /// dims include the batch axis; batch 0 makes it symbolic ("N").
  explicit onnx_builder(std::vector<std::int64_t> input_dims, std::int64_t opset = 13, std::string input = "x") {
    model.set_ir_version(7);
    model.set_producer_name("provnn-tests");
    auto* op = model.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    graph = model.mutable_graph();
    graph->set_name("test");
    add_input(input, input_dims);
  }

  void add_input(const std::string& name, const std::vector<std::int64_t>& dims) {
    auto* in = graph->add_input();
    in->set_name(name);
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto_DataType_FLOAT);
    auto* shape = tt->mutable_shape();
    for (std::size_t i = 0; i < dims.size(); ++i) {
      auto* d = shape->add_dim();
      if (i == 0 && dims[i] == 0)
        d->set_dim_param("N");
      else
        d->set_dim_value(dims[i]);
    }
  }

  enum class storage { raw_float, typed_float, raw_double, typed_double };

  /// Adds a float initialiser (stored as `how`); returns its name.
  onnx::TensorProto& init(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<double>& v,
                          storage how = storage::raw_float) {
    auto* t = graph->add_initializer();
    fill_tensor(*t, name, dims, v, how);
    return *t;
  }

  static void fill_tensor(onnx::TensorProto& t, const std::string& name, const std::vector<std::int64_t>& dims,
                          const std::vector<double>& v, storage how = storage::raw_float) {
    t.set_name(name);
    for (auto d : dims) t.add_dims(d);
    switch (how) {
      case storage::raw_float: {
        t.set_data_type(onnx::TensorProto_DataType_FLOAT);
        std::string raw(v.size() * 4, '\0');
        for (std::size_t i = 0; i < v.size(); ++i) {
          const float f = static_cast<float>(v[i]);
          std::memcpy(raw.data() + 4 * i, &f, 4);
        }
        t.set_raw_data(raw);
        break;
      }
      case storage::typed_float:
        t.set_data_type(onnx::TensorProto_DataType_FLOAT);
        for (double x : v) t.add_float_data(static_cast<float>(x));
        break;
      case storage::raw_double: {
        t.set_data_type(onnx::TensorProto_DataType_DOUBLE);
        std::string raw(v.size() * 8, '\0');
        if (!v.empty()) std::memcpy(raw.data(), v.data(), raw.size());
        t.set_raw_data(raw);
        break;
      }
      case storage::typed_double:
        t.set_data_type(onnx::TensorProto_DataType_DOUBLE);
        for (double x : v) t.add_double_data(x);
        break;
    }
  }

  onnx::TensorProto& int_init(const std::string& name, const std::vector<std::int64_t>& v) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->add_dims(static_cast<std::int64_t>(v.size()));
    t->set_data_type(onnx::TensorProto_DataType_INT64);
    for (auto x : v) t->add_int64_data(x);
    return *t;
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = graph->add_node();
    n->set_op_type(op);
    if (!name.empty()) n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }

  static void set_int(onnx::NodeProto& n, const std::string& name, std::int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INT);
    a->set_i(v);
  }
  static void set_float(onnx::NodeProto& n, const std::string& name, double v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    a->set_f(static_cast<float>(v));
  }
  static void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<std::int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void set_string(onnx::NodeProto& n, const std::string& name, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_STRING);
    a->set_s(v);
  }

  void output(const std::string& name) {
    auto* o = graph->add_output();
    o->set_name(name);
    o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  }

  std::string bytes() const { return model.SerializeAsString(); }

  onnx::ModelProto model;
  onnx::GraphProto* graph;
};

/// Deterministic pseudo-random values in [lo, hi), exactly representable as float (so float
/// storage in a model loses nothing and hand computations in double agree to rounding).
inline std::vector<double> pseudo_random(std::size_t n, std::uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::vector<double> v(n);
  std::uint32_t s = seed * 2654435761u + 12345u;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    const double u = static_cast<double>(s >> 8) / static_cast<double>(1u << 24);  // 24 bits: float-exact
    x = static_cast<double>(static_cast<float>(lo + (hi - lo) * u));
  }
  return v;
}

/// A convolution layer on input shape (C, H, W), its output shape by the ONNX formula.
inline engine::layer conv_layer(engine::conv2d_op c, engine::shape_t in) {
  engine::layer l;
  l.name = "conv";
  l.op_type = "Conv";
  const std::size_t oh = (in[1] + c.pad_top + c.pad_bottom - c.dilation_h * (c.kernel_h - 1) - 1) / c.stride_h + 1;
  const std::size_t ow = (in[2] + c.pad_left + c.pad_right - c.dilation_w * (c.kernel_w - 1) - 1) / c.stride_w + 1;
  l.out_shape = {c.out_channels, oh, ow};
  l.in_shape = std::move(in);
  l.op = std::move(c);
  return l;
}

/// Edge contexts (layer, lower, upper, term, parameter by name), sorted: two layouts of one
/// explanation number their gates and tokens differently but have the same edges.
inline std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t, std::string>>
sorted_contexts(const circuit& c) {
  std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t, std::string>> out;
  for (const auto& e : c.edge_contexts())
    out.emplace_back(e.layer, e.lower, e.upper, e.term, e.parameter == no_token ? "-" : c.tokens().name(e.parameter));
  std::sort(out.begin(), out.end());
  return out;
}

/// The rules of one rule spec as the CLI's --rule takes it ("epsilon", "gamma:0.25", …) or,
/// after "preset:", of a composite preset ("preset:epsilon-plus"), resolved for net with any
/// bounds loaded from their .npy files.
inline std::vector<engine::rule> rules_from_spec(const std::string& spec, const engine::network& net) {
  engine::composite c;
  if (spec.rfind("preset:", 0) == 0)
    c = engine::parse_composite(spec.substr(7));
  else
    engine::add_rule_option(c, spec);
  auto rs = engine::resolve(c, net);
  engine::resolve_bounds(rs, [](const std::string& p) { return engine::read_npy(p).data; });
  return rs;
}

}  // namespace provnn::test
