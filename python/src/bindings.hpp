// Shared declarations of the `_provnn` extension: the wrapped objects and the one function
// that instantiates the semiring dispatch (semiring_dispatch.cpp, the only translation unit
// that includes the registry's with_semiring, so the 19 semirings are compiled once).
#pragma once

#include <memory>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "engine/forward.hpp"
#include "engine/network.hpp"
#include "semirings/polynomial.hpp"

namespace provnn::python {

namespace py = pybind11;

/// A loaded network (provnn.Model).
struct model {
  engine::network net;
  /// The parameters rounded to float, made at the first fp32 explanation (under the GIL).
  mutable std::shared_ptr<const engine::float32_parameters> fp32;
};

/// A provenance circuit and the input shape its feature roots follow (provnn.Circuit).
struct py_circuit {
  circuit c;
  engine::shape_t input_shape;  ///< from the metadata "input_shape", or the feature count
};

/// Evaluation of the feature roots of a circuit in the semiring named by `spec`.
struct feature_values {
  std::string semiring;                ///< the semiring's display name
  bool numeric = false;                ///< true: `numbers` holds the values
  std::vector<double> numbers;         ///< per feature root (roots() order), when numeric
  std::vector<py::object> objects;     ///< per feature root, when symbolic
};

/// Evaluates the gates `gates` of c in the semiring named by `spec` (registry names; `dual:TOKEN`
/// resolves TOKEN in c's token table), with token overrides and an optional edge annotation.
/// Symbolic values become Python objects: N[X] polynomials a provnn.Polynomial (list of
/// (coefficient, {token: exponent}) with its text), top-k lists a list of (score, {token: exponent}),
/// anything else its formatted string. Throws parse_error (unknown semiring, listing the names),
/// limit_error when a gate holds more than max_terms terms.
feature_values evaluate_in(const circuit& c, std::string_view spec, const std::vector<gate_id>& gates,
                           const std::vector<token_override>& overrides, const edge_annotation* theta,
                           std::size_t max_terms);

/// The top-k paths of the given gates together (⊕ of their top-k lists): list of (score, {token: exp}).
py::list top_paths(const circuit& c, const std::vector<gate_id>& gates, std::size_t k);

/// provnn.Polynomial of an N[X] polynomial of c.
py::object polynomial_object(const circuit& c, const polynomial& p);

void bind_model(py::module_& m);
void bind_circuit(py::module_& m);

}  // namespace provnn::python
