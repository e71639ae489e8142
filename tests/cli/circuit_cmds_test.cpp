// End-to-end tests of the circuit commands: build, eval, poly, dot, info, explain --semiring.
// Expected values come from identities that must hold between independent code paths:
// the circuit's real evaluation equals the numeric LRP (explain --out); the counting value is
// the sum of the N[X] coefficients (poly --json); the best top-k score is the Viterbi value;
// relevance is linear in the target token r[y]; deleting a token zeroes what depends on it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/npy.hpp"
#include "tests/cli/cli_test_util.hpp"

using provnn::test::data;
using provnn::test::run_provnn;

namespace {

std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

struct fixture {
  std::filesystem::path dir;
  std::filesystem::path pvc;
};

fixture built(const std::string& name, const std::string& model, const std::string& input, const std::string& extra = "") {
  fixture f{provnn::test::scratch_dir(name), {}};
  f.pvc = f.dir / "c.pvc";
  const auto r = run_provnn("build " + model + " -i " + input + " " + extra + " -o " + q(f.pvc), PROVNN_TEST_DATA_DIR);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return f;
}

nlohmann::json eval_json(const fixture& f, const std::string& args) {
  const auto r = run_provnn("eval " + q(f.pvc) + " " + args + " --json");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return nlohmann::json::parse(r.out);
}

/// Feature values of the first semiring of an eval --json answer, in root order.
std::vector<nlohmann::json> features(const nlohmann::json& j, std::size_t which = 0) {
  std::vector<nlohmann::json> out;
  for (const auto& e : j[which]["roots"])
    if (e["kind"] == "feature") out.push_back(e["value"]);
  return out;
}

}  // namespace

TEST_CASE("build + eval real --out equals explain --out (numeric LRP), for every bundled model") {
  const std::vector<std::pair<std::string, std::string>> models = {
      {"models/digits_mlp.onnx", "inputs/mlp_input_0.npy"},
      {"models/digits_cnn.onnx", "inputs/cnn_input_0.npy"},
      {"models/digits_cnn_maxpool.onnx", "inputs/cnn_input_1.npy"},
      {"models/digits_cnn_bn.onnx", "inputs/cnn_input_0.npy"}};
  for (const auto& [model, input] : models) {
    for (const std::string rule : {"epsilon", "zplus", "alphabeta", "flat"}) {
      CAPTURE(model);
      CAPTURE(rule);
      const auto f = built("eval-real", model, input, "--rule " + rule);
      auto r = run_provnn("eval " + q(f.pvc) + " --out " + q(f.dir / "circuit.npy"));
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      r = run_provnn("explain " + model + " -i " + input + " --rule " + rule + " --out " + q(f.dir / "numeric.npy"),
                     PROVNN_TEST_DATA_DIR);
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      const auto a = provnn::engine::read_npy(f.dir / "circuit.npy");
      const auto b = provnn::engine::read_npy(f.dir / "numeric.npy");
      CHECK(a.shape == b.shape);
      REQUIRE(a.data.size() == b.data.size());
      double scale = 0.0, err = 0.0;
      for (double v : b.data) scale = std::max(scale, std::abs(v));
      for (std::size_t i = 0; i < a.data.size(); ++i) err = std::max(err, std::abs(a.data[i] - b.data[i]));
      CHECK(err <= 1e-9 * scale);
    }
  }
}

TEST_CASE("counting equals the sum of the N[X] coefficients, and the best top-k path is the Viterbi value") {
  const auto f = built("count-poly", "models/digits_mlp.onnx", "inputs/mlp_input_0.npy");
  const auto j = eval_json(f, "-s counting -s viterbi");
  const auto counts = features(j, 0), viterbi = features(j, 1);
  std::size_t checked = 0;
  for (std::size_t feature : {2u, 18u, 50u}) {
    CAPTURE(feature);
    const auto r = run_provnn("poly " + q(f.pvc) + " --feature " + std::to_string(feature) + " --json");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    double sum = 0.0;
    for (const auto& t : nlohmann::json::parse(r.out)) sum += std::stod(t["coefficient"].get<std::string>());
    CHECK(sum == counts[feature].get<double>());
    const auto top = run_provnn("poly " + q(f.pvc) + " --feature " + std::to_string(feature) + " --top 1 --json");
    REQUIRE(top.exit_code == 0);
    const double best = std::abs(nlohmann::json::parse(top.out)[0]["score"].get<double>());
    CHECK(best == doctest::Approx(viterbi[feature].get<double>()).epsilon(1e-12));
    ++checked;
  }
  CHECK(checked == 3);
}

TEST_CASE("valuations: relevance is linear in r[y], and deleting a feature token zeroes its relevance only") {
  const auto f = built("valuation", "models/digits_mlp.onnx", "inputs/mlp_input_0.npy");
  const auto base = features(eval_json(f, ""));
  auto write = [&](const std::string& name, const std::string& text) {
    const auto p = f.dir / name;
    std::FILE* out = std::fopen(p.c_str(), "w");
    std::fputs(text.c_str(), out);
    std::fclose(out);
    return p;
  };
  // The explained class's score is 14.632587808793428 (manifest); doubling r[0] doubles every relevance.
  const auto doubled = features(eval_json(f, "--valuation " + q(write("r.json", "{\"r[0]\": 29.265175617586856}"))));
  for (std::size_t i = 0; i < base.size(); ++i)
    CHECK(doubled[i].get<double>() == doctest::Approx(2.0 * base[i].get<double>()).epsilon(1e-12));
  const auto deleted = features(eval_json(f, "--valuation " + q(write("x.json", "{\"x*[18]\": 0}"))));
  CHECK(deleted[18].get<double>() == 0.0);
  CHECK(deleted[50].get<double>() == base[50].get<double>());
}

TEST_CASE("edge annotations: a threshold above every coefficient leaves no Boolean path, one below leaves all") {
  const auto f = built("annotation", "models/digits_mlp.onnx", "inputs/mlp_input_0.npy");
  const auto plain = features(eval_json(f, "-s boolean"));
  const auto low = features(eval_json(f, "-s boolean -e threshold:-1e300"));
  const auto high = features(eval_json(f, "-s boolean -e threshold:1e300"));
  std::size_t paths = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    CHECK(low[i] == plain[i]);
    CHECK(high[i].get<double>() == 0.0);
    paths += plain[i].get<double>() != 0.0;
  }
  CHECK(paths == 36);  // the 36 non-zero pixels of mlp_input_0 (input x[i] = 0 has no path)
}

TEST_CASE("dot: the top-paths picture and a feature's cone are valid Graphviz") {
  const auto f = built("dot", "models/digits_cnn_maxpool.onnx", "inputs/cnn_input_0.npy");
  auto r = run_provnn("dot " + q(f.pvc) + " --top-paths 5 -o " + q(f.dir / "top.dot"));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto top = provnn::test::slurp(f.dir / "top.dot");
  CHECK(top.find("class r[") != std::string::npos);
  r = run_provnn("dot " + q(f.pvc) + " --feature 18 --max-gates 40 -o " + q(f.dir / "cone.dot"));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  if (std::system("command -v dot >/dev/null 2>&1") == 0) {
    for (const char* name : {"top.dot", "cone.dot"}) {
      CAPTURE(name);
      CHECK(std::system(("dot -Tsvg " + q(f.dir / name) + " -o /dev/null").c_str()) == 0);
    }
  } else {
    MESSAGE("Graphviz dot not installed: DOT files not parsed");
  }
}

TEST_CASE("info reports the counts that build printed, and explain --semiring matches eval") {
  const auto dir = provnn::test::scratch_dir("info");
  const auto pvc = dir / "c.pvc";
  auto b = run_provnn("build models/digits_mlp.onnx -i inputs/mlp_input_0.npy --targets 0,3 -o " + q(pvc), PROVNN_TEST_DATA_DIR);
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  auto i = run_provnn("info " + q(pvc) + " --json");
  REQUIRE_MESSAGE(i.exit_code == 0, i.err);
  const auto j = nlohmann::json::parse(i.out);
  CHECK(b.out.find(std::to_string(j["gates"]["total"].get<long>()) + " gates") != std::string::npos);
  CHECK(j["roots"]["feature"].get<long>() == 128);  // 64 features × 2 targets
  CHECK(j["bytes_file"].get<long>() == static_cast<long>(std::filesystem::file_size(pvc)));

  auto e = run_provnn("explain models/digits_mlp.onnx -i inputs/mlp_input_0.npy -s counting --json", PROVNN_TEST_DATA_DIR);
  REQUIRE_MESSAGE(e.exit_code == 0, e.err);
  const auto from_explain = nlohmann::json::parse(e.out)["semirings"];
  const auto f = built("info-eval", "models/digits_mlp.onnx", "inputs/mlp_input_0.npy");
  CHECK(features(from_explain) == features(eval_json(f, "-s counting")));
}

TEST_CASE("circuit commands refuse bad input with a named error and exit≠0") {
  const auto f = built("bad", "models/digits_mlp.onnx", "inputs/mlp_input_0.npy");
  const auto bytes = provnn::test::slurp(f.pvc);
  const auto damaged = f.dir / "damaged.pvc";
  {
    std::FILE* out = std::fopen(damaged.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size() / 2, out);
    std::fclose(out);
  }
  const auto bad_json = f.dir / "bad.json";
  {
    std::FILE* out = std::fopen(bad_json.c_str(), "w");
    std::fputs("{\"W1[3,*]\": \"zero\"}", out);
    std::fclose(out);
  }
  struct bad_case {
    std::string args, must_mention;
  };
  const std::vector<bad_case> cases = {
      {"eval " + q(damaged), "damaged.pvc"},
      {"eval " + q(f.dir / "missing.pvc"), "missing.pvc"},
      {"eval " + q(f.pvc) + " -s tropicall", "tropicall"},
      {"eval " + q(f.pvc) + " -s topk:0", "topk"},
      {"eval " + q(f.pvc) + " -s dual:W9[9,9]", "W9[9,9]"},
      {"eval " + q(f.pvc) + " -s nx --out " + q(f.dir / "o.npy"), "symbolic"},
      {"eval " + q(f.pvc) + " --valuation " + q(bad_json), "W1[3,*]"},
      {"eval " + q(f.pvc) + " -e threshold:abc", "abc"},
      {"eval " + q(f.pvc) + " -e sometimes", "sometimes"},
      {"eval " + q(f.pvc) + " -s nx --max-terms 3", "3"},
      {"poly " + q(f.pvc) + " --feature 999", "999"},
      {"poly " + q(f.pvc) + " --feature 18 --max-monomials 5", "5"},
      {"dot " + q(f.pvc) + " --feature 64", "64"},
      {"info " + q(damaged), "damaged.pvc"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args);
    const auto r = run_provnn(c.args);
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code < 128);
    CHECK_MESSAGE(r.err.find(c.must_mention) != std::string::npos, r.err);
  }
  CHECK_FALSE(std::filesystem::exists(f.dir / "o.npy"));
}

TEST_CASE("build --layout fused|structured: a version-3|4 file whose eval (with and without edge annotations), "
          "poly and dot answer as the plain circuit's") {
  const std::string model = "models/digits_cnn.onnx", input = "inputs/cnn_input_0.npy";
  struct variant {
    std::string layout, rule;
    int version;
  };
  for (const auto& [layout, rule, version] : std::vector<variant>{
           {"fused", "epsilon", 3}, {"fused", "alphabeta", 3}, {"structured", "epsilon", 4}, {"structured", "alphabeta", 4}}) {
    CAPTURE(layout);
    CAPTURE(rule);
    const auto plain = built("fused-plain", model, input, "--rule " + rule);
    const auto fused = built("fused-" + layout, model, input, "--rule " + rule + " --layout " + layout);
    CHECK(provnn::test::slurp(fused.pvc)[8] == version);  // 3 holds fused gates, 4 also structured ones
    CHECK(std::filesystem::file_size(fused.pvc) < std::filesystem::file_size(plain.pvc) / 2);
    // info counts every edge once: an edge gate of the plain circuit is here an edge gate (a
    // pool's), an edge inside a fused gate, or one a structured gate stands for.
    const auto ip = run_provnn("info " + q(plain.pvc) + " --json"), ifu = run_provnn("info " + q(fused.pvc) + " --json");
    REQUIRE_MESSAGE(ifu.exit_code == 0, ifu.err);
    const auto gp = nlohmann::json::parse(ip.out)["gates"], gf = nlohmann::json::parse(ifu.out)["gates"];
    CHECK(gf["edge"].get<std::size_t>() + gf["fused_edges"].get<std::size_t>() +
              gf["structured_edges"].get<std::size_t>() ==
          gp["edge"].get<std::size_t>());
    CHECK((gf["structured_edges"].get<std::size_t>() > 0) == (layout == "structured"));
    CHECK(gf["conv_stages"].get<std::size_t>() == (layout == "structured" ? (rule == "alphabeta" ? 4u : 2u) : 0u));
    // Numeric semirings: the same reading to rounding; counting exactly.
    const auto jp = eval_json(plain, "-s real -s counting"), jf = eval_json(fused, "-s real -s counting");
    const auto rp = features(jp, 0), rf = features(jf, 0);
    REQUIRE(rp.size() == rf.size());
    double scale = 0.0, err = 0.0;
    for (const auto& v : rp) scale = std::max(scale, std::abs(v.get<double>()));
    for (std::size_t i = 0; i < rp.size(); ++i) err = std::max(err, std::abs(rp[i].get<double>() - rf[i].get<double>()));
    CHECK(err <= 1e-12 * scale);
    CHECK(features(jp, 1) == features(jf, 1));
    // K-LRP: the command expands the fused circuit for the annotation; exact in counting.
    for (const std::string ann : {"threshold:0", "threshold:0.001"}) {
      CAPTURE(ann);
      CHECK(features(eval_json(plain, "-s counting --edge-annotation " + ann), 0) ==
            features(eval_json(fused, "-s counting --edge-annotation " + ann), 0));
    }
    // poly --top: the same leading paths, by name and score.
    const auto pp = run_provnn("poly " + q(plain.pvc) + " --feature 20 --top 5 --json");
    const auto pf = run_provnn("poly " + q(fused.pvc) + " --feature 20 --top 5 --json");
    REQUIRE_MESSAGE(pp.exit_code == 0, pp.err);
    REQUIRE_MESSAGE(pf.exit_code == 0, pf.err);
    const auto tp = nlohmann::json::parse(pp.out), tf = nlohmann::json::parse(pf.out);
    REQUIRE(tp.size() == tf.size());
    for (std::size_t i = 0; i < tp.size(); ++i) {
      CHECK(tf[i]["monomial"] == tp[i]["monomial"]);
      CHECK(tf[i]["score"].get<double>() == doctest::Approx(tp[i]["score"].get<double>()).epsilon(1e-12));
    }
    // dot draws the expansion: the whole cone of a feature has the plain circuit's edge gates,
    // label for label (layer, units, term, real value); only the gate ids differ.
    const auto edge_labels = [](const std::string& dot) {
      std::vector<std::string> out;
      std::istringstream in(dot);
      for (std::string line; std::getline(in, line);)
        if (line.find("doublecircle") != std::string::npos) out.push_back(line.substr(line.find('[')));
      std::sort(out.begin(), out.end());
      return out;
    };
    const auto dp = run_provnn("dot " + q(plain.pvc) + " --feature 27 --max-gates 100000");
    const auto df = run_provnn("dot " + q(fused.pvc) + " --feature 27 --max-gates 100000");
    REQUIRE_MESSAGE(df.exit_code == 0, df.err);
    const auto lp = edge_labels(dp.out), lf = edge_labels(df.out);
    CHECK(lp.size() > 50);
    CHECK(lf == lp);
  }
}
