// What the circuit commands (explain --semiring, eval, dot, poly, info) share: reading
// valuation files, and evaluating a circuit's roots in a semiring named at
// run time into printable values and a one-line reading.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "engine/network.hpp"

namespace provnn::cli {

/// A valuation file: a JSON object mapping token names or glob patterns to numbers,
/// `{"W1[3,*]": 0, "a2[7]": 0}`, applied in file order (a later entry wins).
/// Throws parse_error naming the file (and the key) when it is not such an object.
std::vector<token_override> read_valuation_json(const std::string& path);
/// The same from JSON text in memory; `source` names it in errors ("valuation file 'V.json'").
std::vector<token_override> parse_valuation_json(std::string_view text, std::string_view source);

/// The input shape recorded in the circuit's metadata ("input_shape": "1,8,8"); the number
/// of feature roots as a flat shape when absent.
engine::shape_t circuit_input_shape(const circuit& c);

/// Evaluation of every root of a circuit in one semiring.
struct semiring_report {
  std::string semiring;  ///< the semiring's name (`topk:5`, …)
  bool numeric = false;  ///< values convert to numbers (real, Boolean as 0/1, counting, …)
  std::vector<std::string> text;              ///< formatted value per root (roots() order)
  std::vector<std::optional<double>> number;  ///< numeric value per root, when numeric
  std::string reading;                        ///< one line: what the values say
  std::string zero_text;                      ///< the formatting of the semiring's 0
};

struct report_options {
  std::vector<token_override> overrides;
  const edge_annotation* theta = nullptr;
  /// Symbolic semirings (N[X], Why, …) stop with a limit_error when one gate's value holds
  /// more than this many monomials/witnesses.
  std::size_t max_terms = 1'000'000;
};

/// How strongly a numeric value of semiring `name` speaks for relevance, larger first: |v| for
/// the real-valued semirings, −v for tropical costs, v for the others (−∞ ranks last).
double rank_key(const std::string& name, double v);

/// Evaluates every root of c in the semiring named by `spec` (registry names; `dual:TOKEN`
/// resolves TOKEN in c's token table). Throws parse_error for an unknown name, limit_error
/// past max_terms, and what the evaluation throws.
semiring_report evaluate_report(const circuit& c, std::string_view spec, const report_options& options);

}  // namespace provnn::cli
