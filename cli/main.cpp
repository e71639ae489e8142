#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.hpp"
#include "common/allocator.hpp"
#include "common/atomic_file.hpp"
#include "common/error.hpp"

int main(int argc, char** argv) {
  // Large arrays in huge pages (a re-exec with glibc's tunables, once), and builds in a loop
  // (batch, bench) reuse warm memory instead of faulting in fresh pages.
  provnn::use_huge_pages_for_malloc(argv);
  provnn::retain_freed_memory();
  CLI::App app{
      "provnn — explain neural-network decisions with provenance circuits (LRP as provenance).\n"
      "Run 'provnn COMMAND --help' for the options of a command."};
  app.require_subcommand(1);
  // Global options, accepted before or after the command name.
  app.fallthrough();
  app.add_option_function<double>(
      "--timeout", [](double s) { provnn::cli::arm_timeout(s); },
      "stop after SECONDS (exit code 124), removing unfinished outputs; for work that can explode");
  // An interrupted run (Ctrl-C, kill) leaves the old output file or none, and no temporary.
  provnn::remove_temporaries_on_signals();
  provnn::cli::add_explain_command(app);
  provnn::cli::add_build_command(app);
  provnn::cli::add_eval_command(app);
  provnn::cli::add_dot_command(app);
  provnn::cli::add_poly_command(app);
  provnn::cli::add_info_command(app);
  provnn::cli::add_semirings_command(app);
  provnn::cli::add_bench_command(app);
  provnn::cli::add_batch_command(app);

  int first = 1;  // the command name, after global options
  while (first + 1 < argc && std::string_view(argv[first]) == "--timeout") first += 2;
  if (first < argc && argv[first][0] != '-') {
    std::vector<std::string> names;
    bool known = false;
    for (const auto* sub : app.get_subcommands({})) {
      names.push_back(sub->get_name());
      known = known || sub->get_name() == argv[first];
    }
    if (!known) {
      fmt::print(stderr, "provnn: error: unknown command '{}'; the commands are: {}\n", argv[first],
                 fmt::join(names, ", "));
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints --help, or CLI11's message for a usage error
    return code == 0 ? 0 : 2;
  } catch (const provnn::error& e) {
    fmt::print(stderr, "provnn: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "provnn: error: out of memory\n");
    return 3;
  } catch (const std::exception& e) {
    fmt::print(stderr, "provnn: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
