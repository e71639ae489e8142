// Helpers shared by the commands that build circuits.
#pragma once

#include <vector>

#include "circuits/circuit.hpp"
#include "cli/selection.hpp"
#include "engine/circuit_builder.hpp"

namespace provnn::cli {

/// The circuit of a loaded selection, with the input shape recorded in its metadata.
circuit build_from_selection(const selection& s, const selection_options& o, const std::vector<std::size_t>& targets,
                             engine::circuit_build_info* info = nullptr);

}  // namespace provnn::cli
