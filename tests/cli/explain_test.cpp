// End-to-end tests of `provnn explain`: every fixture case of tests/data/expected/manifest.json
// (independent NumPy reference, tools/reference_lrp.py) run through the command line, and
// every kind of bad input giving a clear message and a non-zero exit code.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/npy.hpp"
#include "engine/png_io.hpp"
#include "tests/cli/cli_test_util.hpp"

using provnn::test::data;
using provnn::test::run_provnn;

namespace {

nlohmann::json manifest() {
  return nlohmann::json::parse(provnn::test::slurp(data("expected/manifest.json")));
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

/// The command line a user would type for a manifest case (paths relative to tests/data).
std::string case_args(const nlohmann::json& c) {
  std::string a = "explain " + quote(c["model"].get<std::string>()) + " --input " + quote(c["input"].get<std::string>());
  if (!c["index"].is_null()) a += " --index " + std::to_string(c["index"].get<int>());
  if (!c["rule"].is_null()) a += " --rule " + quote(c["rule"].get<std::string>());
  if (!c["composite"].is_null()) a += " --composite " + quote(c["composite"].get<std::string>());
  for (const auto& [layer, rule] : c["overrides"].items()) a += " --rule " + quote(layer + "=" + rule.get<std::string>());
  if (!c["bias"].get<bool>()) a += " --no-bias";
  if (!c["initial_relevance"].is_null()) a += " --target " + quote(c["initial_relevance"].get<std::string>());
  if (!c["target_arg"].is_null()) a += " --target " + c["target_arg"].dump();
  return a + " --json";
}

}  // namespace

TEST_CASE("explain --json reproduces every NumPy reference case of the manifest") {
  const auto m = manifest();
  std::size_t checked = 0;
  double worst = 0.0;
  for (const auto& c : m["cases"]) {
    const auto name = c["name"].get<std::string>();
    CAPTURE(name);
    const auto r = run_provnn(case_args(c), PROVNN_TEST_DATA_DIR);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const auto j = nlohmann::json::parse(r.out);
    const auto expected = provnn::engine::read_npy(data(c["relevance"].get<std::string>()));
    const auto got = j["relevance"].get<std::vector<double>>();
    REQUIRE(got.size() == expected.data.size());
    const double scale = std::max(c["max_abs"].get<double>(), 1e-300);
    double err = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) err = std::max(err, std::abs(got[i] - expected.data[i]) / scale);
    CHECK(err <= 1e-9);
    worst = std::max(worst, err);
    if (!c["score"].is_null()) CHECK(j["score"].get<double>() == doctest::Approx(c["score"].get<double>()).epsilon(1e-12));
    CHECK(std::abs(j["bias_share"].get<double>() - c["bias_share"].get<double>()) <= 1e-9 * scale);
    CHECK(std::abs(j["sum"].get<double>() - c["sum"].get<double>()) <= 1e-9 * scale * static_cast<double>(got.size()));
    if (!c["target"].is_null()) CHECK(j["target"].get<long>() == c["target"].get<long>());
    ++checked;
  }
  MESSAGE("checked ", checked, " cases; largest error ", worst, " of max|R|");
  CHECK(checked == m["cases"].size());
  CHECK(checked >= 100);
}

TEST_CASE("explain --out writes float64 relevance with the input's shape, equal to --json") {
  const auto dir = provnn::test::scratch_dir("explain-out");
  const auto out = (dir / "R.npy").string();
  const auto args = "explain models/digits_cnn.onnx --input inputs/cnn_input_0.npy --rule gamma";
  auto r = run_provnn(std::string(args) + " --out " + quote(out), PROVNN_TEST_DATA_DIR);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto written = provnn::engine::read_npy(out);
  CHECK(written.shape == provnn::engine::shape_t{1, 8, 8});
  auto j = run_provnn(std::string(args) + " --json", PROVNN_TEST_DATA_DIR);
  REQUIRE(j.exit_code == 0);
  CHECK(nlohmann::json::parse(j.out)["relevance"].get<std::vector<double>>() == written.data);
}

TEST_CASE("explain prints a readable summary by default") {
  auto r = run_provnn("explain models/digits_mlp.onnx --input inputs/mlp_input_0.npy", PROVNN_TEST_DATA_DIR);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("prediction  class 0") != std::string::npos);
  CHECK(r.out.find("most relevant input features") != std::string::npos);
  // the manifest's epsilon case: largest |R| is pixel 18 with R = +2.3876
  CHECK(r.out.find("x[18]") != std::string::npos);
}

TEST_CASE("bad inputs give a clear message naming the culprit and a non-zero exit code") {
  struct bad_case {
    std::string args, must_mention;
  };
  const std::vector<bad_case> cases = {
      {"explain models/bad/unknown_op.onnx -i inputs/mlp_input_0.npy", "Sigmoid"},
      {"explain models/bad/residual.onnx -i inputs/mlp_input_0.npy", "residual.onnx"},
      {"explain models/bad/two_inputs.onnx -i inputs/mlp_input_0.npy", "two_inputs.onnx"},
      {"explain models/bad/nan_weight.onnx -i inputs/mlp_input_0.npy", "5"},
      {"explain models/bad/truncated.onnx -i inputs/mlp_input_0.npy", "truncated.onnx"},
      {"explain models/bad/not_onnx.onnx -i inputs/mlp_input_0.npy", "not_onnx.onnx"},
      {"explain models/no_such_model.onnx -i inputs/mlp_input_0.npy", "no_such_model.onnx"},
      {"explain models/digits_mlp.onnx -i inputs/wrong_shape.npy", "63"},
      {"explain models/digits_cnn.onnx -i inputs/fortran_order.npy", "ortran"},
      {"explain models/digits_mlp.onnx -i inputs/bad_dtype.npy", "bad_dtype.npy"},
      {"explain models/digits_mlp.onnx -i inputs/bad_dtype_str.npy", "bad_dtype_str.npy"},
      {"explain models/digits_mlp.onnx -i inputs/nan_input.npy", "10"},
      {"explain models/digits_mlp.onnx -i inputs/truncated.npy", "truncated.npy"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_batch_u8.npy --index 9", "9"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --rule epsilonn", "epsilonn"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --rule alphabeta:3,1", "alphabeta"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --rule 7=zplus", "7"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --rule /9/Gemm=zplus", "/9/Gemm"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --composite epsilon-minus", "epsilon-minus"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --target 10", "10"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --target seven", "seven"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --target inputs/mlp_input_0.npy", "10"},
      {"explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --out /nonexistent-dir/R.npy", "R.npy"},
      {"explain models/digits_mlp.onnx", "input"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args);
    const auto r = run_provnn(c.args, PROVNN_TEST_DATA_DIR);
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code < 128);  // an error exit, never a crash by signal
    CHECK_MESSAGE(r.err.find(c.must_mention) != std::string::npos, r.err);
    CHECK(r.out.empty());
  }
}

TEST_CASE("semirings --json lists every registered semiring") {
  auto r = run_provnn("semirings --json");
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  std::vector<std::string> names;
  for (const auto& e : j) names.push_back(e["name"].get<std::string>());
  for (const char* n : {"real", "exact", "exact-float", "boolean", "counting", "tropical", "max-plus", "viterbi", "fuzzy",
                        "lukasiewicz", "security", "lineage", "why", "posbool", "bx", "trio", "nx", "topk:K", "dual:TOKEN"}) {
    CHECK_MESSAGE(std::find(names.begin(), names.end(), n) != names.end(), n);
  }
}

TEST_CASE("explain --heatmap writes a PNG whose pixels follow the diverging colour map") {
  const auto dir = provnn::test::scratch_dir("heatmap");
  const auto png = (dir / "h.png").string();
  auto r = run_provnn("explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy --heatmap " + quote(png),
                      PROVNN_TEST_DATA_DIR);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto img = provnn::engine::read_png(png);
  CHECK(img.channels == 3);
  CHECK(img.width == 256);  // 8 pixels upscaled ×32
  CHECK(img.height == 256);
  // Pixel 18 (row 2, col 2) has the largest relevance, +2.3876 (manifest): pure red.
  const std::size_t y = 2 * 32 + 5, x = 2 * 32 + 5, plane = 256 * 256;
  CHECK(img.data[0 * plane + y * 256 + x] == doctest::Approx(1.0));
  CHECK(img.data[1 * plane + y * 256 + x] == doctest::Approx(0.0));
  CHECK(img.data[2 * plane + y * 256 + x] == doctest::Approx(0.0));
  // Pixel 0 (a blank corner, x = 0) has relevance 0: white.
  CHECK(img.data[0 * plane] == doctest::Approx(1.0));
  CHECK(img.data[1 * plane] == doctest::Approx(1.0));
  CHECK(img.data[2 * plane] == doctest::Approx(1.0));
}
