// provnn eval C.pvc [--semiring NAME]... [--valuation V.json] [--edge-annotation SPEC]
//                   [--out R.npy] [--json] [--max-terms N] [--show K]
#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "circuits/file_format.hpp"
#include "circuits/fused.hpp"
#include "cli/circuit_support.hpp"
#include "cli/commands.hpp"
#include "cli/semiring_output.hpp"
#include "engine/npy.hpp"

namespace provnn::cli {

std::vector<semiring_report> evaluate_all(const circuit& c, const std::vector<std::string>& semirings,
                                          const std::string& valuation_file, const std::string& annotation,
                                          std::size_t max_terms) {
  report_options ro;
  ro.max_terms = max_terms;
  if (!valuation_file.empty()) ro.overrides = read_valuation_json(valuation_file);
  std::optional<edge_annotation> theta;
  // An annotation values edge gates: a fused circuit is expanded first (same roots, same order).
  std::optional<circuit> expanded;
  if (!annotation.empty() && has_fused_gates(c)) expanded = expand_fused(c);
  const circuit& e = expanded ? *expanded : c;
  if (!annotation.empty()) {
    theta = parse_edge_annotation(e, annotation);
    ro.theta = &*theta;
  }
  std::vector<semiring_report> out;
  for (const auto& name : semirings) out.push_back(evaluate_report(e, name, ro));
  return out;
}

nlohmann::json reports_json(const circuit& c, const std::vector<semiring_report>& reports) {
  nlohmann::json all = nlohmann::json::array();
  for (const auto& r : reports) {
    nlohmann::json j;
    j["semiring"] = r.semiring;
    j["reading"] = r.reading;
    nlohmann::json roots = nlohmann::json::array();
    for (std::size_t i = 0; i < c.roots().size(); ++i) {
      nlohmann::json e;
      e["root"] = c.roots()[i].name;
      e["kind"] = std::string(to_string(c.roots()[i].kind));
      if (r.numeric) {
        e["value"] = *r.number[i];
        if (r.text[i] != fmt::format("{:.17g}", *r.number[i])) e["exact"] = r.text[i];
      } else {
        e["value"] = r.text[i];
      }
      roots.push_back(std::move(e));
    }
    j["roots"] = std::move(roots);
    all.push_back(std::move(j));
  }
  return all;
}

void print_report(const circuit& c, const semiring_report& r, std::size_t show) {
  fmt::print("{:<12} {}\n", r.semiring, r.reading);
  // Features with a non-zero value, the most relevant first (numeric semirings).
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < c.roots().size(); ++i)
    if (c.roots()[i].kind == root_kind::feature && r.text[i] != r.zero_text) order.push_back(i);
  if (r.numeric) {
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return rank_key(r.semiring, *r.number[a]) > rank_key(r.semiring, *r.number[b]);
    });
  }
  const std::size_t k = std::min(show, order.size());
  for (std::size_t i = 0; i < k; ++i) {
    auto text = r.text[order[i]];
    if (text.size() > 160) text = text.substr(0, 157) + "...";
    fmt::print("    {:<22} {}\n", c.roots()[order[i]].name, text);
  }
  if (order.size() > k) fmt::print("    … {} more non-zero features (--show N, or --json for all)\n", order.size() - k);
}

void write_numeric(const circuit& c, const semiring_report& r, const std::string& path) {
  if (!r.numeric) {
    throw error(fmt::format("--out needs a numeric semiring (real, boolean, counting, viterbi, max-plus, tropical, "
                            "fuzzy, lukasiewicz, exact, exact-float); '{}' is symbolic: use --json",
                            r.semiring));
  }
  std::vector<double> values;
  std::vector<std::uint32_t> targets;
  for (std::size_t i = 0; i < c.roots().size(); ++i) {
    const auto& root = c.roots()[i];
    if (root.kind != root_kind::feature) continue;
    values.push_back(*r.number[i]);
    if (std::find(targets.begin(), targets.end(), root.target) == targets.end()) targets.push_back(root.target);
  }
  auto shape = circuit_input_shape(c);
  if (targets.size() > 1) shape.insert(shape.begin(), targets.size());
  if (engine::element_count(shape) != values.size()) shape = {values.size()};
  engine::write_npy(path, shape, values);
}

namespace {
struct eval_options {
  std::string file;
  std::vector<std::string> semirings;
  std::string valuation, annotation, out;
  bool json = false;
  std::size_t max_terms = 1'000'000;
  std::size_t show = 10;
};
}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<eval_options>();
  auto* cmd = app.add_subcommand("eval", "evaluate a saved circuit in one or more semirings");
  cmd->add_option("circuit", o->file, "circuit file (.pvc)")->required();
  cmd->add_option("--semiring,-s", o->semirings, "semiring name, repeatable (default real; see 'provnn semirings')");
  cmd->add_option("--valuation", o->valuation,
                  "JSON object of token names or glob patterns to real values, e.g. {\"W1[3,*]\": 0} (0 deletes)");
  cmd->add_option("--edge-annotation,-e", o->annotation,
                  "value edges by their coefficient: identity | threshold:θ | threshold:L=θ,L=θ,… | viterbi-maxnorm");
  cmd->add_option("--out,-o", o->out, "write the values of the first semiring as float64 .npy (input's shape)");
  cmd->add_flag("--json", o->json, "print every root's value as JSON");
  cmd->add_option("--max-terms", o->max_terms, "limit on monomials/witnesses per gate for symbolic semirings");
  cmd->add_option("--show", o->show, "features listed per semiring (default 10)");
  cmd->callback([o] {
    const circuit c = load_circuit(o->file);
    if (o->semirings.empty()) o->semirings.push_back("real");
    const auto reports = evaluate_all(c, o->semirings, o->valuation, o->annotation, o->max_terms);
    if (!o->out.empty()) write_numeric(c, reports.front(), o->out);
    if (o->json) {
      fmt::print("{}\n", reports_json(c, reports).dump());
      return;
    }
    for (const auto& r : reports) print_report(c, r, o->show);
    if (!o->out.empty()) fmt::print("wrote {}\n", o->out);
  });
}

}  // namespace provnn::cli
