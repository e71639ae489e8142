#include "cli/selection.hpp"

#include <charconv>
#include <filesystem>

#include <fmt/format.h>

#include <map>

#include "common/error.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "engine/png_io.hpp"

namespace provnn::cli {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<double> load_sample(const selection_options& o, const engine::network& net) {
  if (ends_with(o.input, ".png") || ends_with(o.input, ".PNG")) {
    if (o.index) throw error(fmt::format("--index {} given for the PNG input '{}': a PNG holds one sample", *o.index, o.input));
    auto img = engine::read_png(o.input, {o.png_scale, o.png_offset});
    return engine::png_to_input(img, net.input_shape, o.input);
  }
  auto arr = engine::read_npy(o.input);
  return engine::select_sample(arr, net.input_shape, o.index, o.input);
}

engine::lrp_target parse_target(const std::string& text, const engine::network& net) {
  if (text.empty() || text == "pred") return engine::predicted_class{};
  std::size_t c = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), c);
  if (ec == std::errc{} && end == text.data() + text.size()) {
    const auto classes = engine::element_count(net.output_shape());
    if (c >= classes) {
      throw error(fmt::format("--target {}: the model '{}' has {} outputs (classes 0..{})", c, net.source, classes,
                              classes - 1));
    }
    return c;
  }
  if (ends_with(text, ".npy")) {
    auto arr = engine::read_npy(text);
    const auto classes = engine::element_count(net.output_shape());
    if (arr.data.size() != classes) {
      throw error(fmt::format("--target {}: an initial relevance vector needs {} values (the model's outputs), the file has {}",
                              text, classes, arr.data.size()));
    }
    return arr.data;
  }
  throw parse_error(fmt::format("--target '{}': expected 'pred', a class index, or an initial relevance vector FILE.npy", text));
}

}  // namespace

void add_budget_options(CLI::App& cmd, circuit_budget& b) {
  cmd.add_option("--max-gates", b.max_gates,
                 fmt::format("circuit budget: at most N gates (default {})", engine::default_max_gates));
  cmd.add_option("--max-memory", b.max_memory,
                 fmt::format("circuit budget: at most SIZE bytes for the circuit, e.g. 512M, 16G (default {}G)",
                             engine::default_max_memory >> 30))
      ->transform(CLI::AsSizeValue(false));
  cmd.add_option("--layout", b.layout,
                 "circuit layout: plain (an edge gate per edge, default), fused (4–8 bytes per edge, edges inside "
                 "fused gates) or structured (dense layers fused, a convolution's edges implied by its geometry: "
                 "nothing stored per edge); same values, expanded when DOT or an edge annotation needs edge gates")
      ->check(CLI::IsMember({"plain", "fused", "structured"}));
}

void add_precision_option(CLI::App& cmd, std::string& precision) {
  cmd.add_option("--precision", precision,
                 "arithmetic of the numeric relevance: fp64 (default) or fp32 (float, as PyTorch and Zennit: "
                 "1.3-2.1x faster, 1.8x on vgg-small; typically within 1e-4 of fp64's max |R|, more where a ReLU or "
                 "max-pool near-tie flips); circuits are always fp64")
      ->check(CLI::IsMember({"fp64", "fp32"}));
}

void add_selection_options(CLI::App& cmd, selection_options& o) {
  cmd.add_option("model", o.model, "ONNX model file")->required();
  cmd.add_option("--input,-i", o.input, "input sample: X.npy (one sample or a batch) or X.png")->required();
  cmd.add_option("--index", o.index, "sample index when the .npy holds a batch (default 0)");
  cmd.add_option("--target,-t", o.target,
                 "what to explain: 'pred' (the predicted class, default), a class index C, "
                 "or an initial relevance vector R.npy");
  cmd.add_option("--rule,-r", o.rules,
                 "[LAYER=]RULE, repeatable. RULE: zero | epsilon[:E] | gamma[:G] | zplus | alphabeta[:A,B] | "
                 "zbox:L,H | flat | wsquare (L,H numbers or .npy files). LAYER: 'first', a 0-based index among "
                 "the linear layers, or an ONNX node name. Without LAYER: the default rule (epsilon)");
  cmd.add_option("--composite,-c", o.composite,
                 "preset: epsilon-plus | epsilon-gamma-box:L,H | epsilon-alpha2-beta1 | epsilon-plus-flat "
                 "(--rule overrides apply on top)");
  cmd.add_flag("--no-bias", o.no_bias, "zero every bias in the rules (Zennit's zero_params='bias')");
  cmd.add_option("--png-scale", o.png_scale, "PNG inputs: multiply pixel values in [0,1] by this (default 1)");
  cmd.add_option("--png-offset", o.png_offset, "PNG inputs: add this after scaling (default 0)");
  add_budget_options(cmd, o.budget);
}

selection load_selection(const selection_options& o) {
  selection s;
  s.net = engine::load_onnx(o.model);
  s.sample = load_sample(o, s.net);
  s.fwd = engine::forward(s.net, s.sample);

  if (!o.composite.empty()) s.comp = engine::parse_composite(o.composite);
  for (const auto& r : o.rules) engine::add_rule_option(s.comp, r);
  s.options.layer_rules = engine::resolve(s.comp, s.net);
  engine::resolve_bounds(s.options.layer_rules, [](const std::string& path) { return engine::read_npy(path).data; });
  s.options.bias = o.no_bias ? engine::bias_mode::zeroed : engine::bias_mode::kept;
  s.options.target = parse_target(o.target, s.net);
  return s;
}

std::string multi_index(const engine::shape_t& s, std::size_t i) {
  std::vector<std::size_t> idx(s.size());
  for (std::size_t d = s.size(); d-- > 0;) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return fmt::format("[{}]", fmt::join(idx, ","));
}

}  // namespace provnn::cli
