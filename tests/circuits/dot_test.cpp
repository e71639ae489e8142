#include "circuits/dot.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "layered.hpp"
#include "semirings/real.hpp"

using namespace provnn;
namespace fs = std::filesystem;

namespace {

const fs::path golden_dir = fs::path(PROVNN_SOURCE_DIR) / "tests" / "circuits" / "golden";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Graphviz must accept every DOT text the tests produce.
void check_graphviz_parses(const std::string& dot, const std::string& name) {
  static const bool have_dot = std::system("command -v dot > /dev/null 2>&1") == 0;
  if (!have_dot) {
    MESSAGE("Graphviz 'dot' not found: skipping the parse check of ", name);
    return;
  }
  const auto dir = fs::temp_directory_path() / "provnn-tests" / "dot";
  fs::create_directories(dir);
  const auto file = dir / (name + ".dot");
  std::ofstream(file, std::ios::binary) << dot;
  const auto cmd = fmt::format("dot -Tsvg '{}' -o '{}' 2> '{}'", file.string(), (dir / (name + ".svg")).string(),
                               (dir / (name + ".err")).string());
  INFO("dot said: ", slurp(dir / (name + ".err")));
  CHECK(std::system(cmd.c_str()) == 0);
  CHECK(fs::file_size(dir / (name + ".svg")) > 0);
}

// Compares with tests/circuits/golden/<name>.dot (PROVNN_UPDATE_GOLDEN=1 rewrites it).
void check_golden(const std::string& dot, const std::string& name) {
  const auto file = golden_dir / (name + ".dot");
  if (std::getenv("PROVNN_UPDATE_GOLDEN")) std::ofstream(file, std::ios::binary) << dot;
  REQUIRE_MESSAGE(fs::exists(file), "missing golden file ", file.string());
  CHECK(dot == slurp(file));
  check_graphviz_parses(dot, name);
}

// R = (x ⊗ W1[0,0] ⊗ n1[0]#0) ⊗ r[0]  ⊕  (x ⊗ W1[1,0] ⊗ n1[1]#0) ⊗ r[1]: a 1-2 layer.
struct tiny {
  circuit c;
  gate_id root_gate;
  tiny() {
    auto& tt = c.tokens();
    const auto x = tt.intern(token_kind::input, token_variant::plain, 0, {0});
    tt.set_value(x, 0.5);
    std::vector<gate_id> terms;
    for (std::uint32_t k = 0; k < 2; ++k) {
      const auto w = tt.intern(token_kind::parameter, token_variant::plain, 1, {k, 0});
      const auto n = tt.intern(token_kind::normaliser, token_variant::plain, 1, {k}, 0);
      const auto r = tt.intern(token_kind::target, token_variant::plain, 0, {k});
      tt.set_value(w, k == 0 ? 2.0 : -1.0);
      tt.set_value(n, 0.25);
      tt.set_value(r, k == 0 ? 1.0 : 0.0);
      const auto e = c.edge({c.token(x), c.token(w), c.token(n)}, {1, 0, k, 0, w});
      terms.push_back(c.times({e, c.token(r)}));
    }
    root_gate = c.plus(terms);
    c.add_root({"R(x[0])", root_gate, root_kind::feature, 0, 0, no_target});
  }
};

}  // namespace

TEST_CASE("dot_escape escapes quotes, backslashes and newlines") {
  CHECK(dot_escape("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(dot_escape("W1[3,4]") == "W1[3,4]");
}

TEST_CASE("DOT of a small circuit: golden, and Graphviz parses it") {
  tiny t;
  check_golden(to_dot(t.c), "tiny");
}

TEST_CASE("DOT with token and gate values") {
  tiny t;
  dot_options o;
  o.token_values = real_labels(t.c.tokens().values());
  const auto vals = evaluate(t.c, real_semiring{});
  o.gate_values = real_labels(vals);
  const auto dot = to_dot(t.c, o);
  CHECK(dot.find("x[0] = 0.5") != std::string::npos);
  CHECK(dot.find("W1[1,0] = -1") != std::string::npos);
  check_golden(dot, "tiny_values");
}

TEST_CASE("DOT is cut to the gate budget with a '… N more gates' node") {
  tiny t;
  dot_options o;
  o.max_gates = 3;
  const auto dot = to_dot(t.c, o);
  // The cone of the root: ⊕, 2 ⊗, 2 edge gates, 7 distinct tokens (x shared) = 12 gates; 3 drawn.
  CHECK(dot.find("… 9 more gates") != std::string::npos);
  check_golden(dot, "tiny_cut");
  o.max_gates = 0;
  const auto none = to_dot(t.c, o);
  CHECK(none.find("… 12 more gates") != std::string::npos);
  check_graphviz_parses(none, "tiny_cut_zero");
}

TEST_CASE("DOT labels with hostile text are escaped and still parse") {
  tiny t;
  t.c.metadata()["model"] = "weird \"name\" with \\ and\nnewline";
  t.c.metadata()["rule"] = "epsilon:0.25 {}[]<>;";
  t.c.add_root({"R \"quoted\" \\ root", t.root_gate});
  const auto dot = to_dot(t.c);
  CHECK(dot.find("weird \\\"name\\\" with \\\\ and\\nnewline") != std::string::npos);
  check_golden(dot, "hostile");
}

TEST_CASE("DOT of a cone is deterministic and restricted to that cone") {
  std::mt19937 rng(8);
  auto net = provnn::testing::random_layered(rng, {3, 3, 2}, 1.0, 0.0);
  dot_options o;
  o.roots = {net.feature_roots[1]};
  o.max_gates = 1000;
  const auto a = to_dot(net.c, o);
  const auto b = to_dot(net.c, o);
  CHECK(a == b);
  CHECK(a.find("x[1]") != std::string::npos);
  CHECK(a.find("x[0]") == std::string::npos);  // another feature's token is outside the cone
  CHECK(a.find("R(x[1])") != std::string::npos);
  CHECK(a.find("more") == std::string::npos);
  check_graphviz_parses(a, "cone");
  const gate_id bad[] = {gate_id{999999}};
  o.roots.assign(bad, bad + 1);
  CHECK_THROWS_WITH_AS(to_dot(net.c, o), doctest::Contains("root gate 999999 does not exist"), provnn::error);
}

TEST_CASE("DOT of a whole circuit without roots, and of an empty one") {
  circuit c;
  check_graphviz_parses(to_dot(c), "empty");
  tiny t;
  circuit& d = t.c;
  dot_options o;
  o.roots = {};
  CHECK(to_dot(d, o) == to_dot(d));  // the roots are the default seeds
}
