// provnn explain MODEL.onnx --input X.npy|X.png [selection and rule options] [--out R.npy] [--json]
#include <algorithm>
#include <numeric>
#include <optional>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdlib>

#include "cli/commands.hpp"
#include "cli/circuit_cmds.hpp"
#include "cli/heatmap.hpp"
#include "cli/semiring_output.hpp"
#include "cli/selection.hpp"
#include "engine/lrp.hpp"
#include "engine/npy.hpp"

namespace provnn::cli {
namespace {

struct explain_options {
  selection_options sel;
  std::string out;
  std::string heatmap;
  bool overlay = false;
  bool json = false;
  std::size_t top = 10;
  std::vector<std::string> semirings;
  std::string annotation, valuation;
  std::size_t max_terms = 1'000'000;
  std::string precision = "fp64";
};

std::string rules_summary(const selection& s) {
  std::vector<std::string> parts;
  std::size_t li = 0;
  for (const auto& l : s.net.layers) {
    if (!l.is_linear()) continue;
    parts.push_back(fmt::format("{}:{}", l.name, engine::to_string(s.options.layer_rules[li++])));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

void run_explain(const explain_options& o) {
  const selection s = load_selection(o.sel);
  // fp32: the forward pass and LRP again in float (engine/forward.hpp); circuits stay fp64.
  const bool fp32 = o.precision == "fp32";
  std::size_t prediction = engine::predicted(s.fwd);
  double prediction_logit = s.fwd.output()[prediction];
  engine::lrp_result r;
  if (fp32) {
    const auto p = engine::to_float32(s.net);
    const auto f = engine::forward(s.net, p, s.sample);
    r = engine::to_double(engine::lrp(s.net, p, f, s.options));
    prediction = engine::predicted(f);
    prediction_logit = f.output()[prediction];
  } else {
    r = engine::lrp(s.net, s.fwd, s.options);
  }
  const auto& rel = r.input_relevance();
  const double total = std::accumulate(rel.begin(), rel.end(), 0.0);

  // Semiring evaluations go through the provenance circuit of the same explanation.
  std::vector<semiring_report> reports;
  std::optional<circuit> c;
  if (!o.semirings.empty() || !o.annotation.empty() || !o.valuation.empty()) {
    c = build_from_selection(s, o.sel, {});
    if (fp32 && r.target && engine::predicted(s.fwd) != *r.target &&
        std::holds_alternative<engine::predicted_class>(s.options.target))
      fmt::print(stderr,
                 "provnn: note: fp32 predicts class {}, fp64 class {} (a near-tie): the relevance explains class {}, "
                 "the fp64 circuit class {}; give --target to explain the same class in both\n",
                 *r.target, engine::predicted(s.fwd), *r.target, engine::predicted(s.fwd));
    auto names = o.semirings.empty() ? std::vector<std::string>{"real"} : o.semirings;
    reports = evaluate_all(*c, names, o.valuation, o.annotation, o.max_terms);
  }

  if (!o.out.empty()) engine::write_npy(o.out, s.net.input_shape, rel);
  if (!o.heatmap.empty()) {
    write_heatmap_png(o.heatmap, s.net.input_shape, rel, o.overlay ? std::span<const double>(s.sample) : std::span<const double>());
  }

  if (o.json) {
    nlohmann::json j;
    j["model"] = o.sel.model;
    j["input"] = o.sel.input;
    j["target"] = r.target ? nlohmann::json(*r.target) : nlohmann::json(nullptr);
    j["prediction"] = prediction;
    j["precision"] = o.precision;
    j["score"] = r.score;
    j["shape"] = s.net.input_shape;
    j["relevance"] = rel;
    j["sum"] = total;
    j["bias_share"] = r.bias_share;
    j["rules"] = rules_summary(s);
    j["bias"] = o.sel.no_bias ? "zeroed" : "kept";
    if (c) j["semirings"] = reports_json(*c, reports);
    fmt::print("{}\n", j.dump());
    return;
  }
  if (!o.out.empty()) {
    fmt::print("wrote {} (float64, shape ({}))\n", o.out, fmt::join(s.net.input_shape, ", "));
    return;
  }

  fmt::print("model       {}\n", s.net.source);
  fmt::print("prediction  class {} (logit {:.6g})\n", prediction, prediction_logit);
  if (r.target) {
    fmt::print("explained   class {} (score {:.6g})\n", *r.target, r.score);
  } else {
    fmt::print("explained   a given initial relevance (sum {:.6g})\n", r.score);
  }
  fmt::print("rules       {}{}\n", rules_summary(s), o.sel.no_bias ? " (biases zeroed)" : "");
  if (fp32) fmt::print("precision   fp32 (float arithmetic, as PyTorch and Zennit compute){}\n", c ? "; the circuit is fp64" : "");
  fmt::print("relevance   sum over the input {:.6g}, absorbed by biases {:.6g}, lost to stabilisers {:.3g}\n", total,
             r.bias_share, r.score - total - r.bias_share);

  std::vector<std::size_t> order(rel.size());
  std::iota(order.begin(), order.end(), 0);
  const std::size_t k = std::min(o.top, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::size_t a, std::size_t b) {
                      return std::abs(rel[a]) > std::abs(rel[b]) || (std::abs(rel[a]) == std::abs(rel[b]) && a < b);
                    });
  const bool ansi = ::isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  if (const auto picture = terminal_heatmap(s.net.input_shape, rel, ansi); !picture.empty()) {
    fmt::print("heatmap (red: for the class, blue: against; ## strongest){}\n{}", ansi ? "" : ":", picture);
  }
  fmt::print("most relevant input features (by |R|):\n");
  for (std::size_t i = 0; i < k; ++i) {
    const auto f = order[i];
    fmt::print("  x{:<12} R = {:+.6g}   (x = {:.4g})\n", multi_index(s.net.input_shape, f), rel[f], s.sample[f]);
  }
  if (c) {
    fmt::print("the same explanation as a provenance circuit ({} gates), evaluated in {} semiring{}{}:\n", c->size(),
               reports.size(), reports.size() == 1 ? "" : "s",
               o.annotation.empty() ? "" : fmt::format(" under the edge annotation {}", o.annotation));
    for (const auto& rep : reports) print_report(*c, rep, 3);
  }
  if (!o.heatmap.empty()) fmt::print("wrote {} (heatmap: red for the class, blue against, white 0)\n", o.heatmap);
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto o = std::make_shared<explain_options>();
  auto* cmd = app.add_subcommand("explain", "LRP relevance of every input feature for one input");
  add_selection_options(*cmd, o->sel);
  cmd->add_option("--out,-o", o->out, "write the relevance as float64 .npy with the input's shape");
  cmd->add_option("--heatmap", o->heatmap, "write a PNG heatmap (blue–white–red, symmetric around 0)");
  cmd->add_flag("--overlay", o->overlay, "draw the input in grey under the heatmap");
  cmd->add_flag("--json", o->json,
                "print {target, score, shape, relevance, sum, bias_share, prediction, precision, …} as JSON");
  add_precision_option(*cmd, o->precision);
  cmd->add_option("--top", o->top, "how many features the summary lists (default 10)");
  cmd->add_option("--semiring,-s", o->semirings,
                  "also evaluate the explanation's provenance circuit in this semiring (repeatable; 'provnn semirings')");
  cmd->add_option("--edge-annotation,-e", o->annotation,
                  "value the circuit's edges by their coefficient: identity | threshold:θ | threshold:L=θ,L=θ,… | "
                  "viterbi-maxnorm");
  cmd->add_option("--valuation", o->valuation, "JSON object of token names or glob patterns to real values");
  cmd->add_option("--max-terms", o->max_terms, "limit on monomials/witnesses per gate for symbolic semirings");
  cmd->callback([o] { run_explain(*o); });
}

}  // namespace provnn::cli
