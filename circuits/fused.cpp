#include "circuits/fused.hpp"

#include <fmt/format.h>

#include <unordered_map>

#include "common/error.hpp"
#include "circuits/detail/id_table.hpp"

namespace provnn {

namespace {

struct edge_key {
  std::uint32_t phi, psi, n;
  friend bool operator==(const edge_key&, const edge_key&) = default;
};
struct edge_key_hash {
  std::size_t operator()(const edge_key& k) const noexcept {
    return static_cast<std::size_t>(
        detail::hash_combine(detail::hash_combine(detail::mix64(k.phi), k.psi), k.n));
  }
};

}  // namespace

circuit expand_fused(const circuit& c, std::vector<gate_id>* gate_map) {
  circuit out;
  out.tokens() = c.tokens();
  out.set_limits(c.limits());
  out.set_sharing(false);  // as build_circuit: the fresh edge gates make every gate above them new
  const std::size_t n = c.size();
  const auto& tt = c.tokens();

  // Scale gates used by a gate other than a fused gate (or named as a root) are kept.
  std::vector<std::uint8_t> plain_use(n, 0);
  for (std::uint32_t g = 0; g < n; ++g) {
    const gate_id id{g};
    if (c.kind(id) == gate_kind::fused) continue;
    for (auto ch : c.children(id)) plain_use[to_index(ch)] = 1;
  }
  for (const auto& r : c.roots()) plain_use[to_index(r.gate)] = 1;

  std::vector<gate_id> map(n, zero_gate);
  std::unordered_map<edge_key, gate_id, edge_key_hash> edges;
  std::vector<gate_id> kids, products;
  std::size_t next_edge = 0, next_fused = 0, next_scale = 0;
  const auto edge_gates = c.edge_gates();
  const auto scale_gates = c.scale_gates();
  out.reserve(n + 2 * c.fused_edge_count(), c.raw_children().size() + 4 * c.fused_edge_count());
  for (std::uint32_t g = 0; g < n; ++g) {
    const gate_id id{g};
    const bool is_edge = next_edge < edge_gates.size() && to_index(edge_gates[next_edge]) == g;
    const bool is_scale = next_scale < scale_gates.size() && to_index(scale_gates[next_scale]) == g;
    switch (c.kind(id)) {
      case gate_kind::zero: map[g] = zero_gate; break;
      case gate_kind::one: map[g] = one_gate; break;
      case gate_kind::token: map[g] = out.token(c.token_of(id)); break;
      case gate_kind::plus:
      case gate_kind::times: {
        if (is_scale && !plain_use[g]) break;  // lives on inside the expanded fused gates
        kids.clear();
        for (auto ch : c.children(id)) kids.push_back(map[to_index(ch)]);
        if (is_edge)
          map[g] = out.edge(kids, c.edge_contexts()[next_edge]);
        else if (is_scale)
          map[g] = out.scale(kids[0], kids[1], c.scale_units()[next_scale]);
        else
          map[g] = c.kind(id) == gate_kind::plus ? out.plus(kids) : out.times(kids);
        break;
      }
      case gate_kind::fused: {
        const auto& ctx = c.fused_contexts()[next_fused];
        const auto params = c.fused_parameters(next_fused);
        const auto ch = c.children(id);
        const gate_id phi = map[to_index(ch[0])];
        products.clear();
        for (std::size_t i = 0; i + 1 < ch.size(); ++i) {
          const gate_id s = ch[i + 1];
          const auto unit = c.scaled_unit(s);
          const auto sc = c.children(s);
          if (!unit || sc.size() != 2)
            throw error(fmt::format("expand_fused: edge {} of fused gate {} uses gate {}, which is not a scale gate "
                                    "(R ⊗ n made by circuit::scale)",
                                    i, g, to_index(s)));
          auto is_norm = [&](gate_id x) {
            return c.kind(x) == gate_kind::token && tt.kind(c.token_of(x)) == token_kind::normaliser;
          };
          // scale() stores its two children in id order; the normaliser is the token one.
          const bool first_is_n = is_norm(sc[0]) && !is_norm(sc[1]);
          if (!first_is_n && !is_norm(sc[1]))
            throw error(fmt::format("expand_fused: scale gate {} (edge {} of fused gate {}) has no normaliser token",
                                    to_index(s), i, g));
          const gate_id nn = map[to_index(first_is_n ? sc[0] : sc[1])];
          const gate_id r = map[to_index(first_is_n ? sc[1] : sc[0])];
          const gate_id ps = out.token(params[i]);
          const edge_key key{to_index(phi), to_index(ps), to_index(nn)};
          auto [it, fresh] = edges.try_emplace(key, zero_gate);
          if (fresh) {
            edge_context e;
            e.layer = ctx.layer;
            e.lower = ctx.lower;
            e.upper = *unit;
            e.term = ctx.term;
            e.parameter = params[i];
            it->second = out.edge({phi, ps, nn}, e);
          }
          products.push_back(out.times({it->second, r}));
        }
        map[g] = out.plus(products);
        ++next_fused;
        break;
      }
    }
    if (is_edge) ++next_edge;
    if (is_scale) ++next_scale;
  }
  for (const auto& r : c.roots()) {
    root x = r;
    x.gate = map[to_index(r.gate)];
    out.add_root(std::move(x));
  }
  out.metadata() = c.metadata();
  if (has_fused_gates(c)) out.metadata()["layout"] = "plain, expanded from fused";
  out.set_sharing(c.sharing());
  if (gate_map) *gate_map = std::move(map);
  return out;
}

void require_edge_gates(const circuit& c, std::string_view what) {
  if (!has_fused_gates(c)) return;
  throw unsupported_error(fmt::format(
      "{} need the circuit's edge gates, and this circuit keeps its edges inside fused gates (layout 'fused'); "
      "expand it with expand_fused() first (the command line and Python do), or build it with the plain layout",
      what));
}

circuit with_edge_gates(circuit c) {
  if (!has_fused_gates(c)) return c;
  return expand_fused(c);
}

}  // namespace provnn
