// provnn dot C.pvc [--feature I] [--top-paths K] [--max-gates N] [-o F.dot]
//
// Two pictures: the cone of one feature's relevance (gates and tokens, with real values), or
// — the default — the K most relevant paths of the whole circuit drawn as units of the
// network: input features on the left, one column per linear stage, the class on the right,
// each edge labelled with its parameter token and its LRP coefficient d_jk.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "circuits/dot.hpp"
#include "circuits/evaluate.hpp"
#include "circuits/file_format.hpp"
#include "circuits/fused.hpp"
#include "cli/commands.hpp"
#include "common/atomic_file.hpp"
#include "semirings/real.hpp"
#include "semirings/topk.hpp"

namespace provnn::cli {

const root& feature_root(const circuit& c, std::size_t feature, std::optional<std::uint32_t> target);

namespace {

struct path_node {
  std::uint32_t stage;  // 0: input feature; s: unit of linear stage s; max: target
  std::string id, label;
  friend bool operator<(const path_node& a, const path_node& b) { return std::tie(a.stage, a.id) < std::tie(b.stage, b.id); }
};

std::string coords(std::span<const std::uint32_t> idx) { return fmt::format("[{}]", fmt::join(idx, ",")); }

/// The K best monomials over every feature root (one top-k evaluation of the whole circuit).
std::vector<scored_monomial> best_paths(const circuit& c, std::size_t k) {
  const topk_semiring s(k);
  const auto values = evaluate(c, s);
  topk_list merged;
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature) merged = s.plus(merged, values[to_index(r.gate)]);
  return merged.entries;
}

std::string top_paths_dot(const circuit& c, std::size_t k) {
  const auto paths = best_paths(c, k);
  const auto& tt = c.tokens();
  std::vector<std::uint32_t> coord_buf;  // coordinates of block tokens (token_table::index)
  double best = 0.0;
  for (const auto& p : paths) best = std::max(best, std::abs(p.score));
  if (best == 0.0) best = 1.0;

  std::set<path_node> nodes;
  struct edge_info {
    std::string label;
    double weight = 0.0;  // largest |path score| through the edge
    double sign = 1.0;
  };
  std::map<std::pair<std::string, std::string>, edge_info> edges;
  const std::uint32_t target_stage = 0xFFFFFFFFu;

  for (const auto& p : paths) {
    // Sort the path's tokens by stage: the input factor, then per stage its parameter and unit.
    std::string from;
    std::map<std::uint32_t, std::vector<token_index>> by_stage;  // stage → tokens
    std::string input_token, target_id;
    for (const auto& f : p.mono) {
      const auto t = f.token;
      switch (tt.kind(t)) {
        case token_kind::input:
          if (tt.variant(t) == token_variant::low || tt.variant(t) == token_variant::high) {
            by_stage[1].push_back(t);
          } else {
            input_token = "x" + coords(tt.index(t, coord_buf));
            by_stage[1].push_back(t);
          }
          break;
        case token_kind::target:
          target_id = tt.name(t);
          break;
        case token_kind::activation:
          by_stage[tt.layer(t) + 1].push_back(t);
          break;
        default:
          by_stage[tt.layer(t)].push_back(t);
          break;
      }
    }
    if (input_token.empty()) {  // z^B bound terms (l, h) and flat's x^0 carry the feature too
      for (const auto& f : p.mono)
        if (tt.kind(f.token) == token_kind::input) input_token = "x" + coords(tt.index(f.token, coord_buf));
    }
    nodes.insert({0, input_token, input_token});
    from = input_token;
    for (const auto& [stage, toks] : by_stage) {
      std::string unit, label;
      double d = 1.0;
      std::vector<std::string> names;
      for (auto t : toks) {
        d *= tt.value(t);
        if (tt.kind(t) == token_kind::normaliser) {
          unit = fmt::format("z{}{}", stage, coords(tt.index(t, coord_buf)));
        } else if (tt.kind(t) != token_kind::activation || tt.variant(t) != token_variant::plain) {
          names.push_back(tt.name(t));
        }
      }
      if (unit.empty()) continue;
      nodes.insert({stage, unit, unit});
      auto& e = edges[{from, unit}];
      e.label = fmt::format("{}\\nd = {:.3g}", fmt::join(names, "·"), d);
      e.weight = std::max(e.weight, std::abs(p.score));
      e.sign = d < 0 ? -1.0 : 1.0;
      from = unit;
    }
    if (!target_id.empty()) {
      nodes.insert({target_stage, target_id, "class " + target_id});
      auto& e = edges[{from, target_id}];
      e.weight = std::max(e.weight, std::abs(p.score));
    }
  }

  std::ostringstream out;
  out << "digraph provnn_top_paths {\n  rankdir=LR;\n  node [shape=ellipse, fontname=\"Helvetica\"];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  const auto meta = c.metadata();
  out << "  label=\"" << dot_escape(fmt::format("top {} relevance paths — {}", paths.size(),
                                                 meta.count("model") ? meta.at("model") : std::string("circuit")))
      << "\";\n  labelloc=t;\n";
  std::map<std::uint32_t, std::vector<const path_node*>> columns;
  for (const auto& n : nodes) columns[n.stage].push_back(&n);
  for (const auto& [stage, col] : columns) {
    out << "  { rank=same;";
    for (const auto* n : col) {
      out << " \"" << dot_escape(n->id) << "\" [label=\"" << dot_escape(n->label) << "\""
          << (stage == 0 ? ", shape=box" : stage == target_stage ? ", shape=doubleoctagon" : "") << "];";
    }
    out << " }\n";
  }
  for (const auto& [key, e] : edges) {
    const double w = 0.5 + 4.5 * e.weight / best;
    out << "  \"" << dot_escape(key.first) << "\" -> \"" << dot_escape(key.second) << "\" [label=\""
        << dot_escape(e.label) << "\", penwidth=" << fmt::format("{:.2f}", w)
        << ", color=\"" << (e.sign < 0 ? "#2b6cb0" : "#c53030") << "\"];\n";
  }
  out << "}\n";
  // Labels already contain the DOT escape "\n" for line breaks; dot_escape would double it.
  auto text = out.str();
  for (std::size_t pos = 0; (pos = text.find("\\\\n", pos)) != std::string::npos;) text.replace(pos, 3, "\\n");
  return text;
}

}  // namespace

void add_dot_command(CLI::App& app) {
  struct options {
    std::string file, out;
    std::optional<std::size_t> feature;
    std::optional<std::uint32_t> target;
    std::size_t top_paths = 10;
    std::size_t max_gates = 200;
  };
  auto o = std::make_shared<options>();
  auto* cmd = app.add_subcommand("dot", "Graphviz DOT: the K most relevant paths (default 10), or one feature's cone");
  cmd->add_option("circuit", o->file, "circuit file (.pvc)")->required();
  cmd->add_option("--feature,-f", o->feature, "draw the circuit cone of this input feature (flat index)");
  cmd->add_option("--target", o->target, "class, when the circuit explains several");
  cmd->add_option("--top-paths,-k", o->top_paths, "draw the K most relevant paths as units of the network");
  cmd->add_option("--max-gates", o->max_gates, "cone pictures: at most N gates (the rest become one node)");
  cmd->add_option("--out,-o", o->out, "write to this file instead of standard output");
  cmd->callback([o] {
    // DOT draws edge gates: a fused circuit is drawn as the plain circuit it stands for.
    const circuit c = with_edge_gates(load_circuit(o->file));
    std::string text;
    if (o->feature) {
      dot_options d;
      d.roots = {feature_root(c, *o->feature, o->target).gate};
      d.max_gates = o->max_gates;
      d.token_values = real_labels(c.tokens().values());
      const auto values = evaluate(c, real_semiring{});
      d.gate_values = real_labels(values);
      text = to_dot(c, d);
    } else {
      text = top_paths_dot(c, o->top_paths);
    }
    if (o->out.empty()) {
      fmt::print("{}", text);
    } else {
      write_file_atomically(o->out, text);
      fmt::print("wrote {}\n", o->out);
    }
  });
}

}  // namespace provnn::cli
