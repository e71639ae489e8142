// provnn bench and provnn batch, end to end. Expected values come from independent paths:
// the circuit's size from building it through the API; batch rows from `explain --index i --out`.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>


#include "circuits/file_format.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/onnx_import.hpp"
#include "engine/npy.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"
#include "tests/cli/cli_test_util.hpp"
#include "tests/common/huge_pages_expected.hpp"

using provnn::test::data;
using provnn::test::run_provnn;
namespace eng = provnn::engine;

namespace {

std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

/// Row i of explain --index i --out for the bundled MLP and batch.
std::vector<double> explain_row(const std::filesystem::path& dir, const std::string& input, std::size_t i,
                                const std::string& extra = "") {
  const auto f = dir / ("explain_" + std::to_string(i) + ".npy");
  const auto r = run_provnn("explain " + q(data("models/digits_mlp.onnx")) + " -i " + q(input) + " --index " +
                            std::to_string(i) + " " + extra + " --out " + q(f));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return eng::read_npy(f).data;
}

}  // namespace

TEST_CASE("bench --json on a small synthetic MLP: every key, positive times, the circuit's true size") {
  const auto r = run_provnn("bench --synthetic mlp:16-8-4 --repeat 3 --json");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  for (const char* phases : {"phases_us", "phases_min_us"}) {
    for (const char* k : {"forward", "lrp_dense", "forward_fp32", "lrp_dense_fp32", "build", "save", "load"}) {
      INFO(phases << "." << k);
      REQUIRE(j[phases].contains(k));
      CHECK(j[phases][k].get<double>() > 0.0);
    }
    for (const char* s : {"real", "boolean", "counting", "max-plus", "viterbi", "topk:10"}) {
      INFO(phases << ".eval." << s);
      REQUIRE(j[phases]["eval"].contains(s));
      CHECK(j[phases]["eval"][s].get<double>() > 0.0);
    }
  }
  CHECK(j["phases_min_us"]["forward"].get<double>() <= j["phases_us"]["forward"].get<double>());

  // The same circuit built through the API.
  const auto net = eng::synthetic_network("mlp:16-8-4");
  const auto fwd = eng::forward(net, eng::synthetic_input(net));
  eng::circuit_options opt;
  opt.layer_rules = eng::resolve(eng::composite{}, net);
  opt.input = "synthetic";  // the label bench records in the metadata
  const auto c = eng::build_circuit(net, fwd, opt);
  REQUIRE(!c.edge_gates().empty());
  const auto& ci = j["circuit"];
  CHECK(ci["edges"].get<std::size_t>() == c.edge_gates().size());
  CHECK(ci["gates"].get<std::size_t>() == c.size());
  CHECK(ci["tokens"].get<std::size_t>() == c.tokens().size());
  CHECK(ci["bytes_memory"].get<std::size_t>() == c.bytes() + c.tokens().bytes());
  CHECK(ci["bytes_file"].get<std::size_t>() == provnn::serialize_circuit(c).size());
  const auto& ra = j["ratios"];
  CHECK(ra["eval_real_over_lrp_dense"].get<double>() ==
        doctest::Approx(j["phases_us"]["eval"]["real"].get<double>() / j["phases_us"]["lrp_dense"].get<double>()));
  CHECK(ra["eval_over_real"]["real"].get<double>() == doctest::Approx(1.0));
  CHECK(j["explanation_us"]["fp32"].get<double>() ==
        doctest::Approx(j["phases_us"]["forward_fp32"].get<double>() + j["phases_us"]["lrp_dense_fp32"].get<double>()));
  CHECK(ra["explanation_fp32_over_fp64"].get<double>() ==
        doctest::Approx(j["explanation_us"]["fp32"].get<double>() / j["explanation_us"]["fp64"].get<double>()));
  // fp32 against fp64 on this network (ε, U(0,1) input): float rounding, not a different answer.
  CHECK(ra["fp32_relevance_max_difference"].get<double>() > 0.0);
  CHECK(ra["fp32_relevance_max_difference"].get<double>() < 1e-4);
  CHECK(ra["bytes_memory_per_edge"].get<double>() ==
        doctest::Approx(static_cast<double>(c.bytes() + c.tokens().bytes()) / static_cast<double>(c.edge_gates().size())));
}

TEST_CASE("the CLI runs with huge pages for malloc where glibc and the kernel offer them, unless the user says otherwise") {
  // Expected from the machine, independently of the CLI's own checks.
  const bool offered = provnn::test::huge_pages_offered_here();
  MESSAGE("huge pages offered here: ", offered);
  const std::string args = "bench --synthetic mlp:16-8-4 --repeat 1 --json";
  const auto flag = [&](const std::string& env) {
    const auto r = run_provnn(args, {}, env);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return nlohmann::json::parse(r.out).at("malloc_huge_pages").get<bool>();
  };
  const std::string clean = "env -u GLIBC_TUNABLES -u PROVNN_HUGE_PAGES -u PROVNN_REEXECUTED -u MALLOC_MMAP_THRESHOLD_ "
                            "-u MALLOC_TRIM_THRESHOLD_ -u MALLOC_TOP_PAD_";
  CHECK(flag(clean) == offered);
  // The user's own tunables or MALLOC_* settings win (no re-exec), and so does PROVNN_HUGE_PAGES=0 or off.
  CHECK_FALSE(flag(clean + " GLIBC_TUNABLES=glibc.malloc.hugetlb=0"));
  CHECK_FALSE(flag(clean + " MALLOC_TRIM_THRESHOLD_=1048576"));
  CHECK_FALSE(flag(clean + " PROVNN_HUGE_PAGES=0"));
  CHECK_FALSE(flag(clean + " PROVNN_HUGE_PAGES=off"));
  // Asked for by the user: reported as on where glibc and the kernel offer it.
  CHECK(flag(clean + " GLIBC_TUNABLES=glibc.malloc.hugetlb=1 PROVNN_HUGE_PAGES=0") == offered);
}

TEST_CASE("bench refuses a circuit above --max-edges but still times forward and the dense LRP") {
  const auto r = run_provnn("bench --synthetic mlp:16-8-4 --repeat 2 --max-edges 100 --json");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["circuit"].is_null());
  CHECK(j["refused"].get<std::string>().find("--max-edges") != std::string::npos);
  CHECK(j["phases_us"]["lrp_dense"].get<double>() > 0.0);
  CHECK(!j["phases_us"].contains("build"));
  const auto bad = run_provnn("bench --synthetic lenet7");
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("lenet5") != std::string::npos);
  const auto both = run_provnn("bench " + q(data("models/digits_mlp.onnx")) + " --synthetic lenet5");
  CHECK(both.exit_code == 1);
}

TEST_CASE("bench times everything else when float cannot hold the input, and says why fp32 was not timed") {
  const auto dir = provnn::test::scratch_dir("bench_fp32_refused");
  std::vector<double> x(64, 0.5);
  x[7] = 1e39;  // a double, beyond float's range
  eng::write_npy(dir / "big.npy", {1, 64}, x);
  const auto r = run_provnn("bench " + q(data("models/digits_mlp.onnx")) + " --input " + q(dir / "big.npy") +
                            " --repeat 2 -s real --json");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["fp32_refused"].get<std::string>().find("flat index 7") != std::string::npos);
  CHECK(j["explanation_us"]["fp32"].is_null());
  CHECK(!j["phases_us"].contains("forward_fp32"));
  CHECK(j["phases_us"]["lrp_dense"].get<double>() > 0.0);
  CHECK(j["phases_us"]["eval"]["real"].get<double>() > 0.0);
}

TEST_CASE("batch equals explain --index i --out for every sample, bit for bit, with 1 and 2 threads") {
  const auto dir = provnn::test::scratch_dir("batch_equal");
  const auto input = data("inputs/mlp_batch_u8.npy");
  std::vector<std::vector<double>> expected;
  for (std::size_t i = 0; i < 4; ++i) expected.push_back(explain_row(dir, input, i, "--rule alphabeta"));
  for (const char* threads : {"1", "2"}) {
    INFO("threads " << threads);
    const auto out = dir / (std::string("batch_") + threads + ".npy");
    const auto r = run_provnn("batch " + q(data("models/digits_mlp.onnx")) + " -i " + q(input) +
                              " --rule alphabeta --threads " + threads + " --out " + q(out));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const auto got = eng::read_npy(out);
    REQUIRE(got.shape == eng::shape_t{4, 64});
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t f = 0; f < 64; ++f) REQUIRE(got.data[i * 64 + f] == expected[i][f]);
  }
}

TEST_CASE("--precision fp32: batch rows equal explain's and the engine's fp32 result, within float rounding of fp64") {
  const auto dir = provnn::test::scratch_dir("batch_fp32");
  const auto input = data("inputs/mlp_batch_u8.npy");
  const auto out = dir / "batch.npy";
  const auto r = run_provnn("batch " + q(data("models/digits_mlp.onnx")) + " -i " + q(input) +
                            " --rule gamma --precision fp32 --threads 2 --json --out " + q(out));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(nlohmann::json::parse(r.out).at("precision") == "fp32");
  const auto got = eng::read_npy(out);
  REQUIRE(got.shape == eng::shape_t{4, 64});
  const auto net = eng::load_onnx(data("models/digits_mlp.onnx"));
  const auto batch = eng::read_npy(input);
  const auto p = eng::to_float32(net);
  eng::lrp_options opt;
  eng::composite comp;
  eng::add_rule_option(comp, "gamma");
  opt.layer_rules = eng::resolve(comp, net);
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    const auto x = eng::select_sample(batch, net.input_shape, i, "batch");
    const auto r32 = eng::lrp(net, p, eng::forward(net, p, x), opt).input_relevance();
    const auto r64 = eng::lrp(net, eng::forward(net, x), opt).input_relevance();
    const auto row = explain_row(dir, input, i, "--rule gamma --precision fp32");
    double big = 0.0, diff = 0.0;
    for (std::size_t f = 0; f < 64; ++f) {
      REQUIRE(got.data[i * 64 + f] == static_cast<double>(r32[f]));
      REQUIRE(row[f] == static_cast<double>(r32[f]));
      big = std::max(big, std::fabs(r64[f]));
      diff = std::max(diff, std::fabs(r64[f] - row[f]));
    }
    CHECK(diff > 0.0);  // float arithmetic, not fp64 rounded at the end
    CHECK(diff <= 1e-4 * big);
  }
  const auto bad = run_provnn("explain " + q(data("models/digits_mlp.onnx")) + " -i " + q(input) + " --precision fp16");
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("fp16") != std::string::npos);
}

TEST_CASE("batch --semiring real --json: per-sample summaries agree with the numeric rows, and --keep-circuits") {
  const auto dir = provnn::test::scratch_dir("batch_semiring");
  const auto input = data("inputs/mlp_batch_u8.npy");
  const auto out = dir / "r.npy";
  const auto r = run_provnn("batch " + q(data("models/digits_mlp.onnx")) + " -i " + q(input) +
                            " -s real -s boolean --threads 2 --keep-circuits " + q(dir / "pvc") + " --out " + q(out) +
                            " --json");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["samples"] == 4);
  CHECK(j["failed"].empty());
  // The parallel loop's time is part of the total (which adds loading and writing).
  CHECK(j["explain_seconds"].get<double>() > 0.0);
  CHECK(j["explain_seconds"].get<double>() <= j["seconds"].get<double>());
  const auto rel = eng::read_npy(out).data;
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("sample " << i);
    std::size_t nonzero = 0, best = 0;
    for (std::size_t f = 0; f < 64; ++f) {
      nonzero += rel[i * 64 + f] != 0.0;
      if (std::abs(rel[i * 64 + f]) > std::abs(rel[i * 64 + best])) best = f;
    }
    const auto& row = j["semirings"]["real"][i];
    CHECK(row["index"] == i);
    CHECK(row["nonzero"].get<std::size_t>() == nonzero);
    CHECK(row["best_flat"].get<std::size_t>() == best);
    CHECK(row["best_value"].get<double>() == doctest::Approx(rel[i * 64 + best]).epsilon(1e-9));
    // Boolean: a feature is true iff some path with non-zero factors reaches it — the same support.
    CHECK(j["semirings"]["boolean"][i]["nonzero"].get<std::size_t>() == nonzero);
    CHECK(std::filesystem::exists(dir / "pvc" / ("sample_" + std::to_string(i) + ".pvc")));
  }
}

TEST_CASE("batch: a bad sample is reported by index, the others are written, exit code 4") {
  const auto dir = provnn::test::scratch_dir("batch_bad");
  auto arr = eng::read_npy(data("inputs/mlp_batch_u8.npy"));
  arr.data[1 * 64 + 5] = std::numeric_limits<double>::quiet_NaN();
  const auto input = dir / "with_nan.npy";
  eng::write_npy(input, arr.shape, arr.data);
  const auto out = dir / "r.npy";
  for (const char* threads : {"1", "2"}) {
    INFO("threads " << threads);
    const auto r = run_provnn("batch " + q(data("models/digits_mlp.onnx")) + " -i " + q(input) + " --threads " +
                              threads + " --out " + q(out));
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("sample 1:") != std::string::npos);
    CHECK(r.err.find("sample 0:") == std::string::npos);
    const auto got = eng::read_npy(out).data;
    for (std::size_t i : {0u, 2u, 3u}) {
      const auto expected = explain_row(dir, data("inputs/mlp_batch_u8.npy"), i);
      for (std::size_t f = 0; f < 64; ++f) REQUIRE(got[i * 64 + f] == expected[f]);
    }
    for (std::size_t f = 0; f < 64; ++f) REQUIRE(std::isnan(got[64 + f]));
  }
}
