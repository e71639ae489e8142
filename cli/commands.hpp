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

/// Exit codes: 0 success, 1 an error (bad input, a limit), 2 a usage error, 3 out of memory,
/// 124 the --timeout watchdog fired, 128+N killed by signal N (outputs: old file or none).
inline constexpr int exit_timeout = 124;

/// Starts the --timeout watchdog (cli/timeout.cpp): after `seconds`, remove the temporaries
/// of writes in progress, print which limit was hit and exit with exit_timeout. Throws
/// parse_error for a non-positive or non-finite value.
void arm_timeout(double seconds);

}  // namespace provnn::cli
