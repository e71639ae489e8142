// Graphviz DOT export of a circuit, or of the cone of chosen roots within a gate budget.
//
// Output is deterministic (a function of the circuit and the options only): gates are chosen
// breadth-first from the roots in the order given, children in stored order, and written in
// id order. Shapes: ⊕ circle, ⊗ circle (edge gates doublecircle, labelled with their layer
// and units), tokens box (name, and value when values are given), constants plaintext,
// roots house-shaped nodes above their gates. Gates of the cone beyond the budget collapse
// into one "… N more gates" node that every cut edge points to. Labels are escaped, so any
// token, root or metadata text is safe.
#pragma once

#include <cstddef>
#include <limits>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/evaluate.hpp"

namespace provnn {

struct dot_options {
  /// Gates whose cone is drawn, each labelled with its root name if it is a root. Empty:
  /// every root of the circuit; a circuit without roots: every gate no other gate uses.
  std::vector<gate_id> roots;
  /// At most this many gates are drawn; the rest of the cone becomes one "… N more gates" node.
  std::size_t max_gates = 200;
  /// When non-empty (one string per token), token nodes show `name = value`.
  std::vector<std::string> token_values;
  /// When non-empty (one string per gate), ⊕/⊗ nodes show their value under the symbol.
  std::vector<std::string> gate_values;
  /// Show circuit metadata as the graph's label.
  bool show_metadata = true;
};

/// The DOT text. O(cone + drawn gates · log). Throws provnn::error when a root id is not a
/// gate of c or a values vector has the wrong size (naming both sizes).
std::string to_dot(const circuit& c, const dot_options& options = {});
void write_dot(std::ostream& out, const circuit& c, const dot_options& options = {});

/// Escapes a string for a double-quoted DOT id: `"` and `\` are escaped, newlines become \n.
std::string dot_escape(std::string_view s);

/// Short real numbers for labels (6 significant digits).
std::vector<std::string> real_labels(std::span<const double> values);

/// Labels for values of any semiring (s.format with the circuit's token names).
template <semiring S>
std::vector<std::string> value_labels(const circuit& c, const S& s, std::span<const stored_value_t<S>> values) {
  std::vector<std::string> out;
  out.reserve(values.size());
  const auto names = c.tokens().namer();
  for (const auto& v : values) out.push_back(s.format(static_cast<typename S::value_type>(v), names));
  return out;
}

}  // namespace provnn
