// provnn.Circuit: evaluation in any semiring, N[X] polynomials, top paths, DOT, save/load, info.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pybind11/stl.h>

#include <charconv>

#include "bindings.hpp"
#include "circuits/fused.hpp"
#include "circuits/dot.hpp"
#include "circuits/expand.hpp"
#include "circuits/file_format.hpp"
#include "common/error.hpp"

namespace provnn::python {
namespace {

engine::shape_t input_shape_of(const circuit& c) {
  const auto it = c.metadata().find("input_shape");
  if (it != c.metadata().end() && !it->second.empty()) {
    engine::shape_t s;
    std::string_view rest = it->second;
    while (true) {
      const auto comma = rest.find(',');
      const auto part = rest.substr(0, comma);
      std::size_t d = 0;
      auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), d);
      if (ec != std::errc{} || end != part.data() + part.size()) break;
      s.push_back(d);
      if (comma == std::string_view::npos) return s;
      rest = rest.substr(comma + 1);
    }
  }
  std::size_t features = 0;
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature && r.target == c.roots().front().target) ++features;
  return {features};
}

std::vector<gate_id> feature_gates(const circuit& c) {
  std::vector<gate_id> out;
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature) out.push_back(r.gate);
  return out;
}

std::vector<std::uint32_t> root_targets(const circuit& c) {
  std::vector<std::uint32_t> out;
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature && (out.empty() || out.back() != r.target) &&
        std::find(out.begin(), out.end(), r.target) == out.end())
      out.push_back(r.target);
  return out;
}

/// The feature root named by an int (flat index), a tuple (multi-index) or a root name.
const root& feature_root(const py_circuit& pc, const py::object& feature) {
  const auto& c = pc.c;
  if (py::isinstance<py::str>(feature)) {
    const auto name = feature.cast<std::string>();
    if (const root* r = c.find_root(name)) return *r;
    throw error(fmt::format("the circuit has no root named '{}' (feature roots are named like '{}')", name,
                            c.roots().empty() ? std::string("R(x[0])") : c.roots().front().name));
  }
  std::size_t flat = 0;
  const auto n = engine::element_count(pc.input_shape);
  if (py::isinstance<py::tuple>(feature) || py::isinstance<py::list>(feature)) {
    const auto idx = feature.cast<std::vector<long long>>();
    if (idx.size() != pc.input_shape.size())
      throw error(fmt::format("feature index ({}) has {} coordinates; the input shape ({}) has {}", fmt::join(idx, ", "),
                              idx.size(), fmt::join(pc.input_shape, ", "), pc.input_shape.size()));
    for (std::size_t d = 0; d < idx.size(); ++d) {
      if (idx[d] < 0 || static_cast<std::size_t>(idx[d]) >= pc.input_shape[d])
        throw error(fmt::format("feature index ({}) is outside the input shape ({})", fmt::join(idx, ", "),
                                fmt::join(pc.input_shape, ", ")));
      flat = flat * pc.input_shape[d] + static_cast<std::size_t>(idx[d]);
    }
  } else {
    const auto i = py::int_(feature).cast<long long>();
    if (i < 0 || static_cast<std::size_t>(i) >= n)
      throw error(fmt::format("feature {} is out of range: the input has {} features (0..{})", i, n, n - 1));
    flat = static_cast<std::size_t>(i);
  }
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature && r.index == flat) return r;
  throw error(fmt::format("the circuit has no root for feature {}", flat));
}

std::vector<token_override> overrides_of(const std::optional<py::dict>& valuation) {
  std::vector<token_override> out;
  if (!valuation) return out;
  for (const auto& [k, v] : *valuation) {
    if (!py::isinstance<py::str>(k)) throw parse_error("valuation: keys must be token names or glob patterns (str)");
    const double x = py::reinterpret_borrow<py::object>(v).cast<double>();
    if (!std::isfinite(x))
      throw parse_error(fmt::format("valuation: the value of \"{}\" must be a finite number", k.cast<std::string>()));
    out.push_back({k.cast<std::string>(), x});
  }
  return out;
}

py::object evaluate(const py_circuit& pc, const std::string& semiring, const std::optional<py::dict>& valuation,
                    const std::optional<std::string>& annotation, std::size_t max_terms) {
  // An annotation values edge gates: a fused circuit is expanded first (same roots, same order).
  std::optional<circuit> expanded;
  if (annotation && has_fused_gates(pc.c)) expanded = expand_fused(pc.c);
  const auto& c = expanded ? *expanded : pc.c;
  const auto overrides = overrides_of(valuation);
  std::optional<edge_annotation> theta;
  if (annotation) theta = parse_edge_annotation(c, *annotation);
  const auto gates = feature_gates(c);
  auto values = evaluate_in(c, semiring, gates, overrides, theta ? &*theta : nullptr, max_terms);
  const auto targets = root_targets(c);
  if (values.numeric) {
    std::vector<py::ssize_t> dims(pc.input_shape.begin(), pc.input_shape.end());
    if (targets.size() > 1) dims.insert(dims.begin(), static_cast<py::ssize_t>(targets.size()));
    py::array_t<double> out(dims);
    if (static_cast<std::size_t>(out.size()) != values.numbers.size())
      throw error(fmt::format("the circuit has {} feature roots, not the {} its input shape ({}) implies",
                              values.numbers.size(), out.size(), fmt::join(pc.input_shape, ", ")));
    std::copy(values.numbers.begin(), values.numbers.end(), out.mutable_data());
    return std::move(out);
  }
  py::list out;
  for (auto& o : values.objects) out.append(o);
  return std::move(out);
}

py::dict info(const py_circuit& pc) {
  const auto& c = pc.c;
  const auto st = stats(c);
  py::dict d;
  d["gates"] = st.gates;
  py::dict by_kind;
  for (std::uint8_t k = 0; k < gate_kind_count; ++k) by_kind[py::str(std::string(to_string(static_cast<gate_kind>(k))))] = st.gates_by_kind[k];
  d["gates_by_kind"] = by_kind;
  d["edge_gates"] = st.edge_gates;
  d["child_references"] = st.child_references;
  d["tokens"] = st.tokens;
  py::dict tokens_by_kind;
  for (std::uint8_t k = 0; k < token_kind_count; ++k)
    tokens_by_kind[py::str(std::string(to_string(static_cast<token_kind>(k))))] = st.tokens_by_kind[k];
  d["tokens_by_kind"] = tokens_by_kind;
  d["roots"] = st.roots;
  std::size_t features = 0, biases = 0;
  for (const auto& r : c.roots()) (r.kind == root_kind::feature ? features : biases) += r.kind != root_kind::other;
  d["feature_roots"] = features;
  d["bias_roots"] = biases;
  d["bytes"] = st.bytes;
  d["input_shape"] = py::tuple(py::cast(pc.input_shape));
  d["targets"] = py::cast(root_targets(c));
  d["metadata"] = py::cast(c.metadata());
  return d;
}

py_circuit wrap(circuit c) {
  py_circuit pc;
  pc.c = std::move(c);
  pc.input_shape = input_shape_of(pc.c);
  return pc;
}

}  // namespace

void bind_circuit(py::module_& m) {
  py::class_<py_circuit>(m, "Circuit",
                         R"(A provenance circuit of LRP: ⊕/⊗ gates over named tokens (x[…] inputs, W<s>[…] weights,
b<s>[…] biases, a<s>[…] activations, n<s>[…]#m unit coefficients, r[y] targets), one root
R(x[…]) per input feature. Made by Model.circuit() or Circuit.load().)")
      .def_static(
          "load",
          [](const py::object& path) {
            const auto p = py::str(py::module_::import("os").attr("fspath")(path)).cast<std::string>();
            py::gil_scoped_release release;
            return wrap(load_circuit(p));
          },
          py::arg("path"),
          R"(Reads a circuit file (.pvc) written by save() or by `provnn build`.
Raises provnn.ProvnnIOError (cannot read) or provnn.ParseError (not a valid circuit file).)")
      .def(
          "save",
          [](const py_circuit& self, const py::object& path) {
            const auto p = py::str(py::module_::import("os").attr("fspath")(path)).cast<std::string>();
            py::gil_scoped_release release;
            save_circuit(self.c, p);
          },
          py::arg("path"), "Writes the circuit to a .pvc file atomically. Raises provnn.ProvnnIOError.")
      .def_property_readonly("input_shape", [](const py_circuit& self) { return py::tuple(py::cast(self.input_shape)); },
                             "Shape of the input whose features the roots explain.")
      .def("evaluate", &evaluate, py::arg("semiring") = "real", py::kw_only(), py::arg("valuation") = py::none(),
           py::arg("edge_annotation") = py::none(), py::arg("max_terms") = 1'000'000,
           R"(Evaluates every feature root in a semiring (see provnn.semirings()).
    semiring: a registry name: real, exact, boolean, counting, viterbi, nx, topk:K, dual:TOKEN, …
    valuation: {token name or glob pattern: number}, applied in order over the natural
        valuation (e.g. {"W1[3,*]": 0} deletes row 3 of W1).
    edge_annotation: identity | viterbi-maxnorm | threshold:θ | threshold:L=θ,… (K-LRP).
    max_terms: symbolic semirings stop with provnn.LimitError when a gate holds more terms.
Returns, for numeric semirings, a float64 array shaped like the input ((T, *shape) for a
circuit of T targets; Boolean as 0/1); for symbolic ones a list with one object per feature:
a provnn.Polynomial for nx, a list of (score, {token: exponent}) for topk:K, the formatted
string otherwise.
Raises provnn.ParseError for an unknown semiring (listing the valid names) or a bad
annotation, provnn.LimitError past max_terms.)")
      .def(
          "polynomial",
          [](const py_circuit& self, const py::object& feature, std::size_t max_monomials) {
            const root& r = feature_root(self, feature);
            polynomial p;
            {
              py::gil_scoped_release release;
              p = expand(self.c, r.gate, max_monomials, r.name);
            }
            return polynomial_object(self.c, p);
          },
          py::arg("feature"), py::arg("max_monomials") = 100000,
          R"(The N[X] polynomial of one feature's root (every token a variable): a provnn.Polynomial,
a list of (coefficient: int, {token: exponent}) whose str() is the polynomial's text.
    feature: flat index, multi-index tuple, or root name, e.g. R(x[0,3,4]).
Raises provnn.LimitError when an intermediate polynomial exceeds max_monomials terms, and
provnn.Error for a feature out of range.)")
      .def(
          "top_paths",
          [](const py_circuit& self, std::size_t k, const py::object& feature) {
            if (k == 0) throw error("top_paths: k must be at least 1");
            std::vector<gate_id> gates;
            if (feature.is_none()) gates = feature_gates(self.c);
            else gates.push_back(feature_root(self, feature).gate);
            return top_paths(self.c, gates, k);
          },
          py::arg("k"), py::arg("feature") = py::none(),
          R"(The k paths (monomials) with the largest |real product| under the natural valuation, best
first, as a list of (score, {token: exponent}); over every feature root when feature is None.
Cost O(cone · k²).)")
      .def(
          "to_dot",
          [](const py_circuit& self, const py::object& feature, std::size_t max_gates) {
            dot_options o;
            o.max_gates = max_gates;
            if (!has_fused_gates(self.c)) {
              if (!feature.is_none()) o.roots.push_back(feature_root(self, feature).gate);
              return to_dot(self.c, o);
            }
            // DOT draws edge gates: a fused circuit is drawn as the plain circuit it stands for.
            std::vector<gate_id> map;
            const circuit plain = expand_fused(self.c, &map);
            if (!feature.is_none()) o.roots.push_back(map[to_index(feature_root(self, feature).gate)]);
            return to_dot(plain, o);
          },
          py::arg("feature") = py::none(), py::arg("max_gates") = 200,
          R"(Graphviz DOT text of the cone of one feature's root (of every root when None), at most
max_gates gates drawn; the rest collapse into one "… N more gates" node.)")
      .def(
          "tokens",
          [](const py_circuit& self) {
            py::dict d;
            const auto& t = self.c.tokens();
            for (token_index i = 0; i < t.size(); ++i) d[py::str(t.name(i))] = t.value(i);
            return d;
          },
          "Every token of the circuit with its natural real value, {name: value}, in creation order.")
      .def("info", &info,
           "Counts and metadata: gates (by kind), edge gates, child references, tokens (by kind), roots, "
           "bytes, input_shape, targets, metadata.")
      .def("__repr__", [](const py_circuit& self) {
        return fmt::format("<provnn.Circuit: {} gates, {} tokens, {} roots, input shape ({})>", self.c.size(),
                           self.c.tokens().size(), self.c.roots().size(), fmt::join(self.input_shape, ", "));
      });
}

}  // namespace provnn::python
