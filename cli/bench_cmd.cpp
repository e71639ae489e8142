// provnn bench [MODEL.onnx [--input X.npy] | --synthetic SPEC] [--rule RULE] [--semiring NAME]...
//              [--repeat N] [--max-edges E] [--json]
//
// Times every phase of an explanation on one input, `repeat` times, and reports the median and
// the minimum per phase in µs per input: forward, the dense numeric LRP (the baseline), both
// also in fp32 (forward_fp32, lrp_dense_fp32: parameters rounded once, untimed), circuit
// build, evaluation per semiring (valuation lifted once outside the timing, evaluate_into with a
// reused buffer), save (serialize_circuit to memory) and load (deserialize_circuit from it).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "circuits/evaluate.hpp"
#include "circuits/file_format.hpp"
#include "cli/commands.hpp"
#include "cli/selection.hpp"
#include "common/allocator.hpp"
#include "common/error.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"
#include "semirings/registry.hpp"

namespace provnn::cli {
namespace {

struct bench_options {
  std::string model, input, synthetic;
  std::vector<std::string> rules;
  std::string composite;
  std::vector<std::string> semirings;
  std::size_t repeat = 10;
  std::size_t max_edges = 20'000'000;
  circuit_budget budget;
  bool json = false;
};

using clock_type = std::chrono::steady_clock;

double micros_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

struct timing {
  double median = 0.0, min = 0.0;
};

timing summarise(std::vector<double> t) {
  if (t.empty()) return {};
  std::sort(t.begin(), t.end());
  const auto n = t.size();
  const double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  return {med, t.front()};
}

/// Multiply-adds of the linear layers: the number of edges of a one-term rule before zero
/// factors are dropped, known before anything is built.
double multiply_adds(const engine::network& net) {
  double total = 0.0;
  for (const auto& l : net.layers) {
    if (const auto* d = std::get_if<engine::dense_op>(&l.op)) {
      total += static_cast<double>(d->in) * static_cast<double>(d->out);
    } else if (const auto* c = std::get_if<engine::conv2d_op>(&l.op)) {
      total += static_cast<double>(engine::element_count(l.out_shape)) * static_cast<double>(c->in_channels / c->group) *
               static_cast<double>(c->kernel_h * c->kernel_w);
    }
  }
  return total;
}

// Keeps a result alive so the optimiser cannot drop the timed work.
volatile double sink = 0.0;

void run_bench(const bench_options& o) {
  if (o.repeat == 0) throw error("--repeat 0: at least one repetition is needed");
  if (o.model.empty() == o.synthetic.empty())
    throw error("bench needs exactly one of MODEL.onnx or --synthetic SPEC (e.g. --synthetic mlp:784-300-100-10)");
  if (!o.synthetic.empty() && !o.input.empty())
    throw error("--input goes with MODEL.onnx; a synthetic network draws its input from the fixed seed");

  engine::network net;
  std::vector<double> x;
  if (!o.synthetic.empty()) {
    net = engine::synthetic_network(o.synthetic);
    x = engine::synthetic_input(net);
  } else {
    net = engine::load_onnx(o.model);
    if (o.input.empty())
      x = engine::synthetic_input(net);
    else
      x = engine::select_sample(engine::read_npy(o.input), net.input_shape, std::nullopt, o.input);
  }
  engine::composite comp;
  if (!o.composite.empty()) comp = engine::parse_composite(o.composite);
  for (const auto& r : o.rules) engine::add_rule_option(comp, r);
  engine::lrp_options lopt;
  lopt.layer_rules = engine::resolve(comp, net);
  engine::resolve_bounds(lopt.layer_rules, [](const std::string& path) { return engine::read_npy(path).data; });
  engine::circuit_options copt;
  copt.layer_rules = lopt.layer_rules;
  copt.model = net.source;
  copt.input = o.input.empty() ? "synthetic" : o.input;
  o.budget.apply(copt);
  const std::vector<std::string> semirings =
      o.semirings.empty() ? std::vector<std::string>{"real", "boolean", "counting", "max-plus", "viterbi", "topk:10"}
                          : o.semirings;

  std::vector<double> t_forward, t_lrp, t_forward32, t_lrp32, t_build, t_save, t_load;
  const auto fwd = engine::forward(net, x);  // also the pattern every later phase uses
  for (std::size_t r = 0; r < o.repeat; ++r) {
    auto t0 = clock_type::now();
    const auto f = engine::forward(net, x);
    t_forward.push_back(micros_since(t0));
    sink = f.output()[0];
    t0 = clock_type::now();
    const auto l = engine::lrp(net, fwd, lopt);
    t_lrp.push_back(micros_since(t0));
    sink = l.input_relevance()[0];
  }
  // The fp32 path (forward.hpp): its parameters are rounded once, as a loaded model's would be.
  // A model float cannot hold (a parameter, input or output beyond its range) is reported and
  // the other phases still run.
  double t_to_float32 = 0.0, fp32_difference = 0.0;
  std::string fp32_refused;
  try {
    const auto t_start32 = clock_type::now();
    const auto p32 = engine::to_float32(net);
    t_to_float32 = micros_since(t_start32);
    const auto fwd32 = engine::forward(net, p32, x);
    for (std::size_t r = 0; r < o.repeat; ++r) {
      auto t0 = clock_type::now();
      const auto f = engine::forward(net, p32, x);
      t_forward32.push_back(micros_since(t0));
      sink = f.output()[0];
      t0 = clock_type::now();
      const auto l = engine::lrp(net, p32, fwd32, lopt);
      t_lrp32.push_back(micros_since(t0));
      sink = l.input_relevance()[0];
    }
    // How far the fp32 input relevance lies from the fp64 one, relative to the largest |R_j|.
    const auto r64 = engine::lrp(net, fwd, lopt).input_relevance();
    const auto r32 = engine::lrp(net, p32, fwd32, lopt).input_relevance();
    double big = 0.0, diff = 0.0;
    for (std::size_t i = 0; i < r64.size(); ++i) {
      big = std::max(big, std::fabs(r64[i]));
      diff = std::max(diff, std::fabs(r64[i] - static_cast<double>(r32[i])));
    }
    fp32_difference = big > 0 ? diff / big : diff;
  } catch (const error& e) {
    fp32_refused = fmt::format("fp32 not timed: {}", e.what());
    t_forward32.clear();
    t_lrp32.clear();
  }
  const bool have_fp32 = fp32_refused.empty();

  const double macs = multiply_adds(net);
  std::optional<circuit> c;
  std::string refused;
  std::map<std::string, std::vector<double>> t_eval;
  std::size_t file_bytes = 0;
  engine::circuit_build_info info;
  if (macs > static_cast<double>(o.max_edges)) {
    refused = fmt::format("circuit not built: the network has {:.0f} multiply-adds (≈ edges per rule term), above "
                          "--max-edges {}; raise --max-edges to build it (memory grows ~16+ bytes per edge)",
                          macs, o.max_edges);
  } else {
    for (std::size_t r = 0; r < o.repeat; ++r) {
      const auto t0 = clock_type::now();
      auto built = engine::build_circuit(net, fwd, copt, &info);
      t_build.push_back(micros_since(t0));
      if (r + 1 == o.repeat) c = std::move(built);
    }
    const token_resolver resolve = [&](std::string_view name) { return c->tokens().find(name); };
    for (const auto& spec : semirings) {
      auto times = with_semiring(spec, resolve, [&](const auto& s) {
        using S = std::decay_t<decltype(s)>;
        const auto valuation = lift_valuation(*c, s);
        values_of<S> buf;
        std::vector<double> t;
        for (std::size_t r = 0; r < o.repeat; ++r) {
          const auto t0 = clock_type::now();
          evaluate_into(*c, s, std::span<const stored_value_t<S>>(valuation), buf);
          t.push_back(micros_since(t0));
        }
        return t;
      });
      t_eval[spec] = std::move(times);
    }
    std::string bytes;
    for (std::size_t r = 0; r < o.repeat; ++r) {
      auto t0 = clock_type::now();
      bytes = serialize_circuit(*c);
      t_save.push_back(micros_since(t0));
      t0 = clock_type::now();
      const auto back = deserialize_circuit(bytes, "<bench>");
      t_load.push_back(micros_since(t0));
      sink = static_cast<double>(back.size());
    }
    file_bytes = bytes.size();
  }

  nlohmann::json j, med, mins;
  const auto put = [&](const char* key, const std::vector<double>& t) {
    const auto s = summarise(t);
    med[key] = s.median;
    mins[key] = s.min;
    return s;
  };
  const auto forward_t = put("forward", t_forward);
  const auto lrp_t = put("lrp_dense", t_lrp);
  const auto forward32_t = have_fp32 ? put("forward_fp32", t_forward32) : timing{};
  const auto lrp32_t = have_fp32 ? put("lrp_dense_fp32", t_lrp32) : timing{};
  j["model"] = net.source;
  j["rules"] = to_string(comp);
  j["repeat"] = o.repeat;
  j["multiply_adds"] = macs;
  j["layout"] = copt.layout == engine::circuit_layout::fused        ? "fused"
                : copt.layout == engine::circuit_layout::structured ? "structured"
                                                                    : "plain";
  // Page faults dominate large builds on some machines: say how malloc was set up.
  j["malloc_huge_pages"] = malloc_uses_huge_pages();
  nlohmann::json ratios;
  ratios["lrp_dense_over_forward"] = lrp_t.median / forward_t.median;
  // A numeric explanation as Zennit's is timed (forward + LRP, model loaded), in both precisions.
  j["explanation_us"] = {{"fp64", forward_t.median + lrp_t.median}, {"fp32", nullptr}};
  if (have_fp32) {
    j["explanation_us"]["fp32"] = forward32_t.median + lrp32_t.median;
    ratios["explanation_fp32_over_fp64"] = (forward32_t.median + lrp32_t.median) / (forward_t.median + lrp_t.median);
    ratios["fp32_relevance_max_difference"] = fp32_difference;  // relative to max |R_j| of fp64
    j["to_float32_us"] = t_to_float32;
  } else {
    j["fp32_refused"] = fp32_refused;
  }
  if (c) {
    const auto build_t = put("build", t_build);
    med["eval"] = nlohmann::json::object();
    mins["eval"] = nlohmann::json::object();
    for (const auto& [name, t] : t_eval) {
      const auto s = summarise(t);
      med["eval"][name] = s.median;
      mins["eval"][name] = s.min;
    }
    put("save", t_save);
    put("load", t_load);
    // Active edges: edge gates (plain layout) or edges inside fused gates, as the builder counts them.
    const auto edges = info.edges;
    const auto mem = c->bytes() + c->tokens().bytes();
    j["circuit"] = {{"gates", c->size()},
                    {"edges", edges},
                    {"child_references", c->child_count()},
                    {"tokens", c->tokens().size()},
                    {"bytes_memory", mem},
                    {"bytes_file", file_bytes}};
    const double e = edges ? static_cast<double>(edges) : 1.0;
    ratios["build_ns_per_edge"] = build_t.median * 1000.0 / e;
    ratios["bytes_memory_per_edge"] = static_cast<double>(mem) / e;
    ratios["bytes_file_per_edge"] = static_cast<double>(file_bytes) / e;
    if (med["eval"].contains("real")) {
      const double real = med["eval"]["real"].get<double>();
      ratios["eval_real_over_lrp_dense"] = real / lrp_t.median;
      ratios["eval_real_ns_per_edge"] = real * 1000.0 / e;
      ratios["build_plus_eval_real_us"] = build_t.median + real;
      nlohmann::json per;
      for (const auto& [name, t] : t_eval) per[name] = med["eval"][name].get<double>() / real;
      ratios["eval_over_real"] = per;
    }
  } else {
    j["circuit"] = nullptr;
    j["refused"] = refused;
  }
  j["phases_us"] = med;
  j["phases_min_us"] = mins;
  j["ratios"] = ratios;

  if (o.json) {
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("model   {}   rules {}   layout {}   repeat {}   multiply-adds {:.0f}   malloc huge pages {}\n", net.source,
             to_string(comp), j["layout"].get<std::string>(), o.repeat, macs, malloc_uses_huge_pages() ? "on" : "off");
  fmt::print("{:<22} {:>14} {:>14}\n", "phase (µs per input)", "median", "min");
  const auto row = [&](const std::string& name, double m, double n) { fmt::print("{:<22} {:>14.2f} {:>14.2f}\n", name, m, n); };
  row("forward", forward_t.median, forward_t.min);
  row("lrp_dense", lrp_t.median, lrp_t.min);
  if (have_fp32) {
    row("forward_fp32", forward32_t.median, forward32_t.min);
    row("lrp_dense_fp32", lrp32_t.median, lrp32_t.min);
  } else {
    fmt::print("{}\n", fp32_refused);
  }
  if (c) {
    row("build", med["build"].get<double>(), mins["build"].get<double>());
    for (const auto& [name, t] : t_eval)
      row("eval " + name, med["eval"][name].get<double>(), mins["eval"][name].get<double>());
    row("save", med["save"].get<double>(), mins["save"].get<double>());
    row("load", med["load"].get<double>(), mins["load"].get<double>());
    const auto& ci = j["circuit"];
    fmt::print("circuit {} gates, {} edges, {} tokens, {} bytes in memory, {} bytes on disk\n",
               ci["gates"].get<std::size_t>(), ci["edges"].get<std::size_t>(), ci["tokens"].get<std::size_t>(),
               ci["bytes_memory"].get<std::size_t>(), ci["bytes_file"].get<std::size_t>());
  } else {
    fmt::print("{}\n", refused);
  }
  // Four significant digits (fp32's relevance difference is ~1e-7), whole numbers from 1000 up.
  const auto readable = [](double v) { return std::fabs(v) >= 1000 ? fmt::format("{:.0f}", v) : fmt::format("{:.4g}", v); };
  fmt::print("numeric explanation (forward + LRP, µs): fp64 {:.2f}{}\n", j["explanation_us"]["fp64"].get<double>(),
             have_fp32 ? fmt::format(", fp32 {:.2f}", j["explanation_us"]["fp32"].get<double>()) : "");
  fmt::print("ratios\n");
  for (const auto& [k, v] : ratios.items()) {
    if (v.is_object()) {
      for (const auto& [k2, v2] : v.items()) fmt::print("  {:<30} {}\n", k + "[" + k2 + "]", readable(v2.get<double>()));
    } else {
      fmt::print("  {:<30} {}\n", k, readable(v.get<double>()));
    }
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<bench_options>();
  auto* cmd = app.add_subcommand("bench", "time every phase of an explanation (forward and dense LRP in fp64 and fp32, "
                                          "circuit build, evaluation per semiring, save, load) on one input");
  cmd->add_option("model", o->model, "ONNX model file (or use --synthetic)");
  cmd->add_option("--input,-i", o->input, "input sample .npy (sample 0 of a batch); default: U(0,1) from the fixed seed");
  cmd->add_option("--synthetic", o->synthetic, "synthetic network: mlp:784-300-100-10 (any sizes), lenet5, vgg-small");
  cmd->add_option("--rule,-r", o->rules, "[LAYER=]RULE, repeatable, as in 'provnn explain' (default epsilon)");
  cmd->add_option("--composite,-c", o->composite, "rule preset, as in 'provnn explain'");
  cmd->add_option("--semiring,-s", o->semirings,
                  "semiring to evaluate (repeatable; default real, boolean, counting, max-plus, viterbi, topk:10)");
  cmd->add_option("--repeat,-n", o->repeat, "repetitions per phase (default 10); median and min are reported");
  add_budget_options(*cmd, o->budget);
  cmd->add_option("--max-edges", o->max_edges,
                  "build no circuit when the network has more multiply-adds than this (default 20000000); "
                  "forward and dense LRP are still timed");
  cmd->add_flag("--json", o->json,
                "print one JSON object: phases_us, phases_min_us, explanation_us, circuit, ratios, to_float32_us, …");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace provnn::cli
