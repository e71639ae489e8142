#include "circuits/edge_annotation.hpp"

#include <fmt/format.h>

#include <cmath>
#include <tuple>

#include "circuits/evaluate.hpp"
#include "common/error.hpp"

namespace provnn {

std::vector<double> edge_coefficients(const circuit& c, std::span<const double> token_values) {
  PROVNN_ASSERT(token_values.size() == c.tokens().size());
  std::vector<gate_id> gates(c.edge_gates().begin(), c.edge_gates().end());
  return evaluate_gates(c, real_semiring{}, token_values, gates);
}

std::vector<double> edge_coefficients(const circuit& c) { return edge_coefficients(c, c.tokens().values()); }

edge_annotation make_edge_annotation(const circuit& c, std::string name,
                                     const std::function<edge_value(const edge_context&, double d)>& theta) {
  const auto d = edge_coefficients(c);
  const auto ctx = c.edge_contexts();
  std::vector<std::uint8_t> kinds(d.size());
  std::vector<double> reals(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) {
    const auto v = theta(ctx[i], d[i]);
    kinds[i] = static_cast<std::uint8_t>(v.kind);
    reals[i] = v.real;
  }
  return edge_annotation(std::move(name), std::move(kinds), std::move(reals));
}

edge_annotation identity_annotation(const circuit& c) {
  return make_edge_annotation(c, "identity", [](const edge_context&, double d) { return edge_value::of(d); });
}

edge_annotation threshold_annotation(const circuit& c, double theta) {
  return make_edge_annotation(c, fmt::format("threshold:{}", theta), [theta](const edge_context&, double d) {
    return d >= theta ? edge_value::one() : edge_value::zero();
  });
}

edge_annotation threshold_annotation(const circuit& c, const std::map<std::uint32_t, double>& theta_by_layer) {
  std::string name = "threshold:";
  for (const auto& [layer, theta] : theta_by_layer) name += fmt::format("{}{}={}", name.size() > 10 ? "," : "", layer, theta);
  return make_edge_annotation(c, name, [&](const edge_context& e, double d) {
    auto it = theta_by_layer.find(e.layer);
    if (it == theta_by_layer.end())
      throw error(fmt::format("edge annotation {}: no threshold for layer {} (edge {}→{}); give one θ per layer "
                              "that has edges, or a single θ for all",
                              name, e.layer, e.lower, e.upper));
    return d >= it->second ? edge_value::one() : edge_value::zero();
  });
}

edge_annotation viterbi_maxnorm_annotation(const circuit& c) {
  const auto d = edge_coefficients(c);
  const auto ctx = c.edge_contexts();
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, double> max_of;
  for (std::size_t i = 0; i < d.size(); ++i) {
    auto& m = max_of[{ctx[i].layer, ctx[i].upper, ctx[i].term}];
    m = std::max(m, std::fabs(d[i]));
  }
  std::vector<std::uint8_t> kinds(d.size(), static_cast<std::uint8_t>(edge_value_kind::real));
  std::vector<double> reals(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) {
    const double m = max_of[{ctx[i].layer, ctx[i].upper, ctx[i].term}];
    reals[i] = m > 0.0 ? std::fabs(d[i]) / m : 0.0;
  }
  return edge_annotation("viterbi-maxnorm", std::move(kinds), std::move(reals));
}

namespace detail {

std::vector<std::uint8_t> cone_mask(const circuit& c, std::span<const gate_id> roots, bool stop_at_edges) {
  std::vector<std::uint8_t> need(c.size(), 0);
  for (auto r : roots) {
    PROVNN_ASSERT(to_index(r) < c.size());
    need[to_index(r)] = 1;
  }
  const auto edges = c.edge_gates();
  std::size_t e = edges.size();
  for (std::uint32_t g = static_cast<std::uint32_t>(c.size()); g-- > 0;) {
    const bool is_edge = stop_at_edges && e > 0 && to_index(edges[e - 1]) == g;
    if (is_edge) --e;
    if (!need[g] || is_edge) continue;
    for (auto ch : c.children(static_cast<gate_id>(g))) need[to_index(ch)] = 1;
  }
  return need;
}

}  // namespace detail
}  // namespace provnn
