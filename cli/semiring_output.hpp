// Printing semiring evaluations of a circuit (eval, and explain --semiring).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuits/circuit.hpp"
#include "cli/circuit_support.hpp"

namespace provnn::cli {

/// Evaluates c in every named semiring, with an optional valuation file and edge annotation.
std::vector<semiring_report> evaluate_all(const circuit& c, const std::vector<std::string>& semirings,
                                          const std::string& valuation_file, const std::string& annotation,
                                          std::size_t max_terms);

/// [{semiring, reading, roots: [{root, kind, value[, exact]}]}]
nlohmann::json reports_json(const circuit& c, const std::vector<semiring_report>& reports);

/// The reading and the `show` features with the largest values (numeric) or the first ones.
void print_report(const circuit& c, const semiring_report& r, std::size_t show);

/// Feature values of a numeric report as float64 .npy with the input's shape ((T, …) for T
/// targets). Throws error for a symbolic semiring.
void write_numeric(const circuit& c, const semiring_report& r, const std::string& path);

}  // namespace provnn::cli
