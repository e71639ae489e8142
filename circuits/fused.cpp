#include "circuits/fused.hpp"

#include <fmt/format.h>

#include <unordered_map>
#include <utility>
#include <vector>

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
    if (c.kind(id) == gate_kind::fused || c.kind(id) == gate_kind::structured) continue;
    for (auto ch : c.children(id)) plain_use[to_index(ch)] = 1;
  }
  for (const auto& r : c.roots()) plain_use[to_index(r.gate)] = 1;

  std::vector<gate_id> map(n, zero_gate);
  std::unordered_map<edge_key, gate_id, edge_key_hash> edges;
  std::vector<gate_id> kids, products;
  std::size_t next_edge = 0, next_fused = 0, next_scale = 0;
  const auto edge_gates = c.edge_gates();
  const auto scale_gates = c.scale_gates();
  const std::size_t implied = c.fused_edge_count() + c.structured_edge_count();
  out.reserve(n + 2 * implied, c.raw_children().size() + 4 * implied);
  // The edges (ψ_i, S_i) of the fused or structured gate g, as ⊕_i E_i ⊗ R_i.
  std::vector<std::pair<token_index, gate_id>> edge_list;
  std::size_t next_structured = 0;
  auto expand_edges = [&](std::uint32_t g, gate_id phi, const fused_context& ctx) {
    products.clear();
    for (std::size_t i = 0; i < edge_list.size(); ++i) {
      const gate_id s = edge_list[i].second;
      const auto unit = c.scaled_unit(s);
      const auto sc = c.children(s);
      if (!unit || sc.size() != 2)
        throw error(fmt::format("expand_fused: edge {} of {} gate {} uses gate {}, which is not a scale gate "
                                "(R ⊗ n made by circuit::scale)",
                                i, to_string(c.kind(gate_id{g})), g, to_index(s)));
      auto is_norm = [&](gate_id x) {
        return c.kind(x) == gate_kind::token && tt.kind(c.token_of(x)) == token_kind::normaliser;
      };
      // scale() stores its two children in id order; the normaliser is the token one.
      const bool first_is_n = is_norm(sc[0]) && !is_norm(sc[1]);
      if (!first_is_n && !is_norm(sc[1]))
        throw error(fmt::format("expand_fused: scale gate {} (edge {} of {} gate {}) has no normaliser token",
                                to_index(s), i, to_string(c.kind(gate_id{g})), g));
      const gate_id nn = map[to_index(first_is_n ? sc[0] : sc[1])];
      const gate_id r = map[to_index(first_is_n ? sc[1] : sc[0])];
      const token_index param = edge_list[i].first;
      const gate_id ps = out.token(param);
      const edge_key key{to_index(phi), to_index(ps), to_index(nn)};
      auto [it, fresh] = edges.try_emplace(key, zero_gate);
      if (fresh) {
        edge_context e;
        e.layer = ctx.layer;
        e.lower = ctx.lower;
        e.upper = *unit;
        e.term = ctx.term;
        e.parameter = param;
        it->second = out.edge({phi, ps, nn}, e);
      }
      products.push_back(out.times({it->second, r}));
    }
    return out.plus(products);
  };
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
        const auto params = c.fused_parameters(next_fused);
        const auto ch = c.children(id);
        edge_list.clear();
        for (std::size_t i = 0; i + 1 < ch.size(); ++i) edge_list.emplace_back(params[i], ch[i + 1]);
        map[g] = expand_edges(g, map[to_index(ch[0])], c.fused_contexts()[next_fused]);
        ++next_fused;
        break;
      }
      case gate_kind::structured: {
        const conv_stage& st = c.conv_stages()[c.structured_stages()[next_structured]];
        const std::uint32_t lower = c.structured_lowers()[next_structured];
        edge_list.clear();
        st.edges_of(lower, [&](std::size_t k, std::size_t p) {
          edge_list.emplace_back(static_cast<token_index>(st.parameters + p), st.scaled[k]);
        });
        map[g] = expand_edges(g, map[to_index(c.children(id)[0])], fused_context{st.layer, lower, st.term});
        ++next_structured;
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
  if (has_fused_gates(c)) {
    const auto layout = c.metadata().find("layout");
    out.metadata()["layout"] = "plain, expanded from " + (layout != c.metadata().end() ? layout->second : std::string("fused"));
  }
  out.set_sharing(c.sharing());
  if (gate_map) *gate_map = std::move(map);
  return out;
}

void require_edge_gates(const circuit& c, std::string_view what) {
  if (!has_fused_gates(c)) return;
  throw unsupported_error(fmt::format(
      "{} need the circuit's edge gates, and this circuit keeps its edges inside fused or structured gates (layout "
      "'fused' or 'structured'); "
      "expand it with expand_fused() first (the command line and Python do), or build it with the plain layout",
      what));
}

circuit with_edge_gates(circuit c) {
  if (!has_fused_gates(c)) return c;
  return expand_fused(c);
}

}  // namespace provnn
