// provnn batch MODEL.onnx --input X.npy [rule options] [--precision fp64|fp32] [--semiring NAME]...
//              [--threads N] [--keep-circuits DIR] --out R.npy [--json]
//
// Explains every sample of a batch on all cores. Workers pull sample indices from an atomic
// counter; each sample's relevance is the numeric LRP (engine::lrp, the numbers `explain --out`
// writes, in fp64 or with --precision fp32 in float), and with --semiring each worker also
// builds the sample's circuit (fp64), evaluates it and drops it, so memory stays bounded by one
// circuit per worker (--keep-circuits DIR saves DIR/sample_<i>.pvc instead of only dropping it).
// A failing sample is reported on stderr by index; its row of the output is NaN; the others
// continue; the exit code is then 4.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include "circuits/file_format.hpp"
#include "cli/circuit_support.hpp"
#include "cli/commands.hpp"
#include "cli/selection.hpp"
#include "common/error.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/lrp.hpp"
#include "engine/npy.hpp"
#include "engine/onnx_import.hpp"
#include "semirings/registry.hpp"

namespace provnn::cli {
namespace {

/// Exit code of a batch in which some samples failed (the others were written).
constexpr int exit_some_failed = 4;

struct batch_options {
  circuit_budget budget;
  std::string model, input, out;
  std::string target = "pred";
  std::vector<std::string> rules;
  std::string composite;
  bool no_bias = false;
  std::vector<std::string> semirings;
  std::size_t threads = 0;
  std::string keep_circuits;
  bool json = false;
  std::string precision = "fp64";
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// --target as `explain` reads it (pred, class index, initial relevance .npy).
engine::lrp_target parse_batch_target(const std::string& text, const engine::network& net) {
  if (text.empty() || text == "pred") return engine::predicted_class{};
  const auto classes = engine::element_count(net.output_shape());
  std::size_t c = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), c);
  if (ec == std::errc{} && end == text.data() + text.size()) {
    if (c >= classes)
      throw error(fmt::format("--target {}: the model '{}' has {} outputs (classes 0..{})", c, net.source, classes,
                              classes - 1));
    return c;
  }
  if (ends_with(text, ".npy")) {
    auto arr = engine::read_npy(text);
    if (arr.data.size() != classes)
      throw error(fmt::format("--target {}: an initial relevance vector needs {} values (the model's outputs), the "
                              "file has {}", text, classes, arr.data.size()));
    return arr.data;
  }
  throw parse_error(fmt::format("--target '{}': expected 'pred', a class index, or an initial relevance vector FILE.npy", text));
}

/// Per sample and semiring: how many features have a non-zero value, and the best one.
struct sample_summary {
  bool ok = false;
  std::size_t nonzero = 0;
  std::optional<std::size_t> best;  ///< feature index (flat) of the best numeric value
  std::string best_text;
  double best_value = 0.0;
  bool numeric = false;
};

void run_batch(const batch_options& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const engine::network net = engine::load_onnx(o.model);
  const engine::npy_array arr = engine::read_npy(o.input);
  const std::size_t per = engine::element_count(net.input_shape);
  if (per == 0 || arr.data.size() % per != 0 || arr.data.empty())
    throw error(fmt::format("--input '{}': shape ({}) holds no whole number of samples of the model's input shape ({})",
                            o.input, fmt::join(arr.shape, ", "), fmt::join(net.input_shape, ", ")));
  const std::size_t n = arr.data.size() / per;
  // select_sample checks the shapes; a single sample takes no index.
  (void)engine::select_sample(arr, net.input_shape, n == 1 ? std::nullopt : std::optional<std::size_t>(0), o.input);

  engine::composite comp;
  if (!o.composite.empty()) comp = engine::parse_composite(o.composite);
  for (const auto& r : o.rules) engine::add_rule_option(comp, r);
  engine::lrp_options lopt;
  lopt.layer_rules = engine::resolve(comp, net);
  engine::resolve_bounds(lopt.layer_rules, [](const std::string& path) { return engine::read_npy(path).data; });
  lopt.bias = o.no_bias ? engine::bias_mode::zeroed : engine::bias_mode::kept;
  lopt.target = parse_batch_target(o.target, net);
  engine::circuit_options copt;
  copt.layer_rules = lopt.layer_rules;
  copt.bias = lopt.bias;
  copt.target = lopt.target;
  copt.model = o.model;
  o.budget.apply(copt);
  for (const auto& spec : o.semirings)
    if (!is_valid_semiring(spec, [](std::string_view) { return std::optional<token_index>(0); }))
      throw parse_error(fmt::format("--semiring '{}': unknown semiring; valid: {}", spec, valid_semiring_names()));
  if (!o.keep_circuits.empty()) std::filesystem::create_directories(o.keep_circuits);
  const bool need_circuit = !o.semirings.empty() || !o.keep_circuits.empty();
  // fp32: parameters rounded once, shared read-only by the workers; circuits stay fp64.
  const bool fp32 = o.precision == "fp32";
  const engine::float32_parameters p32 = fp32 ? engine::to_float32(net) : engine::float32_parameters{};

  std::size_t threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, n);
  std::vector<double> out(n * per, std::numeric_limits<double>::quiet_NaN());
  std::vector<std::vector<sample_summary>> summaries(o.semirings.size(), std::vector<sample_summary>(n));
  std::vector<std::size_t> failed;
  std::atomic<std::size_t> next{0}, done{0};
  std::mutex m;
  const bool progress = ::isatty(STDERR_FILENO);

  const auto work = [&] {
    for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      try {
        const std::span<const double> x(arr.data.data() + i * per, per);
        std::optional<engine::forward_result> fwd;
        if (fp32) {
          const auto r = engine::lrp(net, p32, engine::forward(net, p32, x), lopt);
          std::copy(r.input_relevance().begin(), r.input_relevance().end(), out.begin() + static_cast<std::ptrdiff_t>(i * per));
        } else {
          fwd = engine::forward(net, x);
          const auto r = engine::lrp(net, *fwd, lopt);
          std::copy(r.input_relevance().begin(), r.input_relevance().end(), out.begin() + static_cast<std::ptrdiff_t>(i * per));
        }
        if (need_circuit) {
          if (!fwd) fwd = engine::forward(net, x);
          auto cp = copt;
          cp.input = fmt::format("{}[{}]", o.input, i);
          circuit c = engine::build_circuit(net, *fwd, cp);
          c.metadata()["input_shape"] = fmt::format("{}", fmt::join(net.input_shape, ","));
          if (!o.keep_circuits.empty())
            save_circuit(c, std::filesystem::path(o.keep_circuits) / fmt::format("sample_{}.pvc", i));
          for (std::size_t k = 0; k < o.semirings.size(); ++k) {
            const auto rep = evaluate_report(c, o.semirings[k], {});
            sample_summary s;
            s.ok = true;
            s.numeric = rep.numeric;
            double best_key = -std::numeric_limits<double>::infinity();
            const auto roots = c.roots();
            for (std::size_t q = 0; q < roots.size(); ++q) {
              if (roots[q].kind != root_kind::feature) continue;
              if (rep.text[q] != rep.zero_text) ++s.nonzero;
              if (rep.numeric && rep.number[q]) {
                const double key = rank_key(rep.semiring, *rep.number[q]);
                if (!s.best || key > best_key) {
                  best_key = key;
                  s.best = roots[q].index;
                  s.best_value = *rep.number[q];
                  s.best_text = rep.text[q];
                }
              }
            }
            summaries[k][i] = std::move(s);
          }
        }
      } catch (const std::exception& e) {
        std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(i * per), per, std::numeric_limits<double>::quiet_NaN());
        std::lock_guard lock(m);
        failed.push_back(i);
        fmt::print(stderr, "{}provnn: error: sample {}: {}\n", progress ? "\r" : "", i, e.what());
      }
      const auto d = done.fetch_add(1) + 1;
      if (progress) {
        std::lock_guard lock(m);
        fmt::print(stderr, "\rbatch: {}/{} samples", d, n);
      }
    }
  };
  // The parallel part alone, for measuring scaling (the total adds reading the model and the
  // batch and writing the output, which are serial).
  const auto t_loop = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  const double loop_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
  if (progress) fmt::print(stderr, "\n");
  std::sort(failed.begin(), failed.end());

  engine::shape_t shape{n};
  shape.insert(shape.end(), net.input_shape.begin(), net.input_shape.end());
  engine::write_npy(o.out, shape, out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["input"] = o.input;
    j["out"] = o.out;
    j["samples"] = n;
    j["shape"] = shape;
    j["threads"] = threads;
    j["precision"] = o.precision;
    j["seconds"] = seconds;
    j["explain_seconds"] = loop_seconds;
    j["failed"] = failed;
    nlohmann::json sj = nlohmann::json::object();
    for (std::size_t k = 0; k < o.semirings.size(); ++k) {
      nlohmann::json rows = nlohmann::json::array();
      for (std::size_t i = 0; i < n; ++i) {
        const auto& s = summaries[k][i];
        if (!s.ok) {
          rows.push_back(nullptr);
          continue;
        }
        nlohmann::json row{{"index", i}, {"nonzero", s.nonzero}};
        if (s.best) {
          row["best_feature"] = multi_index(net.input_shape, *s.best);
          row["best_flat"] = *s.best;
          row["best_value"] = s.best_value;
        }
        rows.push_back(row);
      }
      sj[o.semirings[k]] = rows;
    }
    j["semirings"] = sj;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("wrote {} (float64, shape ({})): {} samples, {} failed, {} threads, {:.3f} s ({:.3f} s explaining)\n",
               o.out, fmt::join(shape, ", "), n, failed.size(), threads, seconds, loop_seconds);
  }
  if (!failed.empty()) {
    fmt::print(stderr, "provnn: {} of {} samples failed (indices {}); their rows of {} are NaN\n", failed.size(), n,
               fmt::join(failed, ", "), o.out);
    std::fflush(stdout);
    std::fflush(stderr);
    std::exit(exit_some_failed);
  }
}

}  // namespace

void add_batch_command(CLI::App& app) {
  auto o = std::make_shared<batch_options>();
  auto* cmd = app.add_subcommand(
      "batch", "explain every sample of a batch .npy on all cores; exit code 4 when some samples failed (reported by "
               "index on stderr; their rows are NaN), 0 otherwise");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("--input,-i", o->input, "batch .npy of shape (N, input shape…)")->required();
  cmd->add_option("--out,-o", o->out, "relevance .npy (float64, shape (N, input shape…)), written atomically")->required();
  cmd->add_option("--target,-t", o->target, "'pred' (default), a class index C, or an initial relevance vector R.npy");
  cmd->add_option("--rule,-r", o->rules, "[LAYER=]RULE, repeatable, as in 'provnn explain' (default epsilon)");
  cmd->add_option("--composite,-c", o->composite, "rule preset, as in 'provnn explain'");
  cmd->add_flag("--no-bias", o->no_bias, "zero every bias in the rules (Zennit's zero_params='bias')");
  cmd->add_option("--semiring,-s", o->semirings,
                  "also build each sample's circuit and evaluate it in this semiring (repeatable); --json gives per "
                  "sample the number of non-zero features and the best one");
  add_budget_options(*cmd, o->budget);
  add_precision_option(*cmd, o->precision);
  cmd->add_option("--threads,-j", o->threads, "worker threads (default: the number of cores)");
  cmd->add_option("--keep-circuits", o->keep_circuits, "save every sample's circuit as DIR/sample_<i>.pvc");
  cmd->add_flag("--json", o->json, "print a JSON summary (samples, failed indices, per-semiring summaries)");
  cmd->callback([o] { run_batch(*o); });
}

}  // namespace provnn::cli
