#include "cli/circuit_support.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "semirings/registry.hpp"

namespace provnn::cli {
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

/// A size for the values that can explode (polynomials, witness sets); 0 otherwise.
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

}  // namespace

double rank_key(const std::string& name, double v) {
  if (name == "real" || name == "exact" || name == "exact-float" || name.starts_with("dual")) return std::abs(v);
  if (name == "tropical") return -v;
  return v;
}

namespace {

std::string reading_for(const circuit& c, const semiring_report& r, const std::string& zero_text) {
  const auto roots = c.roots();
  std::size_t features = 0, nonzero = 0, best = roots.size();
  double best_value = 0.0;
  for (std::size_t i = 0; i < roots.size(); ++i) {
    if (roots[i].kind != root_kind::feature) continue;
    ++features;
    if (r.text[i] != zero_text) ++nonzero;
    if (r.numeric) {
      const double v = *r.number[i];
      if (best == roots.size() || rank_key(r.semiring, v) > rank_key(r.semiring, best_value)) best = i, best_value = v;
    }
  }
  const std::string name = r.semiring;
  if (features == 0) return "the circuit has no feature roots";
  const auto best_name = best < roots.size() ? roots[best].name : std::string("-");
  if (name == "boolean") return fmt::format("{} of {} features have a relevant path to the output", nonzero, features);
  if (name == "counting") {
    double total = 0.0;
    for (std::size_t i = 0; i < roots.size(); ++i)
      if (roots[i].kind == root_kind::feature) total += r.number[i].value_or(0.0);
    return fmt::format("{:.6g} relevant paths in all; the most ({}) lead to {}", total, r.text[best], best_name);
  }
  if (name == "viterbi") return fmt::format("the single strongest path ends at {}, product magnitude {:.6g}", best_name, best_value);
  if (name == "max-plus")
    return fmt::format("the single strongest path ends at {}, log-magnitude {:.6g}", best_name, best_value);
  if (name == "tropical")
    return fmt::format("the cheapest path (cost −log|coefficients|) reaches {} at cost {:.6g}", best_name, best_value);
  if (name == "real" || name == "exact" || name == "exact-float") {
    double sum = 0.0;
    for (std::size_t i = 0; i < roots.size(); ++i)
      if (roots[i].kind == root_kind::feature) sum += r.number[i].value_or(0.0);
    return fmt::format("relevance sums to {:.10g} over {} features; largest |R| at {} ({:+.6g})", sum, features,
                       best_name, best_value);
  }
  if (r.numeric) {
    return fmt::format("{} of {} features non-zero; largest magnitude at {} ({:.6g})", nonzero, features, best_name,
                       best_value);
  }
  return fmt::format("{} of {} features have a non-zero value", nonzero, features);
}

}  // namespace

std::vector<token_override> read_valuation_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(fmt::format("cannot read the valuation file '{}'", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_valuation_json(ss.str(), fmt::format("valuation file '{}'", path));
}

std::vector<token_override> parse_valuation_json(std::string_view text, std::string_view source) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw parse_error(fmt::format("{} is not valid JSON: {}", source, e.what()));
  }
  if (!j.is_object()) {
    throw parse_error(fmt::format("{}: expected an object of token patterns to numbers, e.g. "
                                  "{{\"W1[3,*]\": 0, \"a2[7]\": 0}}",
                                  source));
  }
  std::vector<token_override> out;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_number() || !std::isfinite(value.get<double>())) {
      throw parse_error(fmt::format("{}: the value of \"{}\" must be a finite number", source, key));
    }
    out.push_back({key, value.get<double>()});
  }
  return out;
}

engine::shape_t circuit_input_shape(const circuit& c) {
  const auto it = c.metadata().find("input_shape");
  if (it != c.metadata().end() && !it->second.empty()) {
    engine::shape_t s;
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::size_t d = 0;
      const auto part = rest.substr(0, comma);
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

semiring_report evaluate_report(const circuit& c, std::string_view spec, const report_options& options) {
  const token_resolver resolve = [&c](std::string_view name) { return c.tokens().find(name); };
  return with_semiring(spec, resolve, [&](const auto& s) {
    using S = std::decay_t<decltype(s)>;
    auto valuation = lift_valuation(c, s);
    override_tokens(c, s, valuation, std::span<const token_override>(options.overrides));
    std::vector<gate_id> gates;
    for (const auto& r : c.roots()) gates.push_back(r.gate);
    const std::size_t limit = options.max_terms;
    const std::string name = s.name();
    auto hook = [&](std::uint32_t g, const auto& v) {
      if (const auto n = size_of(v); n > limit) {
        throw limit_error(fmt::format("evaluating in {}: gate {} holds {} terms, more than the limit {}; raise it with "
                                      "--max-terms, or ask for top-k paths (--semiring topk:K) instead",
                                      name, g, n, limit));
      }
    };
    const auto values =
        detail::evaluate_gates_hooked(c, s, std::span<const stored_value_t<S>>(valuation), gates, options.theta, hook);
    semiring_report r;
    r.semiring = name;
    const auto names = c.tokens().namer();
    for (const auto& stored : values) {
      const auto v = static_cast<typename S::value_type>(stored);
      r.text.push_back(s.format(v, names));
      r.number.push_back(number_of(v));
    }
    r.numeric = !r.number.empty() && r.number.front().has_value();
    r.zero_text = s.format(s.zero(), names);
    r.reading = reading_for(c, r, r.zero_text);
    return r;
  });
}

}  // namespace provnn::cli
