// Circuit build against Boost.Graph's CSR construction of the same layered DAG, in the same
// process (issue 5: the build below Boost.Graph's compressed_sparse_row_graph, 359 µs on
// 784-300-100-10 where the issue was filed).
//
//   csr_build_bench [SPEC] [REPEATS]      e.g. csr_build_bench mlp:784-300-100-10 50
//
// provnn: build_circuit() of the synthetic network's LRP-ε explanation of its top class in
// the fused layout (what `provnn bench --layout fused` times as "build"), from the forward
// pass, which is not timed. Boost: compressed_sparse_row_graph<directedS> built from an edge
// list of every dense edge of the network (unit ids numbered layer by layer), given sorted
// (edges_are_sorted, its fastest constructor) and unsorted (edges_are_unsorted); making the
// edge list is not timed. That CSR holds every structural edge, the circuit only the active
// ones (ReLU zeros and the one explained class drop the rest): both are printed, per edge,
// and a third CSR holds just the circuit's active edges (its own DAG, sorted).
// Both run under the provnn command's allocator settings (common/allocator.hpp).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/graph/compressed_sparse_row_graph.hpp>

#include "common/allocator.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/network.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"

using namespace provnn;

namespace {

using clock_type = std::chrono::steady_clock;

double since_us(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  // The allocator settings of the provnn command (huge pages, freed memory kept), for both.
  provnn::use_huge_pages_for_malloc(argv);
  provnn::retain_freed_memory();
  const std::string spec = argc > 1 ? argv[1] : "mlp:784-300-100-10";
  std::size_t repeats = 50;
  if (argc > 2) {
    const std::string_view r = argv[2];
    const auto [end, ec] = std::from_chars(r.data(), r.data() + r.size(), repeats);
    if (ec != std::errc{} || end != r.data() + r.size() || repeats == 0 || repeats > 100000) {
      std::fprintf(stderr, "csr_build_bench: REPEATS must be a whole number from 1 to 100000, not '%s'\n", argv[2]);
      return 2;
    }
  }
  const engine::network net = engine::synthetic_network(spec);
  const auto fwd = engine::forward(net, engine::synthetic_input(net));
  engine::circuit_options o;
  o.layer_rules = engine::resolve(engine::composite{}, net);
  o.layout = engine::circuit_layout::fused;

  // The layered DAG: an edge lower unit → upper unit per weight of every dense layer.
  using edge = std::pair<std::uint32_t, std::uint32_t>;
  std::vector<edge> edges;
  std::uint32_t base = 0, units = 0;
  for (const auto& l : net.layers) {
    const auto* d = std::get_if<engine::dense_op>(&l.op);
    if (!d) continue;
    if (units == 0) units = static_cast<std::uint32_t>(d->in);
    for (std::size_t j = 0; j < d->in; ++j)
      for (std::size_t k = 0; k < d->out; ++k)
        edges.emplace_back(base + static_cast<std::uint32_t>(j), base + static_cast<std::uint32_t>(d->in + k));
    base += static_cast<std::uint32_t>(d->in);
    units += static_cast<std::uint32_t>(d->out);
  }
  if (edges.empty()) {
    std::fprintf(stderr, "csr_build_bench: '%s' has no dense layer\n", spec.c_str());
    return 2;
  }
  std::vector<edge> shuffled = edges;
  std::reverse(shuffled.begin(), shuffled.end());  // deterministic, and unsorted
  using csr = boost::compressed_sparse_row_graph<boost::directedS>;

  engine::circuit_build_info info;
  std::size_t sink = 0;
  // The circuit's own DAG: an edge per active edge (fused gate of lower unit j, one edge per
  // scaled child S_k), numbered as above, sorted. The stages' layer numbers ascend with the
  // dense layers.
  std::vector<edge> active;
  {
    const circuit c = engine::build_circuit(net, fwd, o, &info);
    std::vector<std::uint32_t> layer_ids, in_base, out_base;
    for (const auto& ctx : c.fused_contexts()) layer_ids.push_back(ctx.layer);
    std::sort(layer_ids.begin(), layer_ids.end());
    layer_ids.erase(std::unique(layer_ids.begin(), layer_ids.end()), layer_ids.end());
    std::uint32_t at = 0;
    for (const auto& l : net.layers)
      if (const auto* d = std::get_if<engine::dense_op>(&l.op)) {
        in_base.push_back(at);
        at += static_cast<std::uint32_t>(d->in);
        out_base.push_back(at);
      }
    if (layer_ids.size() != in_base.size()) {
      std::fprintf(stderr, "csr_build_bench: %zu fused stages for %zu dense layers (give an mlp: spec: dense layers only)\n",
                   layer_ids.size(), in_base.size());
      return 2;
    }
    for (std::size_t i = 0; i < c.fused_gates().size(); ++i) {
      const auto& ctx = c.fused_contexts()[i];
      const auto d = static_cast<std::size_t>(std::lower_bound(layer_ids.begin(), layer_ids.end(), ctx.layer) -
                                              layer_ids.begin());
      const auto ch = c.children(c.fused_gates()[i]);
      for (std::size_t e = 1; e < ch.size(); ++e) {
        const auto k = c.scaled_unit(ch[e]);
        if (!k) {
          std::fprintf(stderr, "csr_build_bench: a fused gate's child is not a scale gate\n");
          return 2;
        }
        active.emplace_back(in_base[d] + ctx.lower, out_base[d] + *k);
      }
    }
    std::sort(active.begin(), active.end());
  }
  std::vector<double> ta;
  std::vector<double> tb, ts, tu;
  // Each in a run of `repeats` back-to-back calls (as `provnn bench` times its build: warm
  // caches for each), the three runs one after another three times over, so that the
  // machine's slow and fast phases reach all three alike; each result is destroyed after
  // its clock stops.
  for (int round = 0; round < 3; ++round) {
    for (std::size_t r = 0; r < repeats; ++r) {
      const auto a = clock_type::now();
      const circuit c = engine::build_circuit(net, fwd, o, &info);
      tb.push_back(since_us(a, clock_type::now()));
      sink += c.size();
    }
    for (std::size_t r = 0; r < repeats; ++r) {
      const auto a = clock_type::now();
      const csr g(boost::edges_are_sorted, edges.begin(), edges.end(), units);
      ts.push_back(since_us(a, clock_type::now()));
      sink += num_edges(g);
    }
    for (std::size_t r = 0; r < repeats; ++r) {
      const auto a = clock_type::now();
      const csr g(boost::edges_are_sorted, active.begin(), active.end(), units);
      ta.push_back(since_us(a, clock_type::now()));
      sink += num_edges(g);
    }
    for (std::size_t r = 0; r < repeats; ++r) {
      const auto a = clock_type::now();
      const csr g(boost::edges_are_unsorted, shuffled.begin(), shuffled.end(), units);
      tu.push_back(since_us(a, clock_type::now()));
      sink += num_edges(g);
    }
  }
  auto med = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return std::pair{v[v.size() / 2], v.front()};
  };
  const auto [b_med, b_min] = med(tb);
  const auto [s_med, s_min] = med(ts);
  const auto [u_med, u_min] = med(tu);
  const auto [a_med, a_min] = med(ta);
  const double ne = static_cast<double>(edges.size()), na = static_cast<double>(std::max<std::size_t>(1, info.edges));
  std::printf("%s, 3 × %zu calls each (median, min µs; ns per edge of the median)\n", spec.c_str(), repeats);
  std::printf("  provnn build (fused, ε)        %9.1f %9.1f   %6.2f ns × %zu active edges\n", b_med, b_min,
              1000 * b_med / na, static_cast<std::size_t>(info.edges));
  std::printf("  Boost CSR, sorted edge list    %9.1f %9.1f   %6.2f ns × %zu edges\n", s_med, s_min, 1000 * s_med / ne,
              edges.size());
  std::printf("  Boost CSR, unsorted edge list  %9.1f %9.1f   %6.2f ns × %zu edges\n", u_med, u_min, 1000 * u_med / ne,
              edges.size());
  std::printf("  Boost CSR, the active edges     %9.1f %9.1f   %6.2f ns × %zu edges (sorted)\n", a_med, a_min,
              1000 * a_med / static_cast<double>(std::max<std::size_t>(1, active.size())), active.size());
  std::printf("  ratio build / CSR sorted %.2f, / CSR unsorted %.2f, / CSR of the active edges %.2f\n", b_med / s_med,
              b_med / u_med, b_med / a_med);
  return sink == 0 ? 1 : 0;
}
