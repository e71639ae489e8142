// Random small layered networks shaped like LRP circuits, with an independent brute-force
// path enumeration as the reference (shared by the circuit tests).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/evaluate.hpp"

namespace provnn::testing {

/// A layered network: level 0 are input features, level L the targets. Edge (l, j, k, m)
/// links unit j of level l to unit k of level l+1 in term m, with factors φ_m(unit j),
/// ψ_m(w_jk), n_k^m.
struct layered_net {
  struct edge {
    std::uint32_t level, lower, upper, term;
    std::vector<token_index> factors;  // tokens, multiplied in this order
    std::size_t circuit_edge = 0;      // position in circuit::edge_gates()
  };
  std::vector<std::uint32_t> sizes;
  std::vector<edge> edges;
  std::vector<token_index> targets;  // r[y] per unit of the top level
  circuit c;
  std::vector<gate_id> feature_roots;  // R(x[j]) per input feature
};

/// Random net with `sizes` units per level, each possible (j,k) edge present with
/// probability `density`, a second term (x⁺, W⁺, n#1) with probability `second_term`.
/// Natural token values are random reals with some exact zeros.
inline layered_net random_layered(std::mt19937& rng, std::vector<std::uint32_t> sizes, double density = 0.7,
                                  double second_term = 0.3) {
  layered_net net;
  net.sizes = sizes;
  auto& c = net.c;
  auto& tt = c.tokens();
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::bernoulli_distribution has_edge(density), has_second(second_term), zero(0.1);
  auto value = [&] { return zero(rng) ? 0.0 : u(rng); };
  const auto levels = static_cast<std::uint32_t>(sizes.size());
  // R gates per unit of the current upper level, built from the top down.
  std::vector<gate_id> upper_r;
  for (std::uint32_t y = 0; y < sizes.back(); ++y) {
    const auto t = tt.intern(token_kind::target, token_variant::plain, 0, {y});
    tt.set_value(t, value());
    net.targets.push_back(t);
    upper_r.push_back(c.token(t));
  }
  for (std::uint32_t l = levels - 1; l-- > 0;) {
    const std::uint32_t layer = l + 1;
    const auto unit_kind = l == 0 ? token_kind::input : token_kind::activation;
    const std::uint32_t unit_layer = l == 0 ? 0 : l;
    std::vector<gate_id> lower_r;
    for (std::uint32_t j = 0; j < sizes[l]; ++j) {
      std::vector<gate_id> terms;
      for (std::uint32_t k = 0; k < sizes[l + 1]; ++k) {
        if (!has_edge(rng)) continue;
        const std::uint32_t nterms = has_second(rng) ? 2 : 1;
        for (std::uint32_t m = 0; m < nterms; ++m) {
          const auto v = m == 0 ? token_variant::plain : token_variant::pos;
          const auto phi = tt.intern(unit_kind, v, unit_layer, {j});
          const auto psi = tt.intern(token_kind::parameter, v, layer, {k, j});
          const auto n = tt.intern(token_kind::normaliser, token_variant::plain, layer, {k}, m);
          for (auto t : {phi, psi, n})
            if (tt.value(t) == 0.0) tt.set_value(t, value());
          const auto e = c.edge({c.token(phi), c.token(psi), c.token(n)}, {layer, j, k, m, psi});
          net.edges.push_back({l, j, k, m, {phi, psi, n}, c.edge_gates().size() - 1});
          terms.push_back(c.times({e, upper_r[k]}));
        }
      }
      lower_r.push_back(c.plus(terms));
    }
    upper_r = std::move(lower_r);
  }
  net.feature_roots = upper_r;
  for (std::uint32_t j = 0; j < sizes[0]; ++j)
    c.add_root({fmt::format("R(x[{}])", j), upper_r[j], root_kind::feature, 0, j, no_target});
  return net;
}

/// ⊕ over every path from input feature j to a target of ⊗ over its edges of
/// edge_value(edge) ⊗ ν(r[y]) — enumerated explicitly, one path at a time.
template <semiring S>
values_of<S> brute_force_paths(
    const layered_net& net, const S& s, const values_of<S>& valuation,
    const std::function<typename S::value_type(const layered_net::edge&)>& edge_value) {
  using V = typename S::value_type;
  const auto levels = static_cast<std::uint32_t>(net.sizes.size());
  values_of<S> out;
  std::vector<const layered_net::edge*> path;
  std::function<void(std::uint32_t, std::uint32_t, V&)> walk = [&](std::uint32_t level, std::uint32_t unit, V& acc) {
    if (level == levels - 1) {
      V p = s.one();
      for (auto* e : path) p = s.times(p, edge_value(*e));
      p = s.times(p, valuation[net.targets[unit]]);
      acc = s.plus(acc, p);
      return;
    }
    for (const auto& e : net.edges)
      if (e.level == level && e.lower == unit) {
        path.push_back(&e);
        walk(level + 1, e.upper, acc);
        path.pop_back();
      }
  };
  for (std::uint32_t j = 0; j < net.sizes[0]; ++j) {
    V acc = s.zero();
    walk(0, j, acc);
    out.push_back(acc);
  }
  return out;
}

/// The product of an edge's factor tokens (the path semantics without annotation).
template <semiring S>
std::function<typename S::value_type(const layered_net::edge&)> token_product(
    const S& s, const values_of<S>& valuation) {
  return [&s, &valuation](const layered_net::edge& e) {
    typename S::value_type p = s.one();
    for (auto t : e.factors) p = s.times(p, valuation[t]);
    return p;
  };
}

}  // namespace provnn::testing
