// The one translation unit that instantiates with_semiring over every registered semiring
// (compile time), and turns semiring values into Python objects.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "bindings.hpp"
#include "common/error.hpp"
#include "semirings/polynomial.hpp"
#include "semirings/registry.hpp"
#include "semirings/topk.hpp"

namespace provnn::python {
namespace {

template <class V>
std::optional<double> number_of(const V& v) {
  if constexpr (std::is_same_v<V, double>) {
    return v;
  } else if constexpr (std::is_same_v<V, bool>) {
    return v ? 1.0 : 0.0;
  } else if constexpr (requires { v.template convert_to<double>(); }) {
    return v.template convert_to<double>();
  } else {
    return std::nullopt;
  }
}

// Values that read as one number (real, Boolean as 0/1, counting, exact, …).
template <class V>
constexpr bool numeric_value =
    std::is_same_v<V, double> || std::is_same_v<V, bool> || requires(const V& v) { v.template convert_to<double>(); };

// A size for the values that can explode (polynomials, witness sets); 0 otherwise.
template <class V>
std::size_t size_of(const V& v) {
  if constexpr (requires { v.size(); }) {
    return static_cast<std::size_t>(v.size());
  } else if constexpr (requires { v.terms().size(); }) {
    return v.terms().size();
  } else {
    return 0;
  }
}

py::dict monomial_dict(const circuit& c, const monomial& m) {
  py::dict d;
  for (const auto& f : m) d[py::str(c.tokens().name(f.token))] = f.exponent;
  return d;
}

py::list topk_object(const circuit& c, const topk_list& l) {
  py::list out;
  for (const auto& e : l.entries) out.append(py::make_tuple(e.score, monomial_dict(c, e.mono)));
  return out;
}

}  // namespace

py::object polynomial_object(const circuit& c, const polynomial& p) {
  py::list terms;
  // cpp_int coefficients go through their decimal text: Python ints have no size limit either.
  py::object int_type = py::module_::import("builtins").attr("int");
  for (const auto& t : p) terms.append(py::make_tuple(int_type(py::str(t.coefficient.str())), monomial_dict(c, t.mono)));
  const std::string text = format_polynomial(p, c.tokens().namer());
  return py::module_::import("provnn").attr("Polynomial")(terms, text);
}

feature_values evaluate_in(const circuit& c, std::string_view spec, const std::vector<gate_id>& gates,
                           const std::vector<token_override>& overrides, const edge_annotation* theta,
                           std::size_t max_terms) {
  const token_resolver resolve = [&c](std::string_view name) { return c.tokens().find(name); };
  return with_semiring(spec, resolve, [&](const auto& s) {
    using S = std::decay_t<decltype(s)>;
    using V = typename S::value_type;
    auto valuation = lift_valuation(c, s);
    override_tokens(c, s, valuation, std::span<const token_override>(overrides));
    const std::string name = s.name();
    auto hook = [&](std::uint32_t g, const auto& v) {
      if (const auto n = size_of(v); n > max_terms) {
        throw limit_error(fmt::format("evaluating in {}: gate {} holds {} terms, more than the limit {}; raise it with "
                                      "max_terms=, or ask for top-k paths (semiring=\"topk:K\") instead",
                                      name, g, n, max_terms));
      }
    };
    const auto values =
        detail::evaluate_gates_hooked(c, s, std::span<const stored_value_t<S>>(valuation), gates, theta, hook);
    feature_values out;
    out.semiring = name;
    out.numeric = numeric_value<V>;
    const auto names = c.tokens().namer();
    for (const auto& stored : values) {
      const auto v = static_cast<V>(stored);
      if constexpr (numeric_value<V>) {
        out.numbers.push_back(*number_of(v));
      } else if constexpr (std::is_same_v<V, polynomial>) {
        out.objects.push_back(polynomial_object(c, v));
      } else if constexpr (std::is_same_v<V, topk_list>) {
        out.objects.push_back(topk_object(c, v));
      } else {
        out.objects.push_back(py::str(s.format(v, names)));
      }
    }
    return out;
  });
}

py::list top_paths(const circuit& c, const std::vector<gate_id>& gates, std::size_t k) {
  const topk_semiring s(k);
  const auto valuation = lift_valuation(c, s);
  const auto values = evaluate_gates(c, s, std::span<const stored_value_t<topk_semiring>>(valuation), gates);
  // ⊕ of the gates' lists is the k best of their union.
  topk_list all = s.zero();
  for (const auto& v : values) all = s.plus(all, static_cast<topk_list>(v));
  return topk_object(c, all);
}

}  // namespace provnn::python
