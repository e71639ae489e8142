// What every command that explains a model takes: the model, one input sample, the target,
// the rules per layer and the bias mode (`explain`, `build`, and later `batch`/`bench`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/network.hpp"
#include "engine/rules.hpp"

namespace provnn::cli {

/// The circuit budget as typed (--max-gates, --max-memory), for every command that builds
/// circuits.
struct circuit_budget {
  std::size_t max_gates = engine::default_max_gates;
  std::size_t max_memory = engine::default_max_memory;
  std::string layout = "plain";  ///< plain | fused (checked by the option)
  void apply(engine::circuit_options& co) const {
    co.max_gates = max_gates;
    co.max_memory = max_memory;
    co.layout = layout == "fused"        ? engine::circuit_layout::fused
                : layout == "structured" ? engine::circuit_layout::structured
                                         : engine::circuit_layout::plain;
  }
};

/// Registers --max-gates N, --max-memory SIZE (bytes, or with a unit: 512M, 16G, 2GiB) and
/// --layout plain|fused.
void add_budget_options(CLI::App& cmd, circuit_budget& b);

/// Registers --precision fp64|fp32 (default fp64): the arithmetic of the numeric explanation
/// (engine/forward.hpp). Circuits are always built in fp64.
void add_precision_option(CLI::App& cmd, std::string& precision);

/// The options as typed.
struct selection_options {
  std::string model;
  std::string input;
  std::optional<std::size_t> index;
  std::string target = "pred";
  std::vector<std::string> rules;
  std::string composite;
  bool no_bias = false;
  double png_scale = 1.0;
  double png_offset = 0.0;
  circuit_budget budget;  ///< when a circuit is built
};

/// Registers --input, --index, --target, --rule, --composite, --no-bias, --png-scale,
/// --png-offset and the MODEL positional on `cmd`.
void add_selection_options(CLI::App& cmd, selection_options& o);

/// A loaded model and sample, with the rules resolved and the forward pass done.
struct selection {
  engine::network net;
  std::vector<double> sample;      ///< flat, shape net.input_shape
  engine::forward_result fwd;
  engine::composite comp;          ///< as given (for reports)
  engine::lrp_options options;     ///< resolved rules, bias mode, target
};

/// Loads and checks everything; throws provnn::error with a message naming the option
/// and file at fault.
selection load_selection(const selection_options& o);

/// A readable multi-index of flat index i in shape s: "[0,3,4]".
std::string multi_index(const engine::shape_t& s, std::size_t i);

}  // namespace provnn::cli
