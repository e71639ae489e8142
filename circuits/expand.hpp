// Reading a root as a polynomial: the full N[X] expansion (exact, exponential in depth, so
// bounded by a monomial limit) and the k leading monomials through the top-k semiring
// (polynomial in size, the scalable way to name the most relevant paths).
#pragma once

#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/edge_annotation.hpp"
#include "semirings/nx.hpp"
#include "semirings/topk.hpp"

namespace provnn {

/// The N[X] polynomial of gate g, every token a variable (the universal valuation).
/// Evaluates only g's cone. Throws limit_error — naming the limit, `what` (the root's name;
/// "gate <id>" when empty), the gate that overflowed and how to raise the limit — as soon
/// as any intermediate polynomial has more than max_monomials terms, so the work done before
/// failing is bounded by the limit.
polynomial expand(const circuit& c, gate_id g, std::size_t max_monomials, std::string what = {});

/// The polynomials of several gates at once (same order): their union cone is evaluated
/// once, so sub-circuits they share (every R_k of an LRP circuit) are expanded once. The
/// limit applies to every intermediate polynomial as in expand(); `what` names the set in
/// the message (e.g. "the roots of features 0..63").
std::vector<polynomial> expand(const circuit& c, std::span<const gate_id> gates, std::size_t max_monomials,
                               std::string what = {});

/// expand() of the root named `root_name`. Throws provnn::error when there is no such root.
polynomial expand_root(const circuit& c, std::string_view root_name, std::size_t max_monomials);

/// The k monomials of gate g with the largest |real product| under the natural valuation
/// (or under `theta`, whose real edge values then replace the edges' token products),
/// best first. Evaluates only g's cone; O(cone · k²).
topk_list top_monomials(const circuit& c, gate_id g, std::size_t k, const edge_annotation* theta = nullptr);

}  // namespace provnn
