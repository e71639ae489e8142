// provnn poly C.pvc --feature I [--target Y] [--max-monomials N] [--top K] [--json]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>

#include "circuits/evaluate.hpp"
#include "circuits/expand.hpp"
#include "semirings/real.hpp"
#include "circuits/file_format.hpp"
#include "cli/commands.hpp"
#include "cli/circuit_support.hpp"

namespace provnn::cli {

const root& feature_root(const circuit& c, std::size_t feature, std::optional<std::uint32_t> target) {
  const root* found = nullptr;
  std::size_t features = 0;
  for (const auto& r : c.roots()) {
    if (r.kind != root_kind::feature) continue;
    if (target && r.target != *target) continue;
    ++features;
    if (r.index == feature && !found) found = &r;
  }
  if (!found) {
    throw error(fmt::format("--feature {}: the circuit has {} feature roots{} (flat indices 0..{})", feature, features,
                            target ? fmt::format(" for target {}", *target) : "", features ? features - 1 : 0));
  }
  return *found;
}

std::size_t parse_feature(const circuit& c, const std::string& text, std::optional<std::uint32_t> target) {
  if (text == "max") {
    const auto values = evaluate(c, real_semiring{});
    std::optional<std::size_t> best;
    double best_abs = -1.0;
    for (const auto& r : c.roots()) {
      if (r.kind != root_kind::feature || (target && r.target != *target)) continue;
      const double v = std::abs(values[to_index(r.gate)]);
      if (v > best_abs) best_abs = v, best = r.index;
    }
    if (!best) throw error("--feature max: the circuit has no feature roots");
    return *best;
  }
  std::size_t i = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw parse_error(fmt::format("--feature '{}': expected a flat feature index or 'max'", text));
  }
  return i;
}

namespace {
nlohmann::json monomial_json(const circuit& c, const monomial& m) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& f : m) j[c.tokens().name(f.token)] = f.exponent;
  return j;
}
}  // namespace

void add_poly_command(CLI::App& app) {
  struct options {
    std::string file;
    std::string feature;
    std::optional<std::uint32_t> target;
    std::size_t max_monomials = 100'000;
    std::optional<std::size_t> top;
    bool json = false;
  };
  auto o = std::make_shared<options>();
  auto* cmd = app.add_subcommand("poly", "the N[X] polynomial of one feature's relevance, or its top-K monomials");
  cmd->add_option("circuit", o->file, "circuit file (.pvc)")->required();
  cmd->add_option("--feature,-f", o->feature,
                  "flat index of the input feature, or 'max' for the feature with the largest |relevance|")
      ->required();
  cmd->add_option("--target", o->target, "class, when the circuit explains several");
  cmd->add_option("--max-monomials", o->max_monomials, "stop with an error past this many monomials (default 100000)");
  cmd->add_option("--top", o->top, "only the K monomials with the largest |real product| (scales to any circuit)");
  cmd->add_flag("--json", o->json, "JSON list of {coefficient, monomial: {token: exponent}} (with --top: score)");
  cmd->callback([o] {
    const circuit c = load_circuit(o->file);
    const root& r = feature_root(c, parse_feature(c, o->feature, o->target), o->target);
    const auto names = c.tokens().namer();
    if (o->top) {
      const auto list = top_monomials(c, r.gate, *o->top);
      if (o->json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& e : list.entries) j.push_back({{"score", e.score}, {"monomial", monomial_json(c, e.mono)}});
        fmt::print("{}\n", j.dump());
        return;
      }
      fmt::print("top {} monomials of {} (by |real product|):\n", list.entries.size(), r.name);
      for (const auto& e : list.entries) fmt::print("  {:+.6g}  {}\n", e.score, format_monomial(e.mono, names));
      return;
    }
    const polynomial p = expand(c, r.gate, o->max_monomials, r.name);
    if (o->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& t : p) {
        j.push_back({{"coefficient", t.coefficient.str()}, {"monomial", monomial_json(c, t.mono)}});
      }
      fmt::print("{}\n", j.dump());
      return;
    }
    fmt::print("{} = {}\n", r.name, format_polynomial(p, names));
    fmt::print("({} monomials)\n", p.size());
  });
}

}  // namespace provnn::cli
