#include "engine/rules.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <system_error>

#include "common/error.hpp"

namespace provnn::engine {

namespace {

constexpr std::string_view valid_rules =
    "valid rules: zero, epsilon[:E] (default E=1e-6), gamma[:G] (default 0.25), zplus, "
    "alphabeta[:A,B] (default 2,1; A-B must be 1), zbox:L,H (numbers or .npy paths), flat, wsquare";

constexpr std::string_view valid_presets =
    "valid composites: epsilon-plus, epsilon-gamma-box:L,H, epsilon-alpha2-beta1, epsilon-plus-flat";

constexpr double default_stabiliser = 1e-6;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// A finite double spelled exactly by `s` (from_chars: no leading '+', no blanks).
std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

bool ends_with_npy(std::string_view s) {
  return s.size() > 4 && s.substr(s.size() - 4) == ".npy";
}

zbox_bound parse_bound(std::string_view s, std::string_view which) {
  s = trim(s);
  zbox_bound b;
  if (auto v = parse_number(s)) {
    b.scalar = *v;
  } else if (ends_with_npy(s)) {
    b.path = std::string(s);
  } else {
    throw parse_error(fmt::format("zbox bound {} '{}' is neither a finite number nor a .npy path", which, s));
  }
  return b;
}

/// "A,B" → two parts; throws when there are not exactly two.
std::pair<std::string_view, std::string_view> split_pair(std::string_view s, std::string_view what) {
  auto comma = s.find(',');
  if (comma == std::string_view::npos || s.find(',', comma + 1) != std::string_view::npos)
    throw parse_error(fmt::format("{} needs exactly two comma-separated values, got '{}'", what, s));
  return {s.substr(0, comma), s.substr(comma + 1)};
}

double number_or_throw(std::string_view s, std::string_view what) {
  if (auto v = parse_number(s)) return *v;
  throw parse_error(fmt::format("{} '{}' is not a finite number", what, trim(s)));
}

std::pair<zbox_bound, zbox_bound> parse_bounds(std::string_view args) {
  auto [l, h] = split_pair(args, "zbox");
  return {parse_bound(l, "L"), parse_bound(h, "H")};
}

std::string bound_to_string(const zbox_bound& b) {
  if (!b.path.empty()) return b.path;
  if (!b.values.empty()) return fmt::format("<{} values>", b.values.size());
  return fmt::format("{}", b.scalar);
}

}  // namespace

std::string_view to_string(rule_kind k) noexcept {
  switch (k) {
    case rule_kind::zero: return "zero";
    case rule_kind::epsilon: return "epsilon";
    case rule_kind::gamma: return "gamma";
    case rule_kind::zplus: return "zplus";
    case rule_kind::alphabeta: return "alphabeta";
    case rule_kind::zbox: return "zbox";
    case rule_kind::flat: return "flat";
    case rule_kind::wsquare: return "wsquare";
  }
  return "?";
}

namespace rules {

rule zero() {
  rule r;
  r.kind = rule_kind::zero;
  r.epsilon = 0.0;
  return r;
}

rule epsilon(double eps) {
  if (!std::isfinite(eps) || eps < 0)
    throw parse_error(fmt::format("epsilon must be a finite number >= 0, got {}", eps));
  rule r;
  r.kind = rule_kind::epsilon;
  r.epsilon = eps;
  return r;
}

rule gamma(double g) {
  if (!std::isfinite(g) || g < 0) throw parse_error(fmt::format("gamma must be a finite number >= 0, got {}", g));
  rule r;
  r.kind = rule_kind::gamma;
  r.epsilon = default_stabiliser;
  r.gamma = g;
  return r;
}

rule zplus() {
  rule r;
  r.kind = rule_kind::zplus;
  r.epsilon = default_stabiliser;
  return r;
}

rule alphabeta(double alpha, double beta) {
  if (!std::isfinite(alpha) || !std::isfinite(beta) || alpha < 0 || beta < 0)
    throw parse_error(fmt::format("alphabeta needs finite alpha, beta >= 0, got {},{}", alpha, beta));
  if (std::abs(alpha - beta - 1.0) > 1e-9)
    throw parse_error(fmt::format(
        "alphabeta needs alpha - beta = 1 (so that relevance is conserved), got alpha={}, beta={}; "
        "e.g. alphabeta:2,1 or alphabeta:1,0",
        alpha, beta));
  rule r;
  r.kind = rule_kind::alphabeta;
  r.epsilon = default_stabiliser;
  r.alpha = alpha;
  r.beta = beta;
  return r;
}

rule zbox(zbox_bound low, zbox_bound high) {
  if (!low.per_feature() && !high.per_feature()) {
    if (!std::isfinite(low.scalar) || !std::isfinite(high.scalar))
      throw parse_error("zbox bounds must be finite numbers");
    if (low.scalar > high.scalar)
      throw parse_error(fmt::format("zbox needs L <= H, got L={} > H={}", low.scalar, high.scalar));
  }
  rule r;
  r.kind = rule_kind::zbox;
  r.epsilon = default_stabiliser;
  r.low = std::move(low);
  r.high = std::move(high);
  return r;
}

rule zbox(double low, double high) {
  zbox_bound l, h;
  l.scalar = low;
  h.scalar = high;
  return zbox(std::move(l), std::move(h));
}

rule flat() {
  rule r;
  r.kind = rule_kind::flat;
  r.epsilon = default_stabiliser;
  return r;
}

rule wsquare() {
  rule r;
  r.kind = rule_kind::wsquare;
  r.epsilon = default_stabiliser;
  return r;
}

}  // namespace rules

rule parse_rule(std::string_view text) {
  const std::string_view s = trim(text);
  const auto colon = s.find(':');
  const std::string_view name = s.substr(0, colon);
  const bool has_args = colon != std::string_view::npos;
  const std::string_view args = has_args ? s.substr(colon + 1) : std::string_view{};
  try {
    auto no_args = [&](rule r) {
      if (has_args) throw parse_error(fmt::format("'{}' takes no parameters", name));
      return r;
    };
    if (name == "zero") return no_args(rules::zero());
    if (name == "zplus") return no_args(rules::zplus());
    if (name == "flat") return no_args(rules::flat());
    if (name == "wsquare") return no_args(rules::wsquare());
    if (name == "epsilon") return has_args ? rules::epsilon(number_or_throw(args, "epsilon E")) : rules::epsilon();
    if (name == "gamma") return has_args ? rules::gamma(number_or_throw(args, "gamma G")) : rules::gamma();
    if (name == "alphabeta") {
      if (!has_args) return rules::alphabeta();
      auto [a, b] = split_pair(args, "alphabeta");
      return rules::alphabeta(number_or_throw(a, "alphabeta A"), number_or_throw(b, "alphabeta B"));
    }
    if (name == "zbox") {
      if (!has_args) throw parse_error("zbox needs its bounds, as zbox:L,H");
      auto [l, h] = parse_bounds(args);
      return rules::zbox(std::move(l), std::move(h));
    }
    throw parse_error(fmt::format("unknown rule name '{}'", name));
  } catch (const parse_error& e) {
    throw parse_error(fmt::format("invalid rule '{}': {}; {}", text, e.what(), valid_rules));
  }
}

std::string to_string(const rule& r) {
  switch (r.kind) {
    case rule_kind::zero: return "zero";
    case rule_kind::epsilon: return fmt::format("epsilon:{}", r.epsilon);
    case rule_kind::gamma: return fmt::format("gamma:{}", r.gamma);
    case rule_kind::alphabeta: return fmt::format("alphabeta:{},{}", r.alpha, r.beta);
    case rule_kind::zbox: return fmt::format("zbox:{},{}", bound_to_string(r.low), bound_to_string(r.high));
    case rule_kind::zplus:
    case rule_kind::flat:
    case rule_kind::wsquare: return std::string(to_string(r.kind));
  }
  return "?";
}

void resolve_bounds(rule& r, const bound_loader& load) {
  if (r.kind != rule_kind::zbox) return;
  for (zbox_bound* b : {&r.low, &r.high}) {
    if (b->path.empty() || !b->values.empty()) continue;
    b->values = load(b->path);
    if (b->values.empty()) throw error(fmt::format("zbox bound file '{}' holds no values", b->path));
  }
}

void resolve_bounds(std::vector<rule>& rs, const bound_loader& load) {
  for (auto& r : rs) resolve_bounds(r, load);
}

composite parse_composite(std::string_view text) {
  const std::string_view s = trim(text);
  const auto colon = s.find(':');
  const std::string_view name = s.substr(0, colon);
  const bool has_args = colon != std::string_view::npos;
  composite c;
  try {
    if (name == "epsilon-gamma-box") {
      if (!has_args) throw parse_error("epsilon-gamma-box needs the input bounds, as epsilon-gamma-box:L,H");
      auto [l, h] = parse_bounds(s.substr(colon + 1));
      c.kind = preset::epsilon_gamma_box;
      c.conv_rule = rules::gamma();
      c.dense_rule = rules::epsilon();
      c.first_rule = rules::zbox(std::move(l), std::move(h));
      c.first_rule_conv_only = true;
      return c;
    }
    if (has_args) {
      if (name == "epsilon-plus" || name == "epsilon-alpha2-beta1" || name == "epsilon-plus-flat")
        throw parse_error(fmt::format("'{}' takes no parameters", name));
    }
    if (name == "epsilon-plus") {
      c.kind = preset::epsilon_plus;
      c.conv_rule = rules::zplus();
      c.dense_rule = rules::epsilon();
      return c;
    }
    if (name == "epsilon-alpha2-beta1") {
      c.kind = preset::epsilon_alpha2_beta1;
      c.conv_rule = rules::alphabeta(2, 1);
      c.dense_rule = rules::epsilon();
      return c;
    }
    if (name == "epsilon-plus-flat") {
      c.kind = preset::epsilon_plus_flat;
      c.conv_rule = rules::zplus();
      c.dense_rule = rules::epsilon();
      c.first_rule = rules::flat();
      return c;
    }
    throw parse_error(fmt::format("unknown composite '{}'", name));
  } catch (const parse_error& e) {
    throw parse_error(fmt::format("invalid composite '{}': {}; {}", text, e.what(), valid_presets));
  }
}

void add_rule_option(composite& c, std::string_view text) {
  const std::string_view s = trim(text);
  const auto eq = s.rfind('=');
  if (eq == std::string_view::npos) {
    rule r = parse_rule(s);
    // Every preset has a rule for dense and for conv layers, so a default would never apply:
    // say so rather than ignore it.
    if (c.kind != preset::none)
      throw parse_error(fmt::format(
          "--rule {}: a composite gives every dense and convolution layer its rule, so a default rule would never "
          "apply; override a layer with --rule LAYER={} (LAYER = first, a 0-based linear-layer index, or an ONNX node "
          "name)",
          s, s));
    c.default_rule = std::move(r);
    return;
  }
  const std::string_view layer = trim(s.substr(0, eq));
  if (layer.empty())
    throw parse_error(fmt::format(
        "invalid --rule '{}': the layer before '=' is empty; write RULE, or LAYER=RULE with LAYER = first, "
        "a 0-based linear-layer index, or an ONNX node name",
        text));
  c.overrides.push_back({std::string(layer), parse_rule(s.substr(eq + 1))});
}

std::string to_string(const composite& c) {
  std::string out;
  switch (c.kind) {
    case preset::none: out = "default=" + to_string(c.default_rule); break;
    case preset::epsilon_plus: out = "epsilon-plus"; break;
    case preset::epsilon_alpha2_beta1: out = "epsilon-alpha2-beta1"; break;
    case preset::epsilon_plus_flat: out = "epsilon-plus-flat"; break;
    case preset::epsilon_gamma_box:
      out = fmt::format("epsilon-gamma-box:{},{}", bound_to_string(c.first_rule->low),
                        bound_to_string(c.first_rule->high));
      break;
  }
  if (c.kind != preset::none && c.default_rule != rules::epsilon())
    out += "; default=" + to_string(c.default_rule);
  for (const auto& o : c.overrides) out += fmt::format("; {}={}", o.layer, to_string(o.r));
  return out;
}

namespace {

std::string list_linear_layers(const network& net) {
  std::string out;
  std::size_t idx = 0;
  for (const auto& l : net.layers) {
    if (!l.is_linear()) continue;
    out += fmt::format("{}{}='{}' ({})", idx == 0 ? "" : ", ", idx, l.name, l.op_type);
    ++idx;
  }
  return idx == 0 ? std::string("none") : out;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char ch : s)
    if (ch < '0' || ch > '9') return false;
  return true;
}

/// Index among the linear layers selected by `sel`.
std::size_t select_layer(const std::string& sel, const network& net, std::size_t n_linear, const rule& r) {
  auto fail = [&](std::string_view why) -> std::size_t {
    throw parse_error(fmt::format("--rule {}={}: {}; the linear layers of '{}' are: {}", sel, to_string(r), why,
                                  net.source, list_linear_layers(net)));
  };
  if (sel == "first") {
    if (n_linear == 0) return fail("the network has no linear (dense or convolution) layer");
    return 0;
  }
  if (all_digits(sel)) {
    std::size_t idx = 0;
    auto [p, ec] = std::from_chars(sel.data(), sel.data() + sel.size(), idx);
    if (ec != std::errc{} || idx >= n_linear)
      return fail(fmt::format("linear-layer index {} is out of range (0..{})", sel,
                              n_linear == 0 ? std::string("none") : std::to_string(n_linear - 1)));
    return idx;
  }
  std::size_t idx = 0;
  for (const auto& l : net.layers) {
    if (l.name == sel) {
      if (!l.is_linear())
        return fail(fmt::format("node '{}' is a {} layer, not a dense or convolution layer", sel, l.op_type));
      return idx;
    }
    if (l.is_linear()) ++idx;
  }
  return fail(fmt::format("no node is named '{}'", sel));
}

}  // namespace

std::vector<rule> resolve(const composite& c, const network& net) {
  std::vector<rule> out;
  for (const auto& l : net.layers) {
    if (!l.is_linear()) continue;
    const bool conv = std::holds_alternative<conv2d_op>(l.op);
    rule r = c.default_rule;
    if (conv && c.conv_rule) r = *c.conv_rule;
    if (!conv && c.dense_rule) r = *c.dense_rule;
    if (out.empty() && c.first_rule && (conv || !c.first_rule_conv_only)) r = *c.first_rule;
    out.push_back(std::move(r));
  }
  for (const auto& o : c.overrides) out[select_layer(o.layer, net, out.size(), o.r)] = o.r;
  return out;
}

}  // namespace provnn::engine
