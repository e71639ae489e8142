#include "engine/onnx_import.hpp"

#include <fmt/format.h>
#include <onnx/onnx_pb.h>  // defines ONNX_API, then includes onnx-ml.pb.h (ONNX_ML comes from onnx_proto)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "common/error.hpp"

namespace provnn::engine {
namespace {

constexpr const char* supported_ops =
    "Gemm, MatMul, Add (a constant bias after Gemm/MatMul/Conv), Conv, Relu, MaxPool, AveragePool, "
    "Pad (zeros, before Conv/AveragePool), "
    "GlobalAveragePool, Flatten, Reshape (constant shape), BatchNormalization (after Conv/Gemm/MatMul), "
    "Dropout, Identity, Constant, Softmax/LogSoftmax (trailing only)";

/// A constant tensor: initialiser or Constant node output. Floating data goes to `values`,
/// integer data (Reshape shapes) to `ints`.
struct constant {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  std::vector<std::int64_t> ints;
  bool is_integer = false;
  std::size_t count() const { return is_integer ? ints.size() : values.size(); }
};

class importer {
 public:
  importer(std::string source) : source_(std::move(source)) {}

  network run(std::string_view bytes);

 private:
  std::string source_;
  const onnx::GraphProto* graph_ = nullptr;
  std::map<std::string, constant, std::less<>> constants_;
  std::map<std::string, int, std::less<>> readers_;  // computed tensor → number of nodes reading it
  std::set<std::string, std::less<>> graph_outputs_;
  network net_;
  std::string current_;  // name of the tensor at the head of the chain
  shape_t shape_;        // its shape (no batch dimension)
  std::size_t total_parameters_ = 0;
  // A zero Pad waiting to be folded into the Conv or AveragePool that follows it (PyTorch
  // exports AvgPool2d(padding=p, count_include_pad=True) as Pad + AveragePool).
  struct pending_pad {
    std::size_t top = 0, left = 0, bottom = 0, right = 0;
    std::string node;
  };
  std::optional<pending_pad> pad_;

  // Context of the node being imported, for messages.
  const onnx::NodeProto* node_ = nullptr;
  int node_index_ = -1;
  std::string node_name_;

  std::string where() const {
    return fmt::format("{}: node '{}' (#{}, {})", source_, node_name_, node_index_, node_->op_type());
  }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw unsupported_error(fmt::format("{}: {}", where(), what));
  }
  [[noreturn]] void malformed(const std::string& what) const {
    throw parse_error(fmt::format("{}: {}", where(), what));
  }

  void check_opset(const onnx::ModelProto& model);
  void read_initialisers();
  constant convert_tensor(const onnx::TensorProto& t, const std::string& name);
  void read_input();
  void count_readers();
  void import_node();

  // Attribute access.
  const onnx::AttributeProto* attr(std::string_view name) const;
  std::int64_t attr_int(std::string_view name, std::int64_t def) const;
  double attr_float(std::string_view name, double def) const;
  std::vector<std::int64_t> attr_ints(std::string_view name) const;
  std::string attr_string(std::string_view name, std::string def) const;
  void refuse_attributes_except(std::initializer_list<std::string_view> known) const;

  const constant& const_input(int i, std::string_view role) const;
  const constant* optional_const_input(int i, std::string_view role) const;
  void set_output(shape_t out_shape);
  void push(std::string op_type, decltype(layer::op) op, shape_t out_shape);

  void gemm();
  void matmul();
  void add_bias();
  void conv();
  void pool(pool_op::kind mode, bool global);
  void pad();
  void flatten();
  void reshape();
  void batch_norm();
};

std::string shape_str(const shape_t& s) { return fmt::format("({})", fmt::join(s, ", ")); }

std::size_t checked_count(const std::vector<std::int64_t>& dims, std::size_t limit, bool& ok) {
  std::size_t n = 1;
  ok = true;
  for (auto d : dims) {
    if (d < 0) {
      ok = false;
      return 0;
    }
    if (d != 0 && n > limit / static_cast<std::size_t>(d)) {
      ok = false;
      return 0;
    }
    n *= static_cast<std::size_t>(d);
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// Constants

constant importer::convert_tensor(const onnx::TensorProto& t, const std::string& name) {
  if (t.has_data_location() && t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    throw unsupported_error(
        fmt::format("{}: tensor '{}' keeps its data in an external file; provnn reads self-contained models only "
                    "(re-save with onnx.save_model(model, path, save_as_external_data=False))",
                    source_, name));
  if (t.has_segment())
    throw unsupported_error(
        fmt::format("{}: tensor '{}' is segmented; provnn reads whole tensors only", source_, name));
  constant c;
  c.dims.assign(t.dims().begin(), t.dims().end());
  bool ok = false;
  const std::size_t n = checked_count(c.dims, max_onnx_parameters, ok);
  if (!ok)
    throw limit_error(
        fmt::format("{}: tensor '{}' has dimensions {} (negative, or more than {} values, the limit "
                    "max_onnx_parameters)",
                    source_, name, fmt::join(c.dims, "×"), max_onnx_parameters));
  const bool raw = t.has_raw_data();
  const std::string& bytes = t.raw_data();
  auto check_raw = [&](std::size_t elem) {
    if (bytes.size() != n * elem)
      throw parse_error(fmt::format("{}: tensor '{}' has {} bytes of raw data, but its shape ({}) needs {}", source_,
                                    name, bytes.size(), fmt::join(c.dims, "×"), n * elem));
  };
  auto check_typed = [&](std::size_t have) {
    if (have != n)
      throw parse_error(fmt::format("{}: tensor '{}' holds {} values, but its shape ({}) needs {}", source_, name, have,
                                    fmt::join(c.dims, "×"), n));
  };
  // The data must be in the file before anything sized by the dimensions is allocated: a
  // 100-byte model may claim a tensor of 10^8 values (found by fuzz_onnx).
  std::size_t elem = 0, have = 0;
  switch (t.data_type()) {
    case onnx::TensorProto_DataType_FLOAT: elem = 4, have = static_cast<std::size_t>(t.float_data_size()); break;
    case onnx::TensorProto_DataType_DOUBLE: elem = 8, have = static_cast<std::size_t>(t.double_data_size()); break;
    case onnx::TensorProto_DataType_INT64: elem = 8, have = static_cast<std::size_t>(t.int64_data_size()); break;
    case onnx::TensorProto_DataType_BOOL: elem = 1, have = static_cast<std::size_t>(t.int32_data_size()); break;
    case onnx::TensorProto_DataType_INT32: elem = 4, have = static_cast<std::size_t>(t.int32_data_size()); break;
    default:
      throw unsupported_error(fmt::format(
          "{}: tensor '{}' has ONNX data type {} ({}); provnn reads float, double, bool, int32 and int64 tensors",
          source_, name, t.data_type(), onnx::TensorProto_DataType_Name(t.data_type())));
  }
  if (raw)
    check_raw(elem);
  else
    check_typed(have);
  switch (t.data_type()) {
    case onnx::TensorProto_DataType_FLOAT: {
      c.values.resize(n);
      if (raw) {
        for (std::size_t i = 0; i < n; ++i) {
          float f;
          std::memcpy(&f, bytes.data() + 4 * i, 4);  // ONNX raw data is little-endian, as is the host
          c.values[i] = f;
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) c.values[i] = t.float_data(static_cast<int>(i));
      }
      break;
    }
    case onnx::TensorProto_DataType_DOUBLE: {
      c.values.resize(n);
      if (raw) {
        std::memcpy(c.values.data(), bytes.data(), 8 * n);
      } else {
        for (std::size_t i = 0; i < n; ++i) c.values[i] = t.double_data(static_cast<int>(i));
      }
      break;
    }
    case onnx::TensorProto_DataType_INT64: {
      c.is_integer = true;
      c.ints.resize(n);
      if (raw) {
        std::memcpy(c.ints.data(), bytes.data(), 8 * n);
      } else {
        for (std::size_t i = 0; i < n; ++i) c.ints[i] = t.int64_data(static_cast<int>(i));
      }
      break;
    }
    case onnx::TensorProto_DataType_BOOL:  // Dropout's training_mode
    case onnx::TensorProto_DataType_INT32: {
      c.is_integer = true;
      c.ints.resize(n);
      if (raw) {
        for (std::size_t i = 0; i < n; ++i) {
          if (elem == 1) {
            c.ints[i] = static_cast<unsigned char>(bytes[i]);
          } else {
            std::int32_t v;
            std::memcpy(&v, bytes.data() + 4 * i, 4);
            c.ints[i] = v;
          }
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) c.ints[i] = t.int32_data(static_cast<int>(i));
      }
      break;
    }
    default:
      break;  // refused above
  }
  if (!c.is_integer) {
    total_parameters_ += n;
    if (total_parameters_ > max_onnx_parameters)
      throw limit_error(fmt::format("{}: the model has more than {} parameters (limit max_onnx_parameters)", source_,
                                    max_onnx_parameters));
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isfinite(c.values[i]))
        throw error(fmt::format("{}: tensor '{}' holds {} at flat index {}; provnn needs finite weights", source_, name,
                                c.values[i], i));
  }
  return c;
}

void importer::read_initialisers() {
  for (const auto& t : graph_->initializer()) {
    if (t.name().empty()) throw parse_error(fmt::format("{}: an initialiser has no name", source_));
    constants_[t.name()] = convert_tensor(t, t.name());
  }
  if (graph_->sparse_initializer_size() > 0)
    throw unsupported_error(
        fmt::format("{}: the model has sparse initialisers; provnn reads dense tensors only", source_));
}

// ---------------------------------------------------------------------------------------
// Model, graph input, chain structure

void importer::check_opset(const onnx::ModelProto& model) {
  std::optional<std::int64_t> version;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") version = op.version();
  if (!version)
    throw parse_error(
        fmt::format("{}: the model declares no opset for the default ONNX domain (a truncated or "
                    "non-ONNX file?)",
                    source_));
  if (*version < 9 || *version > 17)
    throw unsupported_error(
        fmt::format("{}: the model uses ONNX opset {}; provnn reads opsets 9 to 17 (re-export "
                    "with e.g. torch.onnx.export(..., opset_version=13))",
                    source_, *version));
}

void importer::read_input() {
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& in : graph_->input())
    if (!constants_.count(in.name())) inputs.push_back(&in);
  if (inputs.size() != 1) {
    std::vector<std::string> names;
    for (auto* in : inputs) names.push_back("'" + in->name() + "'");
    throw unsupported_error(
        fmt::format("{}: the graph has {} inputs ({}); provnn handles networks with exactly one "
                    "input (a chain of layers)",
                    source_, inputs.size(), fmt::join(names, ", ")));
  }
  const auto& in = *inputs[0];
  net_.input_name = in.name();
  if (!in.type().has_tensor_type())
    throw unsupported_error(fmt::format("{}: graph input '{}' is not a tensor", source_, in.name()));
  const auto& tt = in.type().tensor_type();
  if (tt.elem_type() != onnx::TensorProto_DataType_FLOAT && tt.elem_type() != onnx::TensorProto_DataType_DOUBLE)
    throw unsupported_error(fmt::format("{}: graph input '{}' has element type {}; provnn needs float or double",
                                        source_, in.name(), onnx::TensorProto_DataType_Name(tt.elem_type())));
  if (!tt.has_shape() || tt.shape().dim_size() < 2)
    throw unsupported_error(
        fmt::format("{}: graph input '{}' has no shape of rank ≥ 2 (batch, features…); provnn "
                    "reads the input shape from the model",
                    source_, in.name()));
  const auto& dims = tt.shape().dim();
  if (dims[0].has_dim_value() && dims[0].dim_value() != 1)
    throw unsupported_error(
        fmt::format("{}: graph input '{}' has batch dimension {}; provnn explains one sample "
                    "(re-export with batch 1 or a dynamic batch axis)",
                    source_, in.name(), dims[0].dim_value()));
  shape_.clear();
  std::size_t count = 1;
  for (int i = 1; i < dims.size(); ++i) {
    if (!dims[i].has_dim_value() || dims[i].dim_value() <= 0)
      throw unsupported_error(
          fmt::format("{}: graph input '{}' has a symbolic or non-positive dimension {} ('{}'); "
                      "provnn needs a fixed input shape apart from the batch axis",
                      source_, in.name(), i, dims[i].dim_param()));
    const auto d = static_cast<std::size_t>(dims[i].dim_value());
    if (d > max_onnx_activation || count * d > max_onnx_activation)  // count, d ≤ 1e8: no overflow
      throw limit_error(fmt::format("{}: graph input '{}' has more than max_onnx_activation = {} elements", source_,
                                    in.name(), max_onnx_activation));
    count *= d;
    shape_.push_back(d);
  }
  net_.input_shape = shape_;
  current_ = in.name();
}

void importer::count_readers() {
  // Constant outputs, and Identity of a constant (exporters alias shared weights that way).
  std::set<std::string, std::less<>> constant_outputs;
  for (const auto& node : graph_->node()) {
    const bool const_identity = node.op_type() == "Identity" && node.input_size() == 1 &&
                                (constants_.count(node.input(0)) || constant_outputs.count(node.input(0)));
    if (node.op_type() == "Constant" || const_identity)
      for (const auto& out : node.output()) constant_outputs.insert(out);
  }
  auto computed = [&](const std::string& name) {
    return !name.empty() && !constants_.count(name) && !constant_outputs.count(name);
  };
  for (int i = 0; i < graph_->node_size(); ++i) {
    const auto& node = graph_->node(i);
    std::vector<std::string> names;
    for (const auto& in : node.input())
      if (computed(in)) {
        names.push_back(in);
        ++readers_[in];
      }
    if (node.op_type() == "Reshape" && node.input_size() > 1 && computed(node.input(1))) {
      node_ = &node;
      node_index_ = i;
      node_name_ = node.name().empty() ? fmt::format("{}_{}", node.op_type(), i) : node.name();
      unsupported(
          "its target shape is computed in the graph (as torch exports x.view(x.size(0), -1)); provnn needs a "
          "constant shape: use torch.flatten(x, 1), nn.Flatten, or a constant shape");
    }
    // A node joining two computed tensors is the clearest sign of a non-chain graph: report it
    // first, before the fork it joins is seen as "a tensor read twice".
    if (names.size() > 1) {
      node_ = &node;
      node_index_ = i;
      node_name_ = node.name().empty() ? fmt::format("{}_{}", node.op_type(), i) : node.name();
      unsupported(
          fmt::format("it combines computed tensors '{}': a residual/skip connection, or a parameter (weight, "
                      "pads, shape) computed by other nodes; provnn handles chains of layers whose parameters "
                      "are constants",
                      fmt::join(names, "', '")));
    }
  }
  for (const auto& out : graph_->output()) {
    graph_outputs_.insert(out.name());
    ++readers_[out.name()];
  }
  if (graph_->output_size() != 1)
    throw unsupported_error(fmt::format("{}: the graph has {} outputs; provnn handles networks with exactly one output",
                                        source_, graph_->output_size()));
}

// ---------------------------------------------------------------------------------------
// Attributes and inputs

const onnx::AttributeProto* importer::attr(std::string_view name) const {
  for (const auto& a : node_->attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

std::int64_t importer::attr_int(std::string_view name, std::int64_t def) const {
  const auto* a = attr(name);
  if (!a) return def;
  if (a->type() != onnx::AttributeProto_AttributeType_INT)
    malformed(fmt::format("attribute '{}' is not an integer", name));
  return a->i();
}

double importer::attr_float(std::string_view name, double def) const {
  const auto* a = attr(name);
  if (!a) return def;
  if (a->type() != onnx::AttributeProto_AttributeType_FLOAT)
    malformed(fmt::format("attribute '{}' is not a float", name));
  return a->f();
}

std::vector<std::int64_t> importer::attr_ints(std::string_view name) const {
  const auto* a = attr(name);
  if (!a) return {};
  if (a->type() != onnx::AttributeProto_AttributeType_INTS)
    malformed(fmt::format("attribute '{}' is not a list of integers", name));
  // Kernel sizes, strides, dilations and pads: bounding them keeps every size computation
  // below far from overflow.
  constexpr auto bound = static_cast<std::int64_t>(max_onnx_activation);
  for (auto v : a->ints())
    if (v < -bound || v > bound) malformed(fmt::format("attribute '{}' holds {}, out of range", name, v));
  return {a->ints().begin(), a->ints().end()};
}

std::string importer::attr_string(std::string_view name, std::string def) const {
  const auto* a = attr(name);
  if (!a) return def;
  if (a->type() != onnx::AttributeProto_AttributeType_STRING)
    malformed(fmt::format("attribute '{}' is not a string", name));
  return a->s();
}

// An attribute we do not know changes the semantics in a way we would silently ignore.
void importer::refuse_attributes_except(std::initializer_list<std::string_view> known) const {
  for (const auto& a : node_->attribute())
    if (std::find(known.begin(), known.end(), a.name()) == known.end())
      unsupported(fmt::format("attribute '{}' is not supported for {}", a.name(), node_->op_type()));
}

const constant* importer::optional_const_input(int i, std::string_view role) const {
  if (i >= node_->input_size() || node_->input(i).empty()) return nullptr;
  auto it = constants_.find(node_->input(i));
  if (it == constants_.end())
    unsupported(
        fmt::format("input {} ('{}', the {}) must be a constant (initialiser or Constant node), but it is "
                    "computed",
                    i, node_->input(i), role));
  return &it->second;
}

const constant& importer::const_input(int i, std::string_view role) const {
  const constant* c = optional_const_input(i, role);
  if (!c) malformed(fmt::format("the {} (input {}) is missing", role, i));
  return *c;
}

void importer::set_output(shape_t out_shape) {
  if (element_count(out_shape) > max_onnx_activation || element_count(out_shape) == 0)
    throw limit_error(fmt::format("{}: output of shape {} is empty or has more than max_onnx_activation = {} elements",
                                  where(), shape_str(out_shape), max_onnx_activation));
  shape_ = std::move(out_shape);
}

void importer::push(std::string op_type, decltype(layer::op) op, shape_t out_shape) {
  layer l;
  l.name = node_name_;
  l.op_type = std::move(op_type);
  l.op = std::move(op);
  l.in_shape = shape_;
  set_output(std::move(out_shape));
  l.out_shape = shape_;
  net_.layers.push_back(std::move(l));
}

// ---------------------------------------------------------------------------------------
// Ops

void importer::gemm() {
  refuse_attributes_except({"alpha", "beta", "transA", "transB", "broadcast"});
  if (attr_int("transA", 0) != 0)
    unsupported("transA = 1 would make the batch axis a feature axis; provnn supports transA = 0");
  const double alpha = attr_float("alpha", 1.0), beta = attr_float("beta", 1.0);
  const bool trans_b = attr_int("transB", 0) != 0;
  if (shape_.size() != 1)
    malformed(fmt::format("Gemm needs a 2-D input (batch, features), but receives {} per sample; insert a Flatten",
                          shape_str(shape_)));
  const constant& b = const_input(1, "weight B");
  if (b.is_integer || b.dims.size() != 2) malformed("the weight B must be a 2-D float tensor");
  const std::size_t r = static_cast<std::size_t>(b.dims[0]), c = static_cast<std::size_t>(b.dims[1]);
  const std::size_t in = trans_b ? c : r, out = trans_b ? r : c;
  if (in != shape_[0])
    malformed(fmt::format("the weight B ({}×{}, transB = {}) expects {} inputs, but the layer receives {}", r, c,
                          trans_b ? 1 : 0, in, shape_[0]));
  dense_op d;
  d.in = in;
  d.out = out;
  d.weight.resize(in * out);
  for (std::size_t k = 0; k < out; ++k)
    for (std::size_t j = 0; j < in; ++j)
      d.weight[k * in + j] = alpha * (trans_b ? b.values[k * in + j] : b.values[j * out + k]);
  d.bias.assign(out, 0.0);
  if (const constant* cb = optional_const_input(2, "bias C")) {
    if (cb->is_integer) malformed("the bias C must be a float tensor");
    // C broadcasts to (1, out): scalar, (out), (1, out), (1, 1) or (1).
    const std::size_t n = cb->values.size();
    const bool fits =
        cb->dims.size() <= 2 && (n == 1 || (n == out && static_cast<std::size_t>(cb->dims.back()) == out));
    if (!fits)
      malformed(fmt::format("the bias C has shape ({}), which does not broadcast to (1, {})", fmt::join(cb->dims, ", "),
                            out));
    for (std::size_t k = 0; k < out; ++k) d.bias[k] = beta * cb->values[n == 1 ? 0 : k];
  }
  push("Gemm", std::move(d), {out});
}

void importer::matmul() {
  refuse_attributes_except({});
  if (shape_.size() != 1)
    unsupported(fmt::format("MatMul is supported on a (batch, features) input only, but receives {} per sample",
                            shape_str(shape_)));
  const constant& b = const_input(1, "weight");
  if (b.is_integer || b.dims.size() != 2) malformed("the weight must be a 2-D float tensor");
  const std::size_t in = static_cast<std::size_t>(b.dims[0]), out = static_cast<std::size_t>(b.dims[1]);
  if (in != shape_[0])
    malformed(fmt::format("the weight ({}×{}) expects {} inputs, but the layer receives {}", in, out, in, shape_[0]));
  dense_op d;
  d.in = in;
  d.out = out;
  d.weight.resize(in * out);
  for (std::size_t k = 0; k < out; ++k)
    for (std::size_t j = 0; j < in; ++j) d.weight[k * in + j] = b.values[j * out + k];
  d.bias.assign(out, 0.0);
  push("MatMul", std::move(d), {out});
}

// Add(chain, constant) right after a linear layer is that layer's bias (MatMul + Add is how
// some exporters write a dense layer); any other Add is outside a chain of provnn's layers.
void importer::add_bias() {
  refuse_attributes_except({"broadcast", "axis"});
  const int ci = node_->input(0) == current_ ? 1 : 0;
  const constant& c = const_input(ci, "bias");
  if (c.is_integer) malformed("the added constant must be a float tensor");
  layer* prev = net_.layers.empty() ? nullptr : &net_.layers.back();
  const std::size_t n = c.values.size();
  if (prev && prev->out_shape == shape_) {
    if (auto* d = std::get_if<dense_op>(&prev->op)) {
      const bool fits = (n == 1 || n == d->out) && (c.dims.empty() || static_cast<std::size_t>(c.dims.back()) == n);
      if (fits) {
        for (std::size_t k = 0; k < d->out; ++k) d->bias[k] += c.values[n == 1 ? 0 : k];
        return;
      }
    } else if (auto* cv = std::get_if<conv2d_op>(&prev->op)) {
      // (C, 1, 1) or (1, C, 1, 1): one value per channel; or a scalar.
      bool per_channel = n == cv->out_channels && c.dims.size() >= 3;
      if (per_channel)
        for (std::size_t i = 0; i < c.dims.size(); ++i) {
          const bool channel_axis = i == c.dims.size() - 3;
          if (!channel_axis && c.dims[i] != 1) per_channel = false;
        }
      if (per_channel || n == 1) {
        for (std::size_t k = 0; k < cv->out_channels; ++k) cv->bias[k] += c.values[n == 1 ? 0 : k];
        return;
      }
    }
  }
  unsupported(
      fmt::format("Add is supported only as a constant per-unit bias right after Gemm/MatMul/Conv; here it "
                  "adds a constant of shape ({}) to {}",
                  fmt::join(c.dims, ", "),
                  prev ? fmt::format("the output of '{}' ({})", prev->name, prev->op_type) : "the graph input"));
}

// ONNX auto_pad for one spatial axis: returns (begin, end).
std::pair<std::size_t, std::size_t> same_pads(std::size_t in, std::size_t stride, std::size_t extent, bool upper) {
  const std::size_t out = (in + stride - 1) / stride;
  const std::size_t need = (out - 1) * stride + extent;
  const std::size_t total = need > in ? need - in : 0;
  const std::size_t small = total / 2, large = total - small;
  return upper ? std::pair{small, large} : std::pair{large, small};
}

void importer::conv() {
  refuse_attributes_except({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  if (shape_.size() != 3)
    unsupported(fmt::format("only 2-D convolutions are supported; the input is {} per sample", shape_str(shape_)));
  const constant& w = const_input(1, "weight");
  if (w.is_integer || w.dims.size() != 4)
    unsupported(fmt::format("only 2-D convolutions are supported; the weight has shape ({})", fmt::join(w.dims, ", ")));
  conv2d_op c;
  const std::int64_t group = attr_int("group", 1);
  if (group < 1) malformed("group must be ≥ 1");
  c.group = static_cast<std::size_t>(group);
  c.out_channels = static_cast<std::size_t>(w.dims[0]);
  c.in_channels = shape_[0];
  c.kernel_h = static_cast<std::size_t>(w.dims[2]);
  c.kernel_w = static_cast<std::size_t>(w.dims[3]);
  if (c.in_channels % c.group != 0 || c.out_channels % c.group != 0 ||
      static_cast<std::size_t>(w.dims[1]) * c.group != c.in_channels || c.kernel_h == 0 || c.kernel_w == 0)
    malformed(fmt::format("weight shape ({}) with group {} does not fit an input with {} channels",
                          fmt::join(w.dims, ", "), c.group, c.in_channels));
  const auto ks = attr_ints("kernel_shape");
  if (!ks.empty() && (ks.size() != 2 || static_cast<std::size_t>(ks[0]) != c.kernel_h ||
                      static_cast<std::size_t>(ks[1]) != c.kernel_w))
    malformed(fmt::format("kernel_shape ({}) disagrees with the weight shape ({})", fmt::join(ks, ", "),
                          fmt::join(w.dims, ", ")));
  auto pair_attr = [&](std::string_view name, std::int64_t def) {
    auto v = attr_ints(name);
    if (v.empty()) return std::pair<std::size_t, std::size_t>(def, def);
    if (v.size() != 2 || v[0] < 1 || v[1] < 1)
      malformed(fmt::format("attribute {} must hold two positive values", name));
    return std::pair<std::size_t, std::size_t>(v[0], v[1]);
  };
  std::tie(c.stride_h, c.stride_w) = pair_attr("strides", 1);
  std::tie(c.dilation_h, c.dilation_w) = pair_attr("dilations", 1);
  const std::size_t ext_h = (c.kernel_h - 1) * c.dilation_h + 1, ext_w = (c.kernel_w - 1) * c.dilation_w + 1;
  const std::string auto_pad = attr_string("auto_pad", "NOTSET");
  const std::size_t H = shape_[1], W = shape_[2];
  if (auto_pad == "NOTSET") {
    auto p = attr_ints("pads");
    if (!p.empty()) {
      if (p.size() != 4 || std::any_of(p.begin(), p.end(), [](auto v) { return v < 0; }))
        malformed("pads must hold four non-negative values (top, left, bottom, right)");
      c.pad_top = p[0], c.pad_left = p[1], c.pad_bottom = p[2], c.pad_right = p[3];
    }
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const bool upper = auto_pad == "SAME_UPPER";
    std::tie(c.pad_top, c.pad_bottom) = same_pads(H, c.stride_h, ext_h, upper);
    std::tie(c.pad_left, c.pad_right) = same_pads(W, c.stride_w, ext_w, upper);
  } else if (auto_pad != "VALID") {
    malformed(fmt::format("unknown auto_pad '{}'", auto_pad));
  }
  if (pad_) {
    if (auto_pad != "NOTSET" && auto_pad != "VALID")
      unsupported(fmt::format("auto_pad {} after the Pad node '{}' is not supported", auto_pad, pad_->node));
    c.pad_top += pad_->top, c.pad_left += pad_->left, c.pad_bottom += pad_->bottom, c.pad_right += pad_->right;
    pad_.reset();
  }
  if (H + c.pad_top + c.pad_bottom < ext_h || W + c.pad_left + c.pad_right < ext_w)
    malformed(fmt::format("the kernel ({}×{}, dilated {}×{}) is larger than the padded input {}", c.kernel_h,
                          c.kernel_w, ext_h, ext_w, shape_str(shape_)));
  const std::size_t OH = (H + c.pad_top + c.pad_bottom - ext_h) / c.stride_h + 1;
  const std::size_t OW = (W + c.pad_left + c.pad_right - ext_w) / c.stride_w + 1;
  c.weight = w.values;
  c.bias.assign(c.out_channels, 0.0);
  if (const constant* b = optional_const_input(2, "bias")) {
    if (b->is_integer || b->values.size() != c.out_channels)
      malformed(fmt::format("the bias has {} values for {} output channels", b->count(), c.out_channels));
    c.bias = b->values;
  }
  const std::size_t M = c.out_channels;
  push("Conv", std::move(c), {M, OH, OW});
}

void importer::pool(pool_op::kind mode, bool global) {
  if (shape_.size() != 3)
    unsupported(fmt::format("only 2-D pooling is supported; the input is {} per sample", shape_str(shape_)));
  if (node_->output_size() > 1 && !node_->output(1).empty())
    unsupported("the Indices output of MaxPool is not supported");
  pool_op p;
  p.mode = mode;
  const std::size_t H = shape_[1], W = shape_[2];
  if (global) {
    refuse_attributes_except({});
    p.kernel_h = H, p.kernel_w = W;
    push(node_->op_type(), p, {shape_[0], 1, 1});
    return;
  }
  refuse_attributes_except(
      {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  const auto ks = attr_ints("kernel_shape");
  if (ks.size() != 2 || ks[0] < 1 || ks[1] < 1) malformed("kernel_shape must hold two positive values");
  p.kernel_h = ks[0], p.kernel_w = ks[1];
  auto d = attr_ints("dilations");
  if (!d.empty() && std::any_of(d.begin(), d.end(), [](auto v) { return v != 1; }))
    unsupported("dilated pooling is not supported");
  auto s = attr_ints("strides");
  if (!s.empty()) {
    if (s.size() != 2 || s[0] < 1 || s[1] < 1) malformed("strides must hold two positive values");
    p.stride_h = s[0], p.stride_w = s[1];
  }
  p.count_include_pad = attr_int("count_include_pad", 0) != 0;
  const std::string auto_pad = attr_string("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    auto pads = attr_ints("pads");
    if (!pads.empty()) {
      if (pads.size() != 4 || std::any_of(pads.begin(), pads.end(), [](auto v) { return v < 0; }))
        malformed("pads must hold four non-negative values (top, left, bottom, right)");
      p.pad_top = pads[0], p.pad_left = pads[1], p.pad_bottom = pads[2], p.pad_right = pads[3];
    }
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const bool upper = auto_pad == "SAME_UPPER";
    std::tie(p.pad_top, p.pad_bottom) = same_pads(H, p.stride_h, p.kernel_h, upper);
    std::tie(p.pad_left, p.pad_right) = same_pads(W, p.stride_w, p.kernel_w, upper);
  } else if (auto_pad != "VALID") {
    malformed(fmt::format("unknown auto_pad '{}'", auto_pad));
  }
  if (pad_) {
    if (auto_pad != "NOTSET" && auto_pad != "VALID")
      unsupported(fmt::format("auto_pad {} after the Pad node '{}' is not supported", auto_pad, pad_->node));
    const bool own_pads = p.pad_top || p.pad_left || p.pad_bottom || p.pad_right;
    if (own_pads && !p.count_include_pad)
      unsupported(fmt::format("its own pads (not counted) combined with the Pad node '{}' (counted) is not supported",
                              pad_->node));
    p.pad_top += pad_->top, p.pad_left += pad_->left, p.pad_bottom += pad_->bottom, p.pad_right += pad_->right;
    p.count_include_pad = true;  // the explicit zeros are real inputs of the average
    pad_.reset();
  }
  // A padding as large as the kernel would create windows with no real input.
  if (p.pad_top >= p.kernel_h || p.pad_bottom >= p.kernel_h || p.pad_left >= p.kernel_w || p.pad_right >= p.kernel_w)
    malformed("each pad must be smaller than the kernel");
  if (H + p.pad_top + p.pad_bottom < p.kernel_h || W + p.pad_left + p.pad_right < p.kernel_w)
    malformed(fmt::format("the kernel ({}×{}) is larger than the padded input {}", p.kernel_h, p.kernel_w,
                          shape_str(shape_)));
  if (attr_int("ceil_mode", 0) != 0) {
    // Rounding the output size up adds a last, partial window. Extending the trailing pad to
    // cover it is exact for max (padding never wins) and for an average over real inputs, as
    // long as the window starts inside the input or the leading pad (PyTorch's rule).
    auto extend = [&](std::size_t in, std::size_t lead, std::size_t& trail, std::size_t k, std::size_t stride) {
      const std::size_t span = in + lead + trail - k;
      if (span % stride == 0) return;
      const std::size_t out = span / stride + 2;
      if ((out - 1) * stride >= in + lead)
        unsupported("ceil_mode = 1 would add a window that lies entirely in the padding; this is not supported");
      if (p.count_include_pad)
        unsupported("ceil_mode = 1 with count_include_pad = 1 and a partial last window is not supported");
      trail = (out - 1) * stride + k - in - lead;
    };
    extend(H, p.pad_top, p.pad_bottom, p.kernel_h, p.stride_h);
    extend(W, p.pad_left, p.pad_right, p.kernel_w, p.stride_w);
  }
  const std::size_t span_h = H + p.pad_top + p.pad_bottom - p.kernel_h,
                    span_w = W + p.pad_left + p.pad_right - p.kernel_w;
  const std::size_t OH = span_h / p.stride_h + 1, OW = span_w / p.stride_w + 1;
  push(node_->op_type(), p, {shape_[0], OH, OW});
}

void importer::pad() {
  refuse_attributes_except({"mode", "pads", "value"});
  if (attr_string("mode", "constant") != "constant")
    unsupported(
        fmt::format("Pad mode '{}' is not supported; only zero (constant) padding folds into a Conv or "
                    "AveragePool",
                    attr_string("mode", "constant")));
  if (shape_.size() != 3)
    unsupported(fmt::format("Pad is supported on (C, H, W) inputs only, not {}", shape_str(shape_)));
  std::vector<std::int64_t> pads = attr_ints("pads");
  double value = attr_float("value", 0.0);
  if (!attr("pads")) {  // opset ≥ 11: pads and the value are inputs
    const constant& pt = const_input(1, "pads");
    if (!pt.is_integer) malformed("the pads input must be an integer tensor");
    pads = pt.ints;
    if (const constant* v = optional_const_input(2, "constant value")) {
      if (v->count() != 1) malformed("the constant value must be a scalar");
      value = v->is_integer ? static_cast<double>(v->ints[0]) : v->values[0];
    }
    if (node_->input_size() > 3 && !node_->input(3).empty()) unsupported("the axes input of Pad is not supported");
  }
  if (value != 0.0) unsupported(fmt::format("Pad with the value {} is not supported; only zero padding folds", value));
  // (N, C, H, W) begins, then ends.
  if (pads.size() != 8) malformed(fmt::format("pads holds {} values; a 4-D input needs 8", pads.size()));
  constexpr auto bound = static_cast<std::int64_t>(max_onnx_activation);
  for (auto v : pads)
    if (v < 0 || v > bound) unsupported(fmt::format("pad value {} is not supported (negative pads crop)", v));
  if (pads[0] || pads[1] || pads[4] || pads[5]) unsupported("Pad on the batch or channel axis is not supported");
  if (!pad_) pad_ = pending_pad{};
  pad_->top += static_cast<std::size_t>(pads[2]), pad_->left += static_cast<std::size_t>(pads[3]);
  pad_->bottom += static_cast<std::size_t>(pads[6]), pad_->right += static_cast<std::size_t>(pads[7]);
  pad_->node = node_name_;
}

void importer::flatten() {
  refuse_attributes_except({"axis"});
  std::int64_t axis = attr_int("axis", 1);
  const auto rank = static_cast<std::int64_t>(shape_.size()) + 1;  // with the batch axis
  if (axis < 0) axis += rank;
  if (axis != 0 && axis != 1)
    unsupported(
        fmt::format("Flatten with axis {} would merge the batch axis with features; provnn supports axis 1", axis));
  push("Flatten", reshape_op{}, {element_count(shape_)});
}

void importer::reshape() {
  refuse_attributes_except({"allowzero"});
  const bool allow_zero = attr_int("allowzero", 0) != 0;
  const constant& s = const_input(1, "shape");
  if (!s.is_integer) malformed("the shape input must be an integer tensor");
  shape_t full{1};
  full.insert(full.end(), shape_.begin(), shape_.end());
  std::vector<std::int64_t> target = s.ints;
  std::optional<std::size_t> infer;
  std::size_t known = 1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == 0 && !allow_zero) {
      if (i >= full.size()) malformed("shape value 0 copies a dimension that does not exist");
      target[i] = static_cast<std::int64_t>(full[i]);
    }
    if (target[i] == -1) {
      if (infer) malformed("the shape has more than one -1");
      infer = i;
      continue;
    }
    if (target[i] <= 0) malformed(fmt::format("invalid shape value {}", target[i]));
    known *= static_cast<std::size_t>(target[i]);
    if (known > max_onnx_activation) malformed("the target shape is too large");
  }
  const std::size_t n = element_count(shape_);
  if (infer) {
    if (n % known != 0) malformed(fmt::format("cannot reshape {} elements into ({})", n, fmt::join(s.ints, ", ")));
    target[*infer] = static_cast<std::int64_t>(n / known);
    known = n;
  }
  if (known != n)
    malformed(fmt::format("cannot reshape {} per sample into ({})", shape_str(shape_), fmt::join(s.ints, ", ")));
  if (target.empty() || target[0] != 1)
    unsupported(fmt::format("Reshape to ({}) moves the batch axis; provnn supports reshapes that keep it first",
                            fmt::join(target, ", ")));
  shape_t out(target.begin() + 1, target.end());
  push("Reshape", reshape_op{}, out);
}

void importer::batch_norm() {
  refuse_attributes_except({"epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs"});
  if (attr_int("training_mode", 0) != 0)
    unsupported("BatchNormalization in training mode cannot be folded; export the model in eval mode");
  if (attr_int("spatial", 1) != 1) unsupported("BatchNormalization with spatial = 0 is not supported");
  for (int i = 1; i < node_->output_size(); ++i)
    if (!node_->output(i).empty() && readers_.count(node_->output(i)))
      unsupported("the running statistics outputs of BatchNormalization are not supported");
  layer* prev = net_.layers.empty() ? nullptr : &net_.layers.back();
  if (!prev || !prev->is_linear())
    unsupported(
        fmt::format("BatchNormalization can only be folded into a directly preceding Conv/Gemm/MatMul, but it "
                    "follows {}",
                    prev ? fmt::format("'{}' ({})", prev->name, prev->op_type) : "the graph input"));
  const double eps = attr_float("epsilon", 1e-5);
  const constant& gamma = const_input(1, "scale");
  const constant& beta = const_input(2, "bias");
  const constant& mean = const_input(3, "mean");
  const constant& var = const_input(4, "variance");
  std::vector<double>* weight;
  std::vector<double>* bias;
  std::size_t units;
  if (auto* d = std::get_if<dense_op>(&prev->op)) {
    weight = &d->weight, bias = &d->bias, units = d->out;
  } else {
    auto& c = std::get<conv2d_op>(prev->op);
    weight = &c.weight, bias = &c.bias, units = c.out_channels;
  }
  for (const constant* t : {&gamma, &beta, &mean, &var})
    if (t->is_integer || t->values.size() != units)
      malformed(fmt::format("scale, bias, mean and variance must hold {} float values (one per channel)", units));
  const std::size_t per_unit = weight->size() / units;
  for (std::size_t k = 0; k < units; ++k) {
    const double denom = var.values[k] + eps;
    if (!(denom > 0)) malformed(fmt::format("variance + epsilon is {} for channel {}; it must be positive", denom, k));
    const double f = gamma.values[k] / std::sqrt(denom);
    for (std::size_t i = 0; i < per_unit; ++i) (*weight)[k * per_unit + i] *= f;
    (*bias)[k] = ((*bias)[k] - mean.values[k]) * f + beta.values[k];
  }
}

// ---------------------------------------------------------------------------------------
// One node

void importer::import_node() {
  const auto& node = *node_;
  const std::string& op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    unsupported(
        fmt::format("op domain '{}' is not supported; supported (default domain): {}", node.domain(), supported_ops));

  if (op == "Constant") {
    if (node.output_size() != 1) malformed("a Constant node must have one output");
    const auto* v = attr("value");
    constant c;
    if (v && v->type() == onnx::AttributeProto_AttributeType_TENSOR) {
      c = convert_tensor(v->t(), node.output(0));
    } else if (const auto* vi = attr("value_ints")) {
      c.is_integer = true;
      c.ints.assign(vi->ints().begin(), vi->ints().end());
      c.dims = {static_cast<std::int64_t>(c.ints.size())};
    } else if (const auto* vn = attr("value_int")) {
      c.is_integer = true;
      c.ints = {vn->i()};
    } else {
      unsupported("only Constant nodes with a tensor or integer value are supported");
    }
    if (graph_outputs_.count(node.output(0))) unsupported("a constant graph output is not supported");
    constants_[node.output(0)] = std::move(c);
    return;
  }

  static const std::set<std::string, std::less<>> known = {"Gemm",
                                                           "MatMul",
                                                           "Add",
                                                           "Conv",
                                                           "Relu",
                                                           "MaxPool",
                                                           "AveragePool",
                                                           "GlobalAveragePool",
                                                           "Flatten",
                                                           "Reshape",
                                                           "BatchNormalization",
                                                           "Identity",
                                                           "Dropout",
                                                           "Softmax",
                                                           "LogSoftmax",
                                                           "Pad"};
  if (!known.count(op)) unsupported(fmt::format("op type '{}' is not supported; supported ops: {}", op, supported_ops));

  if (op == "Identity" && node.input_size() == 1 && constants_.count(node.input(0))) {
    if (node.output_size() != 1 || graph_outputs_.count(node.output(0)))
      unsupported("a constant graph output is not supported");
    constant alias = constants_.find(node.input(0))->second;
    constants_[node.output(0)] = std::move(alias);
    return;
  }

  // Chain check: the node reads the head of the chain, and nothing else that is computed.
  std::vector<std::string> computed;
  for (const auto& in : node.input())
    if (!in.empty() && !constants_.count(in)) computed.push_back(in);
  if (computed.size() > 1)
    unsupported(
        fmt::format("it combines computed tensors {} (a residual or skip connection); provnn handles chains of "
                    "layers only",
                    fmt::format("'{}'", fmt::join(computed, "', '"))));
  if (computed.empty())
    unsupported("it reads only constants (constant folding is not supported); supported ops: " +
                std::string(supported_ops));
  if (computed[0] != current_)
    unsupported(
        fmt::format("it reads '{}', which is not the output of the previous layer ('{}'); provnn handles "
                    "chains of layers only",
                    computed[0], current_));
  if (readers_[current_] > 1)
    unsupported(
        fmt::format("tensor '{}' is read {} times (by several nodes or also as a graph output); provnn handles "
                    "chains of layers only",
                    current_, readers_[current_]));
  if (node.output_size() < 1 || node.output(0).empty()) malformed("the node has no output");
  for (int i = 1; i < node.output_size(); ++i)
    if (!node.output(i).empty() && readers_.count(node.output(i)) && op != "BatchNormalization")
      unsupported(fmt::format("its extra output '{}' is used; provnn supports the first output only", node.output(i)));

  if (pad_ && op != "Conv" && op != "AveragePool" && op != "Pad" && op != "Identity" && op != "Dropout")
    unsupported(
        fmt::format("it follows the Pad node '{}'; a zero Pad is folded only into a directly following Conv or "
                    "AveragePool (its zeros could win a max, or change a global average)",
                    pad_->node));
  if (!net_.skipped_softmax.empty() && op != "Identity" && op != "Dropout")
    unsupported(
        fmt::format("it follows a {}; provnn skips a Softmax only when it is the last layer", net_.skipped_softmax));

  if (op == "Gemm")
    gemm();
  else if (op == "MatMul")
    matmul();
  else if (op == "Add")
    add_bias();
  else if (op == "Conv")
    conv();
  else if (op == "Relu") {
    refuse_attributes_except({});
    push("Relu", relu_op{}, shape_);
  } else if (op == "MaxPool")
    pool(pool_op::kind::max, false);
  else if (op == "AveragePool")
    pool(pool_op::kind::average, false);
  else if (op == "GlobalAveragePool")
    pool(pool_op::kind::average, true);
  else if (op == "Flatten")
    flatten();
  else if (op == "Pad")
    pad();
  else if (op == "Reshape")
    reshape();
  else if (op == "BatchNormalization")
    batch_norm();
  else if (op == "Identity" || op == "Dropout") {
    if (op == "Dropout" && node.input_size() > 2 && !node.input(2).empty()) {
      const constant& tm = const_input(2, "training_mode");
      if (tm.count() != 1 || (tm.is_integer ? tm.ints[0] != 0 : tm.values[0] != 0))
        unsupported("Dropout in training mode is not supported; export the model in eval mode");
    }
  } else if (op == "Softmax" || op == "LogSoftmax") {
    net_.skipped_softmax = op;
  } else {
    unsupported(fmt::format("op type '{}' is not supported; supported ops: {}", op, supported_ops));
  }
  current_ = node.output(0);
}

network importer::run(std::string_view bytes) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw limit_error(fmt::format("{}: the file has {} bytes; protobuf reads at most 2 GiB", source_, bytes.size()));
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw parse_error(
        fmt::format("{}: not a valid ONNX model (the protobuf does not parse: truncated or not an ONNX "
                    "file)",
                    source_));
  if (!model.has_graph())
    throw parse_error(fmt::format("{}: the ONNX model has no graph (truncated or not an ONNX file?)", source_));
  check_opset(model);
  graph_ = &model.graph();
  if (static_cast<std::size_t>(graph_->node_size()) > max_onnx_nodes)
    throw limit_error(fmt::format("{}: the graph has {} nodes, more than max_onnx_nodes = {}", source_,
                                  graph_->node_size(), max_onnx_nodes));
  net_.source = source_;
  read_initialisers();
  read_input();
  count_readers();
  for (int i = 0; i < graph_->node_size(); ++i) {
    node_ = &graph_->node(i);
    node_index_ = i;
    node_name_ = node_->name().empty() ? fmt::format("{}_{}", node_->op_type(), i) : node_->name();
    import_node();
  }
  if (graph_->output(0).name() != current_)
    throw unsupported_error(
        fmt::format("{}: the graph output '{}' is not the end of the chain of layers ('{}'); "
                    "provnn handles chains of layers only",
                    source_, graph_->output(0).name(), current_));
  if (pad_)
    throw unsupported_error(
        fmt::format("{}: the graph ends with the Pad node '{}'; a zero Pad is folded only into a "
                    "following Conv or AveragePool",
                    source_, pad_->node));
  if (net_.layers.empty()) throw unsupported_error(fmt::format("{}: the graph has no layers", source_));
  if (!net_.skipped_softmax.empty())
    std::fprintf(stderr, "provnn: note: the trailing %s of %s is skipped; relevance is explained on the logits\n",
                 net_.skipped_softmax.c_str(), source_.c_str());
  return std::move(net_);
}

}  // namespace

network load_onnx_bytes(std::string_view bytes, std::string source_name) {
  return importer(std::move(source_name)).run(bytes);
}

network load_onnx(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw io_error(fmt::format("{}: is a directory, not a model file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(fmt::format("{}: cannot open the model file", path.string()));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw io_error(fmt::format("{}: cannot read the model file", path.string()));
  return load_onnx_bytes(bytes, path.string());
}

}  // namespace provnn::engine
