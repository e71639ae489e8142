// Fused circuits (DESIGN §5, issue 5): the edges of a linear layer kept inside fused gates
// F = φ ⊗ ⊕_i (ψ_i ⊗ S_i) — 4 bytes per edge (its scale gate; 4 more when the parameter tokens
// are not a run, as a convolution's shared weights) instead of
// an edge gate, a product gate and their child references. expand_fused() turns such a
// circuit into the plain one it stands for, for everything that needs edge gates: edge
// annotations, DOT, the Boost.Graph view, tests.
#pragma once

#include <string_view>
#include <vector>

#include "circuits/circuit.hpp"

namespace provnn {

/// The plain circuit c stands for. Tokens (indices, names, values), roots (names, kinds,
/// order) and metadata are kept (metadata "layout" becomes "plain, expanded from fused").
/// A structured gate expands as the fused gate with its conv_stage::edges_of() edges.
/// Every fused gate F = φ ⊗ ⊕_i ψ_i ⊗ S_i, S_i = R_i ⊗ n_i a scale gate of upper unit k_i,
/// becomes ⊕_i E_i ⊗ R_i with the edge gate E_i = φ ⊗ ψ_i ⊗ n_i (factors in that order,
/// context: F's layer, lower unit and term, upper unit k_i, parameter ψ_i). Edge gates with
/// the same factors are shared (several targets share their edges, as build_circuit does);
/// scale gates that only fused gates used are dropped. Equal values in every semiring, and
/// equal N[X] polynomials, by distributivity. A circuit without fused gates comes back
/// unchanged in meaning (a copy).
/// When `gate_map` is given it receives, for every gate of c, its gate in the result
/// (zero_gate for a dropped scale gate).
/// Throws provnn::error naming the gate when a fused gate's scaled child is not a scale gate
/// of a normaliser token and a relevance gate. O(gates + edges).
circuit expand_fused(const circuit& c, std::vector<gate_id>* gate_map = nullptr);

/// c itself when it has no fused gates, else expand_fused(c): for readers of edge gates.
circuit with_edge_gates(circuit c);

/// Whether c keeps edges in fused or structured gates (and so needs expand_fused() for edge
/// annotations and DOT).
inline bool has_fused_gates(const circuit& c) noexcept {
  return !c.fused_gates().empty() || !c.structured_gates().empty();
}

/// Throws unsupported_error when c has fused gates: `what` (e.g. "edge annotations", "DOT
/// export") reads edge gates, and the message says to expand_fused() first. The one check
/// behind every reader of edge gates.
void require_edge_gates(const circuit& c, std::string_view what);

}  // namespace provnn
