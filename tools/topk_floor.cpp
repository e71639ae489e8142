// The floor of top-k evaluation without monomials (issue 5), measured by tools/topk_floor.sh.
//
// Builds one circuit, then evaluates top-k:k and real alternately --repeat times and prints
// the minimum of each, their ratio, and a checksum of the top-k scores. The script compiles
// this file twice: against semirings/topk.hpp as it is, and against a copy whose kernels write
// every entry's score but not its monomial. The difference is what making monomials costs;
// the second program's time is the floor of any design that builds monomials only on read.
//
//   topk_floor SPEC REPEAT [fused|structured] [K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string>

#include "circuits/evaluate.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"
#include "semirings/real.hpp"
#include "semirings/topk.hpp"

int main(int argc, char** argv) try {
  using namespace provnn;
  using clock_type = std::chrono::steady_clock;
  if (argc < 3) {
    std::fprintf(stderr, "usage: topk_floor SPEC REPEAT [fused|structured] [K]\n");
    return 2;
  }
  const std::string spec = argv[1];
  const int repeat = std::max(1, std::atoi(argv[2]));
  const std::string layout = argc > 3 ? argv[3] : "fused";
  const std::size_t k = argc > 4 ? static_cast<std::size_t>(std::atoi(argv[4])) : 10;

  const auto net = engine::synthetic_network(spec);
  const auto x = engine::synthetic_input(net);
  engine::composite rules;
  engine::circuit_options copt;
  copt.layer_rules = engine::resolve(rules, net);
  copt.layout = layout == "structured" ? engine::circuit_layout::structured : engine::circuit_layout::fused;
  const auto c = engine::build_circuit(net, engine::forward(net, x), copt, nullptr);

  const topk_semiring topk(k);
  const real_semiring real;
  const auto vt = lift_valuation(c, topk);
  const auto vr = lift_valuation(c, real);
  values_of<topk_semiring> bt;
  values_of<real_semiring> br;
  double min_topk = 1e300, min_real = 1e300;
  const auto since = [](clock_type::time_point t0) {
    return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
  };
  for (int r = 0; r < repeat; ++r) {
    auto t0 = clock_type::now();
    evaluate_into(c, topk, std::span<const packed_topk>(vt), bt);
    min_topk = std::min(min_topk, since(t0));
    t0 = clock_type::now();
    evaluate_into(c, real, std::span<const double>(vr), br);
    min_real = std::min(min_real, since(t0));
  }
  double checksum = 0.0;
  std::size_t entries = 0;
  for (const auto& v : bt) {
    const auto s = v.scores();
    for (std::size_t a = 0; a < s.size; ++a) checksum += s[a];
    entries += s.size;
  }
  std::printf("topk %.1f real %.1f ratio %.2f entries %zu checksum %.17g\n", min_topk, min_real, min_topk / min_real,
              entries, checksum);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "topk_floor: %s\n", e.what());
  return 1;
}
