// Running the provnn binary from tests: exit code, stdout and stderr of one command line.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace provnn::test {

struct run_result {
  int exit_code = -1;
  std::string out, err;
};

inline std::string provnn_binary() { return std::string(PROVNN_BINARY_DIR) + "/cli/provnn"; }
inline std::string data(const std::string& rel) { return std::string(PROVNN_TEST_DATA_DIR) + "/" + rel; }

inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "provnn-cli-tests" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs `provnn ARGS` through the shell (ARGS is shell-quoted by the caller), in `cwd` if given,
/// under `env` if given (a prefix such as `env -u GLIBC_TUNABLES`).
inline run_result run_provnn(const std::string& args, const std::string& cwd = {}, const std::string& env = {}) {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path() / "provnn-cli-tests";
  std::filesystem::create_directories(dir);
  const auto err_file = dir / ("stderr-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  const std::string cmd = (cwd.empty() ? std::string() : "cd '" + cwd + "' && ") + (env.empty() ? "" : env + " ") + provnn_binary() + " " + args +
                          " 2>" + err_file.string();
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = slurp(err_file);
  std::filesystem::remove(err_file);
  return r;
}

}  // namespace provnn::test
