// The real semiring's kernel for a structured convolution stage (circuits/evaluate.hpp): the
// transposed convolution acc[j] += Σ_k w_jk · ck[k] over every edge the geometry implies, as
// one matrix product per group (Eigen) and a scatter of its columns back to the inputs.
// Padding has no edges and adds nothing.
#pragma once

#include "circuits/circuit.hpp"

namespace provnn::detail {

/// acc (g.inputs() values) += the transposed convolution of ck (g.outputs() values) with the
/// weights w (g.weights() values, layout (oc, icl, ky, kx)). O(weights · output positions).
void conv_transposed_real(const conv_geometry& g, const double* w, const double* ck, double* acc);

}  // namespace provnn::detail
