#include "circuits/edge_annotation.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <tuple>

#include "circuits/evaluate.hpp"
#include "circuits/fused.hpp"
#include "common/error.hpp"

namespace provnn {

std::vector<double> edge_coefficients(const circuit& c, std::span<const double> token_values) {
  PROVNN_ASSERT(token_values.size() == c.tokens().size());
  require_edge_gates(c, "edge annotations");
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

namespace {
double parse_theta(std::string_view spec, std::string_view text) {
  double v = 0;
  const char* e = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), e, v);
  if (text.empty() || ec != std::errc() || p != e || !std::isfinite(v))
    throw parse_error(fmt::format("edge annotation '{}': '{}' is not a finite number (e.g. threshold:0.01)", spec, text));
  return v;
}
}  // namespace

edge_annotation parse_edge_annotation(const circuit& c, std::string_view spec) {
  if (spec == "identity") return identity_annotation(c);
  if (spec == "viterbi-maxnorm") return viterbi_maxnorm_annotation(c);
  constexpr std::string_view prefix = "threshold:";
  if (spec.substr(0, prefix.size()) == prefix) {
    const auto rest = spec.substr(prefix.size());
    if (rest.find('=') == std::string_view::npos) return threshold_annotation(c, parse_theta(spec, rest));
    std::map<std::uint32_t, double> by_layer;
    std::size_t pos = 0;
    while (pos <= rest.size()) {
      const auto comma = std::min(rest.find(',', pos), rest.size());
      const auto item = rest.substr(pos, comma - pos);
      const auto eq = item.find('=');
      std::uint32_t layer = 0;
      const auto ls = item.substr(0, eq);
      auto [p, ec] = std::from_chars(ls.data(), ls.data() + ls.size(), layer);
      if (eq == std::string_view::npos || ls.empty() || ec != std::errc() || p != ls.data() + ls.size())
        throw parse_error(fmt::format("edge annotation '{}': '{}' is not LAYER=θ (e.g. threshold:1=0.01,2=0.05)", spec, item));
      if (!by_layer.emplace(layer, parse_theta(spec, item.substr(eq + 1))).second)
        throw parse_error(fmt::format("edge annotation '{}': layer {} has two thresholds", spec, layer));
      pos = comma + 1;
    }
    return threshold_annotation(c, by_layer);
  }
  throw parse_error(fmt::format("unknown edge annotation '{}'; valid: identity, viterbi-maxnorm, threshold:θ, "
                                "threshold:LAYER=θ,LAYER=θ,…",
                                spec));
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
  // A structured gate reads the scale gates its edges reach (conv_stage::edges_of): those
  // are marked, and evaluation leaves the stage's others out of its sums.
  const auto structured = c.structured_gates();
  std::size_t st = structured.size();
  for (std::uint32_t g = static_cast<std::uint32_t>(c.size()); g-- > 0;) {
    const bool is_edge = stop_at_edges && e > 0 && to_index(edges[e - 1]) == g;
    if (is_edge) --e;
    const bool is_structured = st > 0 && to_index(structured[st - 1]) == g;
    if (is_structured) --st;
    if (!need[g] || is_edge) continue;
    for (auto ch : c.children(static_cast<gate_id>(g))) need[to_index(ch)] = 1;
    if (is_structured) {
      const conv_stage& stage = c.conv_stages()[c.structured_stages()[st]];
      stage.edges_of(c.structured_lowers()[st], [&](std::size_t k, std::size_t) { need[to_index(stage.scaled[k])] = 1; });
    }
  }
  return need;
}

}  // namespace detail
}  // namespace provnn
