// N[X] expansion of every feature of a synthetic MLP, provnn's nx semiring against FLINT's
// fmpz_mpoly doing the same expansion of the same circuit, in the same process (issue 5:
// within 1.5× of FLINT on 16-12-12-8-4). Both results are compared polynomial by polynomial.
//
//   nx_flint_bench [SPEC] [REPEATS]      e.g. nx_flint_bench mlp:16-12-12-8-4 50
//
// The circuit is what `provnn bench --synthetic SPEC` builds (He-uniform weights, U(0,1)
// input, fixed seeds; LRP-ε, plain layout). FLINT evaluates it gate by gate in id order (one
// variable per token; ⊕ = fmpz_mpoly_add per child, ⊗ = fmpz_mpoly_mul), over the cone of
// the feature roots, keeping every value; provnn evaluates the same cone (evaluate_gates),
// dropping values after their last use. Exit code 1 when a polynomial differs.
#include <flint/flint.h>
#include <flint/fmpz.h>
#include <flint/fmpz_mpoly.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/evaluate.hpp"
#include "engine/circuit_builder.hpp"
#include "engine/forward.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"
#include "semirings/nx.hpp"

using namespace provnn;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// The value of every gate of the cone (mask) as a FLINT polynomial (vals must hold c.size()
/// initialised polynomials).
void flint_expand(const circuit& c, const std::vector<std::uint8_t>& mask, std::vector<fmpz_mpoly_struct>& vals,
                  const fmpz_mpoly_ctx_t ctx) {
  for (std::uint32_t g = 0; g < c.size(); ++g) {
    if (!mask[g]) continue;
    const auto ch = c.children(gate_id{g});
    fmpz_mpoly_struct* v = &vals[g];
    switch (c.kind(gate_id{g})) {
      case gate_kind::token: fmpz_mpoly_gen(v, static_cast<slong>(c.token_of(gate_id{g})), ctx); break;
      case gate_kind::zero: fmpz_mpoly_zero(v, ctx); break;
      case gate_kind::one: fmpz_mpoly_one(v, ctx); break;
      case gate_kind::plus:
        fmpz_mpoly_zero(v, ctx);
        for (auto x : ch) fmpz_mpoly_add(v, v, &vals[to_index(x)], ctx);
        break;
      case gate_kind::times:
        fmpz_mpoly_one(v, ctx);
        for (auto x : ch) fmpz_mpoly_mul(v, v, &vals[to_index(x)], ctx);
        break;
      default:
        std::fprintf(stderr, "nx_flint_bench: unexpected gate kind at %u\n", g);
        std::exit(2);
    }
  }
}

/// provnn's polynomial as a FLINT polynomial over the same variables.
void to_flint(const polynomial& p, fmpz_mpoly_t out, std::size_t nvars, const fmpz_mpoly_ctx_t ctx) {
  fmpz_mpoly_zero(out, ctx);
  std::vector<ulong> exps(nvars, 0);
  fmpz_t coef;
  fmpz_init(coef);
  for (const auto& t : p.terms()) {
    std::fill(exps.begin(), exps.end(), 0);
    for (const auto& f : t.mono) exps[f.token] = f.exponent;
    fmpz_set_str(coef, t.coefficient.str().c_str(), 10);
    fmpz_mpoly_push_term_fmpz_ui(out, coef, exps.data(), ctx);
  }
  fmpz_clear(coef);
  fmpz_mpoly_sort_terms(out, ctx);
  fmpz_mpoly_combine_like_terms(out, ctx);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "mlp:16-12-12-8-4";
  const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 50;

  const auto net = engine::synthetic_network(spec);
  const auto x = engine::synthetic_input(net);
  const auto fwd = engine::forward(net, x);
  engine::circuit_options o;
  o.layer_rules = engine::resolve(engine::composite{}, net);
  const circuit c = engine::build_circuit(net, fwd, o);
  std::vector<gate_id> features;
  for (const auto& r : c.roots())
    if (r.kind == root_kind::feature) features.push_back(r.gate);
  const std::size_t nvars = std::max<std::size_t>(1, c.tokens().size());

  // provnn: the cone of the feature roots in N[X]. FLINT: the same circuit, gate by gate,
  // over the same cone (its mask is made outside the timing on that side; evaluate_gates makes
  // its own inside). The two sides alternate, repeat by repeat, so that a slow spell of the
  // machine (this VM's speed drifts by 2× within minutes) falls on both, and which goes first
  // alternates as well; each side's previous results are released outside its timing.
  const nx_semiring s;
  const auto valuation = lift_valuation(c, s);
  fmpz_mpoly_ctx_t ctx;
  fmpz_mpoly_ctx_init(ctx, static_cast<slong>(nvars), ORD_LEX);
  const auto cone = detail::cone_mask(c, features, false);
  std::size_t cone_gates = 0;
  for (auto m : cone) cone_gates += m != 0;
  std::vector<fmpz_mpoly_struct> vals(c.size());
  std::vector<double> t_provnn, t_flint;
  values_of<nx_semiring> ours;
  const auto time_provnn = [&] {
    values_of<nx_semiring>().swap(ours);
    const auto t0 = std::chrono::steady_clock::now();
    ours = evaluate_gates(c, s, std::span<const polynomial>(valuation), features);
    t_provnn.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  };
  const auto time_flint = [&] {
    if (!t_flint.empty())  // the previous repeat's values
      for (auto& v : vals) fmpz_mpoly_clear(&v, ctx);
    for (auto& v : vals) fmpz_mpoly_init(&v, ctx);
    const auto t0 = std::chrono::steady_clock::now();
    flint_expand(c, cone, vals, ctx);
    t_flint.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  };
  for (int r = 0; r < repeats; ++r) {  // which side goes first alternates too
    if (r % 2 == 0) {
      time_provnn();
      time_flint();
    } else {
      time_flint();
      time_provnn();
    }
  }

  // The two expansions must agree, feature by feature.
  std::size_t terms = 0, differing = 0;
  fmpz_mpoly_t q;
  fmpz_mpoly_init(q, ctx);
  for (std::size_t i = 0; i < features.size(); ++i) {
    terms += ours[i].size();
    to_flint(ours[i], q, nvars, ctx);
    if (!fmpz_mpoly_equal(q, &vals[to_index(features[i])], ctx)) ++differing;
  }
  fmpz_mpoly_clear(q, ctx);
  for (auto& v : vals) fmpz_mpoly_clear(&v, ctx);
  fmpz_mpoly_ctx_clear(ctx);
  flint_cleanup();  // FLINT's caches, so a leak checker sees nothing left behind

  const double a = median(t_provnn), b = median(t_flint);
  const double amin = *std::min_element(t_provnn.begin(), t_provnn.end());
  const double bmin = *std::min_element(t_flint.begin(), t_flint.end());
  std::printf("N[X] expansion of %zu features of %s (%zu gates, %zu in their cone, %zu tokens, %zu terms in all), "
              "%d alternating repeats, median (min):\n",
              features.size(), spec.c_str(), c.size(), cone_gates, c.tokens().size(), terms, repeats);
  std::printf("  provnn nx       %10.1f us (%.1f)\n  FLINT fmpz_mpoly %9.1f us (%.1f)\n  provnn / FLINT  %10.2fx (%.2fx)\n",
              a, amin, b, bmin, a / b, amin / bmin);
  std::printf("  polynomials that differ: %zu of %zu\n", differing, features.size());
  return differing == 0 ? 0 : 1;
}
