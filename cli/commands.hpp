// The provnn command line: one binary, one file per command. Each add_*_command registers a
// CLI11 subcommand whose callback does the work and throws provnn::error on bad input;
// main() turns every error into "provnn: error: …" on stderr and a non-zero exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace provnn::cli {

void add_explain_command(CLI::App& app);
void add_semirings_command(CLI::App& app);
void add_build_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_dot_command(CLI::App& app);
void add_poly_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_batch_command(CLI::App& app);

}  // namespace provnn::cli
