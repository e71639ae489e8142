// A built circuit is immutable: every read-only operation (evaluation in any semiring, with
// or without an edge annotation and a valuation override, token look-ups and glob matches,
// N[X] expansion, top-k monomials, DOT export) may run from several threads at once (issue 7).
// Each thread's results must equal the single-threaded ones. Data races are what
// ThreadSanitizer finds: tools/sanitize.sh thread builds this suite with -fsanitize=thread.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "circuits/dot.hpp"
#include "circuits/edge_annotation.hpp"
#include "circuits/evaluate.hpp"
#include "circuits/expand.hpp"
#include "circuits/fused.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/synthetic.hpp"
#include "semirings/boolean.hpp"
#include "semirings/counting.hpp"
#include "semirings/nx.hpp"
#include "semirings/real.hpp"
#include "semirings/topk.hpp"
#include "semirings/viterbi.hpp"

using namespace provnn;

namespace {

// Everything one thread computes, in a form that compares with ==.
struct results {
  std::vector<double> real, real_deleted, viterbi;
  std::vector<std::uint8_t> boolean_threshold;
  std::vector<std::string> counting, nx_roots, topk;
  std::vector<token_index> matched;
  std::optional<token_index> found;
  std::string dot;
  friend bool operator==(const results&, const results&) = default;
};

std::vector<gate_id> root_gates(const circuit& c) {
  std::vector<gate_id> g;
  for (const auto& r : c.roots()) g.push_back(r.gate);
  return g;
}

results compute(const circuit& c) {
  results out;
  const auto roots = root_gates(c);
  const real_semiring real;
  const auto rv = evaluate(c, real);
  for (auto g : roots) out.real.push_back(rv[to_index(g)]);

  auto val = lift_valuation(c, real);
  const token_override del[] = {{"W1[*,0]", 0.0}};
  override_tokens(c, real, val, del);
  const auto rd = evaluate(c, real, std::span<const double>(val));
  for (auto g : roots) out.real_deleted.push_back(rd[to_index(g)]);

  // Edge annotations and DOT read edge gates: a fused circuit is expanded by each thread.
  std::optional<circuit> expanded;
  if (has_fused_gates(c)) expanded = expand_fused(c);
  const circuit& e = expanded ? *expanded : c;
  const auto eroots = root_gates(e);
  const auto theta = parse_edge_annotation(e, "threshold:0.001");
  const auto bv = evaluate(e, boolean_semiring{}, &theta);
  for (auto g : eroots) out.boolean_threshold.push_back(static_cast<std::uint8_t>(bv[to_index(g)]));
  const auto cv = evaluate(e, counting_semiring{}, &theta);
  for (auto g : eroots) out.counting.push_back(counting_semiring{}.format(cv[to_index(g)]));
  const auto maxnorm = parse_edge_annotation(e, "viterbi-maxnorm");
  const auto vv = evaluate(e, viterbi_semiring{}, &maxnorm);
  for (auto g : eroots) out.viterbi.push_back(vv[to_index(g)]);
  const auto plain_counts = evaluate(c, counting_semiring{});  // fused gates natively
  for (auto g : roots) out.counting.push_back(counting_semiring{}.format(plain_counts[to_index(g)]));

  const nx_semiring nx;
  const auto nv = evaluate(c, nx);
  for (std::size_t i = 0; i < roots.size(); i += 7) out.nx_roots.push_back(nx.format(nv[to_index(roots[i])]));
  const topk_semiring top(5);
  const auto tv = evaluate(c, top);
  for (auto g : roots) out.topk.push_back(top.format(tv[to_index(g)]));

  out.matched = c.tokens().match("a1[*]");
  out.found = c.tokens().find("W3[3,5]");
  dot_options d;
  d.roots = {eroots.front()};
  d.max_gates = 60;
  out.dot = to_dot(e, d);
  return out;
}

}  // namespace

TEST_CASE("concurrency: a circuit is evaluated from four threads at once with the single-threaded results") {
  const auto net = engine::synthetic_network("mlp:12-10-8-4");
  const auto x = engine::synthetic_input(net);
  const auto fwd = engine::forward(net, x);
  engine::circuit_options o;
  o.layer_rules.assign(3, engine::rules::epsilon());
  // Both layouts: the fused one's gates, token blocks and on-the-fly expansion are read-only too.
  for (auto layout : {engine::circuit_layout::plain, engine::circuit_layout::fused}) {
    const bool fused_layout = layout == engine::circuit_layout::fused;
    CAPTURE(fused_layout);
    o.layout = layout;
    const circuit c = engine::build_circuit(net, fwd, o);

    const results expected = compute(c);
    REQUIRE(expected.real.size() == 12 + 10 + 8 + 4);  // 12 feature roots and one per bias
    REQUIRE(!expected.matched.empty());
    REQUIRE(expected.found.has_value());
    // The threshold removes some paths but not all (the comparison is not vacuous).
    CHECK(std::count(expected.boolean_threshold.begin(), expected.boolean_threshold.end(), 1) > 0);

    constexpr int n_threads = 4;
    std::vector<results> got(n_threads);
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < n_threads; ++t) threads.emplace_back([&, t] {
        for (int rep = 0; rep < 3; ++rep) got[t] = compute(c);
      });
    }
    for (int t = 0; t < n_threads; ++t) {
      CAPTURE(t);
      CHECK(got[t] == expected);
    }
  }
}
