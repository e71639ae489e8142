// Resource limits of the command line (issue 7): the circuit budget (--max-gates,
// --max-memory) and the --timeout watchdog. Each, when hit, must stop cleanly: a non-zero
// exit code, a message that names the limit and the option that raises it, and no output file.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "cli_test_util.hpp"

namespace fs = std::filesystem;
using provnn::test::data;
using provnn::test::run_provnn;
using provnn::test::scratch_dir;

namespace {
std::string q(const fs::path& p) { return "'" + p.string() + "'"; }
const std::string mlp = "'" + data("models/digits_mlp.onnx") + "' -i '" + data("inputs/mlp_input_0.npy") + "'";
const std::string cnn = "'" + data("models/digits_cnn.onnx") + "' -i '" + data("inputs/cnn_input_0.npy") + "'";
}  // namespace

TEST_CASE("limits: the gate budget stops a build with a message naming --max-gates") {
  const auto dir = scratch_dir("limits-gates");
  const auto r = run_provnn("build " + mlp + " -o " + q(dir / "C.pvc") + " --max-gates 500");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("max_gates = 500") != std::string::npos);
  CHECK(r.err.find("--max-gates") != std::string::npos);
  CHECK(r.err.find("digits_mlp.onnx") != std::string::npos);
  CHECK(!fs::exists(dir / "C.pvc"));
  CHECK(fs::is_empty(dir));
  // The same build within a budget that fits succeeds (the budget is not an off-by-default
  // switch that refuses everything).
  const auto ok = run_provnn("build " + mlp + " -o " + q(dir / "C.pvc") + " --max-gates 10000000 --max-memory 1G");
  CHECK(ok.exit_code == 0);
  CHECK(fs::exists(dir / "C.pvc"));
}

TEST_CASE("limits: the memory budget stops a build with a message naming --max-memory") {
  const auto dir = scratch_dir("limits-memory");
  const auto r = run_provnn("build " + cnn + " -o " + q(dir / "C.pvc") + " --max-memory 256K");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("max_memory = 256.0 KiB") != std::string::npos);
  CHECK(r.err.find("--max-memory") != std::string::npos);
  CHECK(fs::is_empty(dir));
  // explain builds a circuit only for --semiring; the budget applies there too.
  const auto e = run_provnn("explain " + cnn + " -s real --max-memory 256K");
  CHECK(e.exit_code == 1);
  CHECK(e.err.find("--max-memory") != std::string::npos);
  // A size that is not one is a usage error.
  CHECK(run_provnn("build " + cnn + " -o " + q(dir / "C.pvc") + " --max-memory lots").exit_code == 2);
}

TEST_CASE("limits: --timeout stops long work with exit code 124 and names the option") {
  // A synthetic network large enough that 20 repeats take seconds, stopped after 0.2 s.
  const auto r = run_provnn("--timeout 0.2 bench --synthetic mlp:784-1000-1000-1000-10 --repeat 20");
  CHECK(r.exit_code == 124);
  CHECK(r.err.find("time limit of 0.2 s") != std::string::npos);
  CHECK(r.err.find("--timeout") != std::string::npos);
  // After the command name too (a global option), and a generous limit changes nothing.
  const auto dir = scratch_dir("limits-timeout");
  const auto ok = run_provnn("build " + mlp + " -o " + q(dir / "C.pvc") + " --timeout 600");
  CHECK(ok.exit_code == 0);
  CHECK(fs::exists(dir / "C.pvc"));
  // Nonsense values are refused before any work.
  for (const char* bad : {"0", "-3", "nan"}) {
    CAPTURE(bad);
    const auto b = run_provnn(std::string("--timeout ") + bad + " semirings");
    CHECK(b.exit_code != 0);
    CHECK(b.exit_code != 124);
    CHECK(b.err.find("--timeout") != std::string::npos);
  }
}
