#include "circuits/expand.hpp"

#include <fmt/format.h>

#include "circuits/evaluate.hpp"
#include "common/error.hpp"

namespace provnn {

polynomial expand(const circuit& c, gate_id g, std::size_t max_monomials, std::string what) {
  PROVNN_ASSERT(to_index(g) < c.size());
  if (what.empty()) what = fmt::format("gate {}", to_index(g));
  nx_semiring s;
  const auto v = lift_valuation(c, s);
  const gate_id gates[] = {g};
  auto check = [&](std::uint32_t at, const polynomial& p) {
    if (p.size() > max_monomials)
      throw limit_error(fmt::format(
          "N[X] expansion of {} exceeds the limit of {} monomials (gate {} of its cone already has {}); "
          "raise the limit (--max-monomials N) or ask for the leading monomials only (--top K)",
          what, max_monomials, at, p.size()));
  };
  return std::move(detail::evaluate_gates_hooked(c, s, std::span<const polynomial>(v), gates, nullptr, check)[0]);
}

std::vector<polynomial> expand(const circuit& c, std::span<const gate_id> gates, std::size_t max_monomials,
                               std::string what) {
  for (auto g : gates) PROVNN_ASSERT(to_index(g) < c.size());
  if (what.empty()) what = fmt::format("{} gates", gates.size());
  nx_semiring s;
  const auto v = lift_valuation(c, s);
  auto check = [&](std::uint32_t at, const polynomial& p) {
    if (p.size() > max_monomials)
      throw limit_error(fmt::format(
          "N[X] expansion of {} exceeds the limit of {} monomials (gate {} of their cone already has {}); "
          "raise the limit (--max-monomials N) or ask for the leading monomials only (--top K)",
          what, max_monomials, at, p.size()));
  };
  return detail::evaluate_gates_hooked(c, s, std::span<const polynomial>(v), gates, nullptr, check);
}

polynomial expand_root(const circuit& c, std::string_view root_name, std::size_t max_monomials) {
  const root* r = c.find_root(root_name);
  if (!r) throw error(fmt::format("circuit has no root named '{}' (roots look like R(x[0,3,4]))", root_name));
  return expand(c, r->gate, max_monomials, fmt::format("root '{}'", r->name));
}

topk_list top_monomials(const circuit& c, gate_id g, std::size_t k, const edge_annotation* theta) {
  PROVNN_ASSERT(to_index(g) < c.size());
  topk_semiring s(k);
  const auto v = lift_valuation(c, s);
  const gate_id gates[] = {g};
  return evaluate_gates(c, s, std::span<const packed_topk>(v), gates, theta)[0];
}

}  // namespace provnn
