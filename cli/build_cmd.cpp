// provnn build MODEL.onnx --input … [selection and rule options] [--targets C1,C2,…] -o C.pvc
#include <unistd.h>

#include <fmt/format.h>

#include "circuits/file_format.hpp"
#include "cli/circuit_cmds.hpp"
#include "cli/commands.hpp"
#include "cli/semiring_output.hpp"

namespace provnn::cli {

circuit build_from_selection(const selection& s, const selection_options& o, const std::vector<std::size_t>& targets,
                             engine::circuit_build_info* info) {
  engine::circuit_options co;
  co.layer_rules = s.options.layer_rules;
  co.bias = s.options.bias;
  co.target = s.options.target;
  co.targets = targets;
  co.model = o.model;
  o.budget.apply(co);
  if (::isatty(STDERR_FILENO)) {  // progress on a terminal only; quiet in pipes and logs
    co.progress = [](std::size_t done, std::size_t total) {
      fmt::print(stderr, "\rbuilding the circuit: layer {} of {} (from the output down)…", done + 1, total);
    };
  }
  co.input = o.index ? fmt::format("{}[{}]", o.input, *o.index) : o.input;
  circuit c = engine::build_circuit(s.net, s.fwd, co, info);
  if (co.progress) fmt::print(stderr, "\r\x1b[K");
  c.metadata()["input_shape"] = fmt::format("{}", fmt::join(s.net.input_shape, ","));
  return c;
}

namespace {
struct build_options {
  selection_options sel;
  std::vector<std::size_t> targets;
  std::string out;
  std::vector<std::string> semirings;
  std::size_t show = 5;
};
}  // namespace

void add_build_command(CLI::App& app) {
  auto o = std::make_shared<build_options>();
  auto* cmd = app.add_subcommand("build", "build the provenance circuit of LRP for one input and save it (.pvc)");
  add_selection_options(*cmd, o->sel);
  cmd->add_option("--targets", o->targets, "explain several classes at once, sharing the circuit (e.g. --targets 0,3)")
      ->delimiter(',');
  cmd->add_option("--out,-o", o->out, "circuit file to write (.pvc)")->required();
  cmd->add_option("--semiring,-s", o->semirings,
                  "also evaluate the circuit just built in these semirings (same output as 'provnn eval')");
  cmd->add_option("--show", o->show, "features listed per semiring (default 5)");
  cmd->callback([o] {
    const selection s = load_selection(o->sel);
    engine::circuit_build_info info;
    const circuit c = build_from_selection(s, o->sel, o->targets, &info);
    save_circuit(c, o->out);
    if (!c.structured_gates().empty())
      fmt::print("wrote {}: {} gates ({} fused, {} structured over {} conv stages; {} edges in all), {} tokens, {} roots\n",
                 o->out, c.size(), c.fused_gates().size(), c.structured_gates().size(), c.conv_stages().size(),
                 info.edges, c.tokens().size(), c.roots().size());
    else if (c.fused_gates().empty())
      fmt::print("wrote {}: {} gates, {} edge gates, {} tokens, {} roots\n", o->out, c.size(), info.edges,
                 c.tokens().size(), c.roots().size());
    else
      fmt::print("wrote {}: {} gates ({} fused, holding {} edges), {} tokens, {} roots\n", o->out, c.size(),
                 c.fused_gates().size(), info.edges, c.tokens().size(), c.roots().size());
    if (!o->semirings.empty()) {
      for (const auto& r : evaluate_all(c, o->semirings, {}, {}, 1'000'000)) print_report(c, r, o->show);
    }
  });
}

}  // namespace provnn::cli
