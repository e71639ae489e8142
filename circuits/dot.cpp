#include "circuits/dot.hpp"

#include <fmt/format.h>

#include <deque>
#include <sstream>

#include "circuits/fused.hpp"
#include "common/error.hpp"

namespace provnn {

std::string dot_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': break;
      default: out += ch;
    }
  }
  return out;
}

std::vector<std::string> real_labels(std::span<const double> values) {
  std::vector<std::string> out;
  out.reserve(values.size());
  for (double v : values) out.push_back(fmt::format("{:.6g}", v));
  return out;
}

void write_dot(std::ostream& out, const circuit& c, const dot_options& o) {
  require_edge_gates(c, "DOT pictures");
  if (!o.token_values.empty() && o.token_values.size() != c.tokens().size())
    throw error(fmt::format("DOT export: {} token values given for a circuit of {} tokens", o.token_values.size(),
                            c.tokens().size()));
  if (!o.gate_values.empty() && o.gate_values.size() != c.size())
    throw error(fmt::format("DOT export: {} gate values given for a circuit of {} gates", o.gate_values.size(), c.size()));

  // Seeds: the requested gates, else the roots, else every gate no other gate uses.
  std::vector<gate_id> seeds = o.roots;
  if (seeds.empty())
    for (const auto& r : c.roots()) seeds.push_back(r.gate);
  if (seeds.empty()) {
    std::vector<std::uint8_t> used(c.size(), 0);
    for (std::uint32_t g = 0; g < c.size(); ++g)
      for (auto ch : c.children(gate_id{g})) used[to_index(ch)] = 1;
    for (std::uint32_t g = static_cast<std::uint32_t>(c.size()); g-- > 0;)
      if (!used[g]) seeds.push_back(gate_id{g});
  }
  for (auto g : seeds)
    if (to_index(g) >= c.size())
      throw error(fmt::format("DOT export: root gate {} does not exist (the circuit has {} gates)", to_index(g), c.size()));

  // Breadth-first over the whole cone: the first max_gates reached are drawn.
  std::vector<std::uint8_t> in_cone(c.size(), 0), drawn(c.size(), 0);
  std::deque<gate_id> queue;
  for (auto g : seeds)
    if (!in_cone[to_index(g)]) {
      in_cone[to_index(g)] = 1;
      queue.push_back(g);
    }
  std::size_t cone = 0, budget = o.max_gates;
  while (!queue.empty()) {
    const auto g = queue.front();
    queue.pop_front();
    ++cone;
    if (budget > 0) {
      drawn[to_index(g)] = 1;
      --budget;
    }
    for (auto ch : c.children(g))
      if (!in_cone[to_index(ch)]) {
        in_cone[to_index(ch)] = 1;
        queue.push_back(ch);
      }
  }
  std::size_t drawn_count = 0;
  for (auto d : drawn) drawn_count += d;
  const std::size_t hidden = cone - drawn_count;

  const auto& tt = c.tokens();
  out << "digraph circuit {\n";
  out << "  node [fontname=\"Helvetica\"];\n";
  if (o.show_metadata && !c.metadata().empty()) {
    std::string label;
    for (const auto& [k, v] : c.metadata()) label += k + ": " + v + "\n";
    out << "  labelloc=\"t\";\n  label=\"" << dot_escape(label) << "\";\n";
  }
  std::string name;
  for (std::uint32_t g = 0; g < c.size(); ++g) {
    if (!drawn[g]) continue;
    const gate_id id{g};
    std::string label, shape;
    switch (c.kind(id)) {
      case gate_kind::zero: label = "0", shape = "plaintext"; break;
      case gate_kind::one: label = "1", shape = "plaintext"; break;
      case gate_kind::token: {
        const auto t = c.token_of(id);
        name.clear();
        tt.append_name(t, name);
        label = o.token_values.empty() ? name : name + " = " + o.token_values[t];
        shape = "box";
        break;
      }
      case gate_kind::plus: label = "⊕", shape = "circle"; break;
      case gate_kind::fused:
      case gate_kind::structured: label = "⊗⊕", shape = "circle"; break;  // refused above; kept for -Wswitch
      case gate_kind::times: {
        shape = "circle";
        label = "⊗";
        if (auto e = c.edge_index(id)) {
          const auto& ctx = c.edge_contexts()[*e];
          shape = "doublecircle";
          label += fmt::format("\nE{} {}→{}#{}", ctx.layer, ctx.lower, ctx.upper, ctx.term);
        }
        break;
      }
    }
    if (!o.gate_values.empty() && (c.kind(id) == gate_kind::plus || c.kind(id) == gate_kind::times))
      label += "\n" + o.gate_values[g];
    out << "  g" << g << " [label=\"" << dot_escape(label) << "\", shape=" << shape << "];\n";
  }
  if (hidden > 0)
    out << "  more [label=\"" << dot_escape(fmt::format("… {} more gate{}", hidden, hidden == 1 ? "" : "s"))
        << "\", shape=note, style=dashed];\n";
  // Root labels, for the seeds that are named roots.
  std::size_t root_node = 0;
  for (const auto& r : c.roots()) {
    bool wanted = false;
    for (auto g : seeds) wanted = wanted || g == r.gate;
    if (!wanted) continue;
    const auto target = drawn[to_index(r.gate)] ? fmt::format("g{}", to_index(r.gate)) : std::string("more");
    out << "  root" << root_node << " [label=\"" << dot_escape(r.name) << "\", shape=house];\n";
    out << "  root" << root_node << " -> " << target << ";\n";
    ++root_node;
  }
  for (std::uint32_t g = 0; g < c.size(); ++g) {
    if (!drawn[g]) continue;
    bool cut_here = false;
    for (auto ch : c.children(gate_id{g})) {
      if (drawn[to_index(ch)]) {
        out << "  g" << g << " -> g" << to_index(ch) << ";\n";
      } else if (!cut_here) {
        out << "  g" << g << " -> more [style=dashed];\n";  // one dashed edge per cut gate
        cut_here = true;
      }
    }
  }
  out << "}\n";
}

std::string to_dot(const circuit& c, const dot_options& options) {
  std::ostringstream s;
  write_dot(s, c, options);
  return s.str();
}

}  // namespace provnn
