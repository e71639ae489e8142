// Top-k evaluation with and without making monomials (issue 5), run by tools/topk_floor.sh.
//
// Builds one circuit, then evaluates top-k:K and real alternately REPEAT times and prints the
// minimum of each, their ratio, the number of entries, the factors of the boxed lists'
// monomials, and a checksum of the scores (each gate's scores summed in sorted order, so a
// different order of tied entries does not change it). The script compiles this file twice:
// against semirings/topk.hpp as it is, and against a copy whose kernels write every entry's
// score but not its monomial. The difference is what making monomials costs in today's entry
// layout.
//
//   topk_floor SPEC REPEAT [fused|structured] [K]     (exit 2 on bad arguments)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string>
#include <vector>

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
  const int repeat = std::atoi(argv[2]);
  const std::string layout = argc > 3 ? argv[3] : "fused";
  if (repeat < 1 || (layout != "fused" && layout != "structured")) {
    std::fprintf(stderr, "topk_floor: REPEAT must be at least 1 and LAYOUT fused or structured\n");
    return 2;
  }
  const topk_semiring topk = topk_semiring::from_parameter(argc > 4 ? argv[4] : "10");

  const auto net = engine::synthetic_network(spec);
  const auto x = engine::synthetic_input(net);
  engine::composite rules;
  engine::circuit_options copt;
  copt.layer_rules = engine::resolve(rules, net);
  copt.layout = layout == "structured" ? engine::circuit_layout::structured : engine::circuit_layout::fused;
  const auto c = engine::build_circuit(net, engine::forward(net, x), copt, nullptr);

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
  std::size_t entries = 0, factors = 0;
  std::vector<double> scores;
  for (const auto& v : bt) {
    const auto s = v.scores();
    scores.clear();
    for (std::size_t a = 0; a < s.size; ++a) scores.push_back(s[a]);
    std::sort(scores.begin(), scores.end());
    for (const double sc : scores) checksum += sc;
    entries += s.size;
    if (const topk_list* l = v.boxed_list())
      for (const auto& e : l->entries) factors += e.mono.size();
  }
  std::printf("topk %.1f real %.1f ratio %.2f entries %zu factors %zu checksum %.17g\n", min_topk, min_real,
              min_topk / min_real, entries, factors, checksum);
  return 0;
} catch (const provnn::parse_error& e) {
  std::fprintf(stderr, "topk_floor: %s\n", e.what());
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "topk_floor: %s\n", e.what());
  return 1;
}
