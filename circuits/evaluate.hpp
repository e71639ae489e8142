// Evaluation of a circuit in any semiring: one forward loop over gate ids (id order is
// topological), no recursion, no graph search.
//
// Two ways to give tokens and edges values in S (DESIGN §3):
//   * a token valuation: one S value per token. lift_valuation() gives each semiring's
//     standard lifting of the stored natural real valuation (s.lift(t, ν_ℝ(t)));
//     override_tokens() replaces tokens chosen by exact name or glob pattern, the value
//     given as a real number and lifted the same way (0 deletes a token in every semiring
//     whose lifting maps 0 to zero).
//   * an edge annotation Θ (edge_annotation.hpp): edge gates are valued by Θ(d_jk) — 0/1,
//     or a real number mapped through s.from_real — instead of the product of their factors.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "circuits/circuit.hpp"
#include "circuits/detail/conv_kernel.hpp"
#include "circuits/edge_annotation.hpp"
#include "circuits/fused.hpp"
#include "common/error.hpp"
#include "semirings/boolean.hpp"
#include "semirings/counting.hpp"
#include "semirings/max_plus.hpp"
#include "semirings/real.hpp"
#include "semirings/viterbi.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

/// The type that stores values of S in evaluation arrays (value_storage, semiring.hpp).
template <semiring S>
using stored_value_t = typename value_storage<typename S::value_type>::type;

/// One value per gate or per token, as evaluation produces and consumes them.
template <semiring S>
using values_of = std::vector<stored_value_t<S>>;

/// One override of the token valuation: every token whose name matches `pattern` (exact name
/// or glob, see tokens.hpp) gets the real value `value`, lifted into the semiring.
struct token_override {
  std::string pattern;
  double value = 0.0;
};

/// The semiring's standard lifting of the circuit's natural real valuation: s.lift(t, ν_ℝ(t))
/// for every token t. O(tokens).
template <semiring S>
values_of<S> lift_valuation(const circuit& c, const S& s) {
  const auto& tt = c.tokens();
  values_of<S> v;
  v.reserve(tt.size());
  for (token_index t = 0; t < tt.size(); ++t) v.push_back(s.lift(t, tt.value(t)));
  return v;
}

/// Applies overrides in order (a later one wins): every token matching the pattern gets
/// s.lift(t, value). O(overrides · tokens · |name|). Throws provnn::error naming the pattern
/// when it matches no token (a typo would otherwise silently change nothing).
/// Precondition: valuation.size() == c.tokens().size().
template <semiring S>
void override_tokens(const circuit& c, const S& s, values_of<S>& valuation, std::span<const token_override> overrides) {
  PROVNN_ASSERT(valuation.size() == c.tokens().size());
  for (const auto& o : overrides) {
    std::vector<token_index> hits;
    if (o.pattern.find_first_of("*?") == std::string::npos) {
      if (auto t = c.tokens().find(o.pattern)) hits.push_back(*t);
    } else {
      hits = c.tokens().match(o.pattern);
    }
    if (hits.empty())
      throw error(fmt::format("valuation: '{}' matches no token of the circuit (names look like x[0,3,4], "
                              "W1[3,4], b1[3], a2[7], n1[3]#0, r[7]; '*' and '?' are wildcards)",
                              o.pattern));
    for (auto t : hits) valuation[t] = s.lift(t, o.value);
  }
}

namespace detail {

struct no_gate_hook {
  template <class V>
  void operator()(std::uint32_t, const V&) const noexcept {}
};

/// The images in S of an annotation's per-edge values. Throws unsupported_error when the
/// annotation produces real numbers and S cannot take them.
template <semiring S>
values_of<S> annotation_values(const S& s, const edge_annotation& theta) {
  values_of<S> out;
  out.reserve(theta.size());
  for (std::size_t i = 0; i < theta.size(); ++i) {
    switch (theta.kind(i)) {
      case edge_value_kind::zero: out.push_back(s.zero()); break;
      case edge_value_kind::one: out.push_back(s.one()); break;
      case edge_value_kind::real:
        if constexpr (real_embeddable<S>) {
          out.push_back(s.from_real(theta.real(i)));
        } else {
          throw unsupported_error(fmt::format(
              "edge annotation '{}' gives edges real values, which semiring '{}' cannot take "
              "(it has no from_real); use a threshold annotation with it",
              theta.name(), s.name()));
        }
        break;
    }
  }
  return out;
}

/// Marks the cone of `roots` (every gate a root depends on). With an annotation, the factors
/// of edge gates are not needed (Θ values the edge), so the cone stops there.
std::vector<std::uint8_t> cone_mask(const circuit& c, std::span<const gate_id> roots, bool stop_at_edges);

/// ⊕ of the values of children[b, e). The real semiring gets an inlined compensated sum
/// (the same Neumaier algorithm as real_semiring::sum) so no gather buffer is needed.
template <semiring S>
typename S::value_type plus_of(const S& s, const stored_value_t<S>* val, const gate_id* ch, std::uint32_t b,
                               std::uint32_t e, std::vector<typename S::value_type>& buf) {
  using V = typename S::value_type;
  if (b == e) [[unlikely]]
    return s.zero();
  if constexpr (std::is_same_v<S, real_semiring>) {
    double sum = 0.0, comp = 0.0;
    for (std::uint32_t i = b; i < e; ++i) {
      const double x = val[to_index(ch[i])];
      // Branch-free form of Neumaier's step: the order of a wide sum is data-dependent,
      // so a branch on |sum| >= |x| mispredicts.
      const double t = sum + x;
      const bool sum_bigger = std::fabs(sum) >= std::fabs(x);
      const double big = sum_bigger ? sum : x, small = sum_bigger ? x : sum;
      comp += (big - t) + small;
      sum = t;
    }
    return sum + comp;
  } else if constexpr (has_nary_sum<S>) {
    buf.clear();
    for (std::uint32_t i = b; i < e; ++i) buf.push_back(val[to_index(ch[i])]);
    return s.sum(std::span<const V>(buf.data(), buf.size()));
  } else {
    V acc = val[to_index(ch[b])];
    if constexpr (has_property<S>(absorptive) && std::equality_comparable<V>) {
      const V one = s.one();  // made once: PosBool's allocates
      for (std::uint32_t i = b + 1; i < e && !(acc == one); ++i) acc = s.plus(acc, val[to_index(ch[i])]);  // 1 ⊕ a = 1
    } else {
      for (std::uint32_t i = b + 1; i < e; ++i) acc = s.plus(acc, val[to_index(ch[i])]);
    }
    return acc;
  }
}

template <semiring S>
typename S::value_type times_of(const S& s, const stored_value_t<S>* val, const gate_id* ch, std::uint32_t b,
                                std::uint32_t e) {
  using V = typename S::value_type;
  if (b == e) [[unlikely]]
    return s.one();  // an edge gate without factors
  if constexpr (std::is_same_v<S, real_semiring>) {
    double p = val[to_index(ch[b])];
    for (std::uint32_t i = b + 1; i < e; ++i) p *= val[to_index(ch[i])];
    return p;
  } else {
    V acc = val[to_index(ch[b])];
    for (std::uint32_t i = b + 1; i < e; ++i) acc = s.times(acc, val[to_index(ch[i])]);
    return acc;
  }
}

/// Counting's fast path (issue 5): the same loop in 64-bit integers, every ⊕ and ⊗ checked
/// against 2^63, the largest count a packed_count holds inline. Path counts of LRP circuits
/// usually fit (2.35·10⁷ per pixel on 784-300-100-10); when one does not, or the valuation
/// holds a boxed count, the caller evaluates again in big integers. Exact either way.
///
/// Tokens are read from the packed valuation by their raw bits: a token gate checks them
/// (from_stored), and a fused gate's ψ_i enter only through products ψ_i ⊗ S_i, where a
/// boxed ψ (raw ≥ 2^63) either meets S_i = 0 — and the product is 0, exactly as in big
/// integers — or makes the sum ≥ 2^63, which is caught. That bound is the one correctness
/// needs; gate values past it would still be exact below 2^64, and ⊕ and ⊗ keep the same
/// bound only so that every value the loop holds is an inline count.
struct checked_u63_semiring {
  using value_type = std::uint64_t;
  static constexpr std::uint32_t properties = commutative;
  static constexpr std::uint64_t limit = packed_count::box_tag;
  mutable bool overflow = false;
  value_type zero() const { return 0; }
  value_type one() const { return 1; }
  value_type plus(value_type a, value_type b) const {
    value_type r;
    overflow = __builtin_add_overflow(a, b, &r) || r >= limit || overflow;
    return r;
  }
  value_type times(value_type a, value_type b) const {
    value_type r;
    overflow = __builtin_mul_overflow(a, b, &r) || r >= limit || overflow;
    return r;
  }
  value_type from_stored(const packed_count& x) const {
    overflow = x.boxed() || overflow;
    return x.raw();
  }
  value_type lift(token_index, double v) const { return v != 0.0 ? 1 : 0; }
  std::string name() const { return "counting (64-bit fast path)"; }
  std::string format(value_type a, const token_namer& = {}) const { return std::to_string(a); }
};

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;  // __extension__: GCC and Clang, no -Wpedantic warning
#endif

/// A token's value as the loop stores it: itself, or through the semiring's from_stored.
template <semiring S, class T>
decltype(auto) token_value(const S& s, const T& x) {
  if constexpr (requires { s.from_stored(x); })
    return s.from_stored(x);
  else
    return (x);
}

/// The scaled children S_i of a fused gate, and their values gathered into one array once a
/// later gate has the same ones (circuit::fused_same_children(): a dense layer's lower units
/// usually do, 967 of the 970 fused gates of 784-300-100-10). A semiring with a run kernel
/// (has_run_sum) then reads ψ and S as two contiguous arrays instead of an index and a
/// scattered value per edge. Gate values never change once computed, so the copy stays true
/// for the whole loop; a masked loop may skip gates in between, hence the walk over their flags.
template <class V>
struct gathered_children {
  static constexpr std::uint32_t min_children = 8;  // below this, gathering costs more
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  const std::uint8_t* same = nullptr;  // the circuit's fused_same_children()
  std::size_t last = none;             // the fused gate whose children these are (or a later one with the same)
  const gate_id* children = nullptr;
  std::uint32_t n = 0;
  bool gathered = false;
  std::vector<V> values;
  std::uint64_t bits = 0;  // for 64-bit counts: the OR of the values (a bound on each)

  /// Whether fused gate i has the remembered children (then it becomes `last`).
  bool matches(std::size_t i, std::uint32_t m) noexcept {
    if (m < min_children || last == none || i <= last) return false;
    for (std::size_t k = last + 1; k <= i; ++k)
      if (!same[k]) return false;
    last = i;
    return true;
  }
  void remember(std::size_t i, const gate_id* sc, std::uint32_t m) noexcept {
    last = i;
    children = sc;
    n = m;
    gathered = false;
  }
  /// values[i] = f(val[children[i]]): a summary of each child's value (top-k: its best
  /// |score|, the fused kernel's bound) rather than a copy of it.
  template <class T, class F>
  void gather_with(const T* val, F&& f) {
    values.resize(n);
    for (std::uint32_t i = 0; i < n; ++i) values[i] = f(val[to_index(children[i])]);
    gathered = true;
  }
  void gather(const V* val) {
    values.resize(n);
    for (std::uint32_t i = 0; i < n; ++i) values[i] = val[to_index(children[i])];
    if constexpr (std::is_same_v<V, std::uint64_t>) {
      bits = 0;
      for (const V v : values) bits |= v;
    }
    gathered = true;
  }
};

/// ψ_i of a fused gate whose parameter tokens are a run: base[i].
template <class T>
struct run_of {
  const T* base;
  const T& operator()(std::size_t i) const noexcept { return base[i]; }
};

/// A fused gate's value by the semiring's own kernel (has_fused_sum: top-k, pruned, monomials
/// only for survivors), written into the gate's slot `out`. The accessors return references
/// into the arrays, in the stored type (top-k's packed values: the best score without a heap
/// read). A kernel that reads a bound of each S_i (has_fused_bound) gets them gathered into
/// one array when the gate has the previous fused gate's children (`bounds`, as fused_of's
/// run kernels get their values), instead of an index and a scattered value per edge.
template <semiring S, class Psi>
void fused_into(const S& s, stored_value_t<S>& out, const stored_value_t<S>* val, const gate_id* ch, std::uint32_t b,
                std::uint32_t e, Psi&& psi, gathered_children<double>& bounds, std::size_t fused_index) {
  using T = stored_value_t<S>;
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(psi(0))>, T>);
  const gate_id* sc = ch + b + 1;
  const std::uint32_t n = e - b - 1;
  const double* sigma_bounds = nullptr;
  if constexpr (has_fused_bound<S>) {
    if (bounds.matches(fused_index, n)) {
      if (!bounds.gathered) bounds.gather_with(val, [&s](const T& v) { return s.fused_bound(v); });
      sigma_bounds = bounds.values.data();
    } else {
      bounds.remember(fused_index, sc, n);
    }
  }
  s.fused_sum_into(
      out, val[to_index(ch[b])], n, [&](std::size_t i) -> const T& { return psi(i); },
      [&](std::size_t i) -> const T& { return val[to_index(sc[i])]; }, sigma_bounds);
}

/// A fused gate φ ⊗ ⊕_i (ψ_i ⊗ S_i): ch[b] is φ, ch[b+1, e) the S_i, psi(i) the value of ψ_i
/// (a token's, from the valuation: a contiguous run, run_of, or a listed token). When ψ are a
/// run and S the same as the previous gate's, semirings with a run kernel use it (real,
/// max-plus, Viterbi: vectors of four lanes). Otherwise the real semiring gets a dot product with four
/// accumulators (no compensation: the same rounding class as the dense LRP it reproduces).
template <semiring S, class Psi>
typename S::value_type fused_of(const S& s, const stored_value_t<S>* val, const gate_id* ch, std::uint32_t b,
                                std::uint32_t e, Psi&& psi, std::vector<typename S::value_type>& buf,
                                gathered_children<stored_value_t<S>>& same, std::size_t fused_index) {
  using V = typename S::value_type;
  const gate_id* sc = ch + b + 1;
  const std::uint32_t n = e - b - 1;
  if constexpr (has_run_sum<S> && std::is_same_v<std::remove_cvref_t<Psi>, run_of<V>>) {
    if (same.matches(fused_index, n)) {
      if (!same.gathered) same.gather(val);
      return s.times(val[to_index(ch[b])], s.run_sum(psi.base, same.values.data(), n));
    }
    same.remember(fused_index, sc, n);
  }
  if constexpr (std::is_same_v<S, real_semiring>) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    std::uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
      a0 += psi(i) * val[to_index(sc[i])];
      a1 += psi(i + 1) * val[to_index(sc[i + 1])];
      a2 += psi(i + 2) * val[to_index(sc[i + 2])];
      a3 += psi(i + 3) * val[to_index(sc[i + 3])];
    }
    for (; i < n; ++i) a0 += psi(i) * val[to_index(sc[i])];
    return val[to_index(ch[b])] * ((a0 + a1) + (a2 + a3));
  } else if constexpr (std::is_same_v<S, checked_u63_semiring>) {
    if constexpr (std::is_same_v<std::remove_cvref_t<Psi>, run_of<packed_count>>) {
      // A dense layer's gate whose ψ counts are all 0 or 1 (a weight present or deleted:
      // every lifted weight) over gathered counts whose bound times n fits 64 bits: the sum
      // of the σ_i whose ψ_i is 1 cannot wrap, needs no product and no check per edge, and
      // φ·sum is checked against 2^63 as everywhere (a sum past it makes φ·sum pass it too,
      // unless φ = 0, whose product 0 is exact).
      if (same.matches(fused_index, n)) {
        if (!same.gathered) same.gather(val);
        std::uint64_t psi_bits = 0;
        for (std::uint32_t i = 0; i < n; ++i) psi_bits |= psi.base[i].raw();
        std::uint64_t most;
        if (psi_bits <= 1 && !__builtin_mul_overflow(same.bits, std::uint64_t{n}, &most)) {
          const std::uint64_t* v = same.values.data();
          std::uint64_t acc = 0;
          for (std::uint32_t i = 0; i < n; ++i) acc += v[i] & (std::uint64_t{0} - psi.base[i].raw());
          std::uint64_t r;
          if (__builtin_mul_overflow(val[to_index(ch[b])], acc, &r) || r >= s.limit) s.overflow = true;
          return r;
        }
      } else {
        same.remember(fused_index, sc, n);
      }
    }
#ifdef __SIZEOF_INT128__
    // Each product in 128 bits: its high half must be 0, then n < 2^32 products of < 2^64
    // cannot wrap the 128-bit sum, which must end below 2^63. (≈ 15 % faster than two
    // overflow flags per edge on 784-1000-1000-1000-10.) The flags stay in registers; the
    // semiring's flag is memory.
    std::uint64_t high = 0;
    u128 acc = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const u128 p = static_cast<u128>(psi(i).raw()) * val[to_index(sc[i])];
      high |= static_cast<std::uint64_t>(p >> 64);
      acc += static_cast<std::uint64_t>(p);
    }
    const u128 r = static_cast<u128>(val[to_index(ch[b])]) * static_cast<std::uint64_t>(acc);
    if (high != 0 || acc >= s.limit || r >= s.limit) s.overflow = true;
    return static_cast<std::uint64_t>(r);
#else
    bool of = false;
    std::uint64_t acc = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint64_t p;
      of |= __builtin_mul_overflow(psi(i).raw(), val[to_index(sc[i])], &p);
      of |= __builtin_add_overflow(acc, p, &acc);
    }
    std::uint64_t r;
    of |= __builtin_mul_overflow(val[to_index(ch[b])], acc, &r);
    if (of || acc >= s.limit || r >= s.limit) s.overflow = true;
    return r;
#endif
  } else if constexpr (std::is_trivially_copyable_v<V> && sizeof(V) <= 16 && !has_nary_sum<S>) {
    // Small plain values (Boolean, max-plus, Viterbi, tropical, fuzzy, …): four independent
    // ⊕ chains, as for ℝ, so a max or an or does not wait for the previous one (⊕ is
    // associative and commutative, so the grouping is free).
    // An absorptive ⊕ (1 ⊕ a = 1: Boolean, fuzzy, …) stops at the first block whose sum is 1;
    // in a Boolean LRP circuit that is usually the first, so a gate costs O(1), not O(n).
    V a0 = s.zero(), a1 = s.zero(), a2 = s.zero(), a3 = s.zero();
    std::uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
      a0 = s.plus(a0, s.times(psi(i), val[to_index(sc[i])]));
      a1 = s.plus(a1, s.times(psi(i + 1), val[to_index(sc[i + 1])]));
      a2 = s.plus(a2, s.times(psi(i + 2), val[to_index(sc[i + 2])]));
      a3 = s.plus(a3, s.times(psi(i + 3), val[to_index(sc[i + 3])]));
      if constexpr (has_property<S>(absorptive) && std::equality_comparable<V>) {
        if (const V one = s.one(); s.plus(s.plus(a0, a1), s.plus(a2, a3)) == one)
          return s.times(val[to_index(ch[b])], one);
      }
    }
    for (; i < n; ++i) a0 = s.plus(a0, s.times(psi(i), val[to_index(sc[i])]));
    return s.times(val[to_index(ch[b])], s.plus(s.plus(a0, a1), s.plus(a2, a3)));
  } else if constexpr (has_nary_sum<S>) {
    buf.clear();
    for (std::uint32_t i = 0; i < n; ++i) buf.push_back(s.times(psi(i), val[to_index(sc[i])]));
    return s.times(val[to_index(ch[b])], s.sum(std::span<const V>(buf.data(), buf.size())));
  } else {
    V acc = s.times(psi(0), val[to_index(sc[0])]);
    for (std::uint32_t i = 1; i < n; ++i) acc = s.plus(acc, s.times(psi(i), val[to_index(sc[i])]));
    return s.times(val[to_index(ch[b])], acc);
  }
}

// Boolean, max-plus, Viterbi: the stage as the same dense product in the semiring
// (conv_transposed_semiring), the weights of absent edges and the values of units without
// a scale gate (or outside the cone) at zero. Scalar operations only: −∞ + x and 0 · x
// are what times() gives wherever max can see them (as in the semirings' run_sum).
template <class S, class = void>
struct dense_op : std::false_type {};
template <class S>
struct dense_op<S, std::enable_if_t<std::is_same_v<S, max_plus_semiring>>> : std::true_type {
  using scalar = double;
  static constexpr double zero = max_plus_semiring::minus_infinity;
  static double plus(double a, double b) noexcept { return a < b ? b : a; }
  static double times(double a, double b) noexcept { return a + b; }
};
template <class S>
struct dense_op<S, std::enable_if_t<std::is_same_v<S, viterbi_semiring>>> : std::true_type {
  using scalar = double;
  static constexpr double zero = 0.0;
  static double plus(double a, double b) noexcept { return a < b ? b : a; }
  static double times(double a, double b) noexcept { return a * b; }
};
template <class S>
struct dense_op<S, std::enable_if_t<std::is_same_v<S, boolean_semiring>>> : std::true_type {
  using scalar = std::uint8_t;
  static constexpr std::uint8_t zero = 0;
  static std::uint8_t plus(std::uint8_t a, std::uint8_t b) noexcept { return a | b; }
  static std::uint8_t times(std::uint8_t a, std::uint8_t b) noexcept { return a & b; }
};


/// The sums ⊕_i ψ_i ⊗ S_i of structured gates (DESIGN §5), a whole conv stage at a time: at
/// its first structured gate a stage is computed by one pass over its upper units k that have
/// a scale gate, adding ψ_p ⊗ S_k into every lower unit of k's receptive field that has a
/// structured gate to be evaluated — the active edges only, each once, with no per-edge
/// storage. ⊕ is commutative, so the order (k-major rather than a fused gate's j-major) gives
/// the same value in every semiring; in ℝ the same up to rounding.
template <semiring S, class T>
class structured_sums {
 public:
  using V = typename S::value_type;
  /// mask: the gates being evaluated (cone_mask), or null for all. A masked scale gate
  /// outside the mask is left out of the sums: no wanted lower unit has an edge to it.
  structured_sums(const circuit& c, const S& s, const T* tv, const std::uint8_t* mask, std::uint32_t end)
      : c_(c), s_(s), tv_(tv), mask_(mask), acc_(c.conv_stages().size()), has_(c.conv_stages().size()),
        want_(c.conv_stages().size()), kept_(c.conv_stages().size()), gates_left_(c.conv_stages().size(), 0),
        computed_(c.conv_stages().size(), 0) {
    const auto gates = c.structured_gates();
    for (std::size_t i = 0; i < gates.size() && to_index(gates[i]) < end; ++i) {
      if (mask && !mask[to_index(gates[i])]) continue;
      auto& w = want_[c.structured_stages()[i]];
      if (w.empty()) w.assign(c.conv_stages()[c.structured_stages()[i]].geometry.inputs(), 0);
      auto& n = w[c.structured_lowers()[i]];
      n += n < 255;  // how many structured gates read this sum (255: many)
      ++gates_left_[c.structured_stages()[i]];
    }
  }
  /// The sum of structured gate number i (in structured_gates() order): moved out by the
  /// last gate that reads it, copied for the others (two gates of one lower unit and stage).
  V take(std::size_t i, const stored_value_t<S>* val) {
    const std::uint32_t st = c_.structured_stages()[i], j = c_.structured_lowers()[i];
    if (!computed_[st]) compute(st, val);
    PROVNN_ASSERT(!acc_[st].empty());  // (a stage kept by term_sums is read by times_into only)
    if (!has_[st].empty() && !has_[st][j]) return s_.zero();
    auto& readers = want_[st][j];
    if (readers > 1) {
      readers -= readers < 255;
      return acc_[st][j];
    }
    V out = std::move(acc_[st][j]);
    acc_[st][j] = s_.zero();  // (values that own memory give it back)
    return out;
  }
  /// out = φ ⊗ the sum of structured gate number i, written in place by the semiring's
  /// term_sums when its stage kept one (has_term_sums and the stage fits); false otherwise
  /// (then take() has the sum). The stage's term_sums lives until its last structured gate
  /// has read it: it reads the scale gates' values in place until then.
  bool times_into(std::size_t i, const stored_value_t<S>* val, stored_value_t<S>& out, const stored_value_t<S>& phi) {
    if constexpr (has_term_sums<S>) {
      const std::uint32_t st = c_.structured_stages()[i];
      if (!computed_[st]) compute(st, val);
      auto& kept = kept_[st];
      if (!kept) return false;
      PROVNN_ASSERT(gates_left_[st] > 0);
      kept->times_into(out, phi, c_.structured_lowers()[i]);
      if (--gates_left_[st] == 0) kept.reset();
      return true;
    }
    return false;
  }

 private:
  void compute(std::uint32_t stage, const stored_value_t<S>* val) {
    const conv_stage& st = c_.conv_stages()[stage];
    const conv_geometry& g = st.geometry;
    const std::uint8_t* want = want_[stage].data();
    auto& acc = acc_[stage];
    constexpr bool real = std::is_same_v<S, real_semiring>;
    computed_[stage] = 1;
    // A semiring with term_sums keeps each unit's sum itself when the stage fits its budget
    // (then the stage needs no sums here).
    constexpr bool bounded = has_term_sums<S>;
    bool keeps = false;
    if constexpr (bounded) keeps = term_sums_t::fits(s_, g.inputs());
    if (!keeps) acc.assign(g.inputs(), s_.zero());
    if constexpr (real) {
      if (dense_real(st, val, acc.data())) return;
    } else if constexpr (dense_op<S>::value) {
      if (dense_semiring(st, val, acc.data())) return;
    } else if constexpr (std::is_same_v<S, checked_u63_semiring>) {
      if (dense_counting(st, val, acc.data())) return;
    }
    // Values that own memory start from the first product rather than from zero ⊕ it; plain
    // ones (Boolean, max-plus, Viterbi, …) need no flag: zero ⊕ x = x.
    [[maybe_unused]] term_sums_t* sums = nullptr;
    if constexpr (bounded) {
      if (keeps) sums = &kept_[stage].emplace(s_, g.inputs());
    }
    constexpr bool owning = !std::is_trivially_copyable_v<V>;
    const bool flagged = owning && !sums;
    if (flagged) has_[stage].assign(g.inputs(), 0);
    std::uint8_t* has = has_[stage].data();
    const bool all_wanted = std::all_of(want, want + g.inputs(), [](std::uint8_t w) { return w != 0; });
    const T* psi = tv_ + st.parameters;
    const std::uint8_t* present = st.present.data();
    const std::size_t H = g.in_h, OH = g.out_h, OW = g.out_w, kh = g.kernel_h, kw = g.kernel_w;
    const std::size_t icg = g.in_channels / g.group, ocg = g.out_channels / g.group;
    const auto pt = static_cast<std::ptrdiff_t>(g.pad_top), pl = static_cast<std::ptrdiff_t>(g.pad_left);
    const auto W = static_cast<std::ptrdiff_t>(g.in_w), dw = static_cast<std::ptrdiff_t>(g.dilation_w);
    // Per output column ox, the kernel columns whose input column ox·sw + kx·dw − pad_left
    // lies inside the image: [kx0, kx1).
    kx_range_.resize(2 * OW);
    for (std::size_t ox = 0; ox < OW; ++ox) {
      const std::ptrdiff_t base = static_cast<std::ptrdiff_t>(ox * g.stride_w) - pl;  // ix at kx = 0
      const std::ptrdiff_t lo = base >= 0 ? 0 : (-base + dw - 1) / dw;
      const std::ptrdiff_t hi = W - base <= 0 ? 0 : std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(kw), (W - base + dw - 1) / dw);
      kx_range_[2 * ox] = lo, kx_range_[2 * ox + 1] = std::max(lo, hi);
    }
    for (std::size_t oc = 0; oc < g.out_channels; ++oc) {
      const std::size_t grp = oc / ocg;
      for (std::size_t oy = 0; oy < OH; ++oy)
        for (std::size_t ox = 0; ox < OW; ++ox) {
          const gate_id sg = st.scaled[(oc * OH + oy) * OW + ox];
          if (sg == zero_gate || (mask_ && !mask_[to_index(sg)])) continue;
          const auto& sv = val[to_index(sg)];
          const std::ptrdiff_t kx0 = kx_range_[2 * ox], kx1 = kx_range_[2 * ox + 1];
          const std::ptrdiff_t ix0 = static_cast<std::ptrdiff_t>(ox * g.stride_w) - pl;
          for (std::size_t icl = 0; icl < icg; ++icl) {
            const std::size_t ci = grp * icg + icl, wbase = (oc * icg + icl) * kh * kw;
            for (std::size_t ky = 0; ky < kh; ++ky) {
              const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride_h + ky * g.dilation_h) - pt;
              if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(H)) continue;
              const std::ptrdiff_t row = static_cast<std::ptrdiff_t>((ci * H + static_cast<std::size_t>(iy)) * g.in_w) + ix0;
              const std::size_t prow = wbase + ky * kw;
              for (std::ptrdiff_t kx = kx0; kx < kx1; ++kx) {
                const auto j = static_cast<std::size_t>(row + kx * dw);
                const std::size_t p = prow + static_cast<std::size_t>(kx);
                if (!present[p] || (!all_wanted && !want[j])) continue;
                if constexpr (bounded) {
                  if (sums) {
                    sums->add(j, psi[p], sv);
                    continue;
                  }
                }
                if constexpr (real) {
                  acc[j] += psi[p] * sv;
                } else if constexpr (!owning) {
                  acc[j] = s_.plus(acc[j], s_.times(token_value(s_, psi[p]), sv));
                } else if (has[j]) {
                  acc[j] = s_.plus(acc[j], s_.times(token_value(s_, psi[p]), sv));
                } else {
                  acc[j] = s_.times(token_value(s_, psi[p]), sv);
                  has[j] = 1;
                }
              }
            }
          }
        }
    }
  }

  // S::term_sums when the semiring has one (has_term_sums), else a placeholder never made.
  template <class X, bool = has_term_sums<X>>
  struct term_sums_of {
    using type = int;
  };
  template <class X>
  struct term_sums_of<X, true> {
    using type = typename X::term_sums;
  };
  using term_sums_t = typename term_sums_of<S>::type;

  // ℝ: the stage as one transposed convolution over every structural edge (a matrix
  // product: faster than visiting the active edges one by one), with the weights of absent
  // edges and the scale values of units without a scale gate at 0. Exact only when every
  // other value is finite (0 · ∞ is not 0): false, and nothing done, otherwise.
  bool dense_real(const conv_stage& st, const stored_value_t<S>* val, double* acc) {
    const conv_geometry& g = st.geometry;
    weights_.resize(g.weights());
    scale_values_.resize(g.outputs());
    bool finite = true;
    for (std::size_t p = 0; p < weights_.size(); ++p) {
      weights_[p] = st.present[p] ? tv_[st.parameters + p] : 0.0;
      finite &= std::isfinite(weights_[p]);
    }
    for (std::size_t k = 0; k < scale_values_.size(); ++k) {
      const gate_id x = st.scaled[k];
      scale_values_[k] = x == zero_gate || (mask_ && !mask_[to_index(x)]) ? 0.0 : val[to_index(x)];
      finite &= std::isfinite(scale_values_[k]);
    }
    // (a column block of one output row must stay near the kernel's 8 MB: else the scatter)
    if (!finite || std::size_t{g.in_channels / g.group} * g.kernel_h * g.kernel_w > conv_transposed_max_block / g.out_w)
      return false;
    conv_transposed_real(g, weights_.data(), scale_values_.data(), acc);
    return true;
  }

  // A dense kernel's inputs: the weights with edges (the others `zero`) and the scale values
  // (`zero` for units without a scale gate or outside the mask). False, nothing gathered,
  // when one output row's column block would exceed the kernel's 8 MB.
  template <class D>
  bool gather_dense(const conv_stage& st, const stored_value_t<S>* val, D zero, std::vector<D>& wv,
                    std::vector<D>& sv) {
    const conv_geometry& g = st.geometry;
    if (std::size_t{g.in_channels / g.group} * g.kernel_h * g.kernel_w > conv_transposed_max_block / g.out_w)
      return false;
    wv.resize(g.weights());
    sv.resize(g.outputs());
    for (std::size_t p = 0; p < wv.size(); ++p)
      wv[p] = st.present[p] ? static_cast<D>(token_value(s_, tv_[st.parameters + p])) : zero;
    for (std::size_t k = 0; k < sv.size(); ++k) {
      const gate_id x = st.scaled[k];
      sv[k] = x == zero_gate || (mask_ && !mask_[to_index(x)]) ? zero : static_cast<D>(val[to_index(x)]);
    }
    return true;
  }

  template <class Acc>
  bool dense_semiring(const conv_stage& st, const stored_value_t<S>* val, Acc* acc) {
    using op = dense_op<S>;
    static_assert(std::is_same_v<Acc, typename op::scalar>, "the stage's sums are stored as the kernel's values");
    if (!gather_dense(st, val, op::zero, dense_weights_, dense_scales_)) return false;
    conv_transposed_semiring<op>(st.geometry, dense_weights_.data(), dense_scales_.data(), acc);
    return true;
  }

  // Counting in 64 bits: the same kernel over plain +, × when no sum can reach 2^63 — a bound
  // from the largest ψ and S and the most edges one lower unit has (out_channels/group ·
  // kernel); else false, and the edge-by-edge visit checks every operation.
  struct u63_op {
    using scalar = std::uint64_t;
    static constexpr std::uint64_t zero = 0;
    static std::uint64_t plus(std::uint64_t a, std::uint64_t b) noexcept { return a + b; }
    static std::uint64_t times(std::uint64_t a, std::uint64_t b) noexcept { return a * b; }
  };
  bool dense_counting(const conv_stage& st, const stored_value_t<S>* val, std::uint64_t* acc) {
    const conv_geometry& g = st.geometry;
    if (!gather_dense(st, val, std::uint64_t{0}, count_weights_, count_scales_)) return false;
    const std::uint64_t wmax = *std::max_element(count_weights_.begin(), count_weights_.end());
    const std::uint64_t smax = *std::max_element(count_scales_.begin(), count_scales_.end());
    std::uint64_t bound;
    if (__builtin_mul_overflow(wmax, smax, &bound) ||
        __builtin_mul_overflow(bound, std::uint64_t{g.out_channels / g.group} * g.kernel_h * g.kernel_w, &bound) ||
        bound >= checked_u63_semiring::limit)
      return false;
    conv_transposed_semiring<u63_op>(g, count_weights_.data(), count_scales_.data(), acc);
    return true;
  }

  const circuit& c_;
  const S& s_;
  const T* tv_;
  const std::uint8_t* mask_;
  std::vector<std::uint64_t> count_weights_, count_scales_;
  std::vector<std::conditional_t<std::is_same_v<V, bool>, std::uint8_t, double>> dense_weights_, dense_scales_;
  std::vector<double> weights_, scale_values_;
  // (bool sums as bytes: std::vector<bool>'s bit access costs more than the sum)
  std::vector<std::vector<std::conditional_t<std::is_same_v<V, bool>, std::uint8_t, V>>> acc_;
  std::vector<std::ptrdiff_t> kx_range_;
  std::vector<std::vector<std::uint8_t>> has_, want_;
  std::vector<std::optional<term_sums_t>> kept_;  // per stage, while its structured gates read it
  std::vector<std::uint32_t> gates_left_;          // per stage: its structured gates not yet evaluated
  std::vector<std::uint8_t> computed_;             // per stage: compute() has run
};

/// The forward loop. Gates [0, end) are evaluated, those with mask[g] == 0 skipped (left as
/// they were) when Masked; edge gates take theta_values when Annotated. hook(g, value) runs
/// after each evaluated gate (expansion limits use it). The flags are template parameters
/// so the common case (none) has no per-gate test for them; Fused: c has fused gates.
template <bool Masked, bool Annotated, bool Fused, semiring S, class T, class Hook>
void evaluate_loop_impl(const circuit& c, const S& s, std::span<const T> valuation,
                        const values_of<S>* theta_values, const std::uint8_t* mask, std::uint32_t end,
                        values_of<S>& out, Hook&& hook) {
  using V = typename S::value_type;
  const std::uint8_t* kinds = c.raw_kinds().data();
  const std::uint32_t* off = c.raw_offsets().data();
  const gate_id* ch = c.raw_children().data();
  auto* val = out.data();
  const auto* tv = valuation.data();
  std::vector<V> buf;
  gathered_children<stored_value_t<S>> same;
  same.same = c.fused_same_children().data();
  [[maybe_unused]] stored_value_t<S> scratch{};  // a ⊗ of three by times_into
  gathered_children<double> bounds;  // for has_fused_bound kernels
  bounds.same = same.same;
  const auto edges = c.edge_gates();
  std::size_t next_edge = 0;
  std::uint32_t next_edge_gate = (Annotated && !edges.empty()) ? to_index(edges[0]) : 0xFFFFFFFFu;
  const auto fused_gates = c.fused_gates();
  const token_index* ffirst = c.raw_fused_parameter_firsts().data();
  const std::uint16_t* fdeltas = c.raw_fused_parameter_deltas().data();
  const std::uint32_t* fdoff = c.raw_fused_delta_offsets().data();
  const token_index* fparams = c.raw_fused_parameters().data();
  const std::uint32_t* foff = c.raw_fused_parameter_offsets().data();
  std::size_t next_fused = 0;  // fused gates come in id order; a masked loop skips some
  const auto structured_gates = c.structured_gates();
  std::size_t next_structured = 0;
  std::optional<structured_sums<S, T>> sums;
  if constexpr (Fused) {
    if (!structured_gates.empty()) sums.emplace(c, s, tv, Masked ? mask : nullptr, end);
  }
  for (std::uint32_t g = 0; g < end; ++g) {
    if constexpr (Annotated) {
      if (g == next_edge_gate) [[unlikely]] {
        const std::size_t i = next_edge++;
        next_edge_gate = next_edge < edges.size() ? to_index(edges[next_edge]) : 0xFFFFFFFFu;
        if (!Masked || mask[g]) {
          val[g] = (*theta_values)[i];
          hook(g, val[g]);
        }
        continue;
      }
    }
    if constexpr (Masked) {
      if (!mask[g]) continue;
    }
    const std::uint32_t b = off[g], e = off[g + 1];
    // Tested in order of frequency in LRP circuits (⊗, token, ⊕): a short compare chain
    // predicts better than the switch's jump table (≈ 1.33× → 1.12× of the CSR loop).
    // A new gate kind must get its own branch before the final `else`.
    const auto k = static_cast<gate_kind>(kinds[g]);
    if constexpr (Fused) {
      // (one compare for the other kinds: fused and structured are the two largest)
      if (k >= gate_kind::fused) {
        if (k == gate_kind::structured) {
          while (to_index(structured_gates[next_structured]) < g) ++next_structured;
          if (!sums->times_into(next_structured, val, val[g], val[to_index(ch[b])]))
            val[g] = s.times(val[to_index(ch[b])], sums->take(next_structured, val));
          hook(g, val[g]);
          continue;
        }
        while (to_index(fused_gates[next_fused]) < g) ++next_fused;
        const auto fused = [&](auto&& psi) {
          if constexpr (has_fused_sum<S>)
            fused_into(s, val[g], val, ch, b, e, psi, bounds, next_fused);
          else
            val[g] = fused_of(s, val, ch, b, e, std::forward<decltype(psi)>(psi), buf, same, next_fused);
        };
        if (const token_index first = ffirst[next_fused]; first != no_token) {
          const auto* base = tv + first;
          if (const auto db = fdoff[next_fused]; db == fdoff[next_fused + 1]) {
            fused(run_of<T>{base});  // a dense layer's gate: its ψ are adjacent
          } else {
            // a convolution's: its ψ within 2^16 tokens of the base
            const std::uint16_t* d = fdeltas + db;
            fused([base, d](std::size_t i) -> const auto& { return base[d[i]]; });
          }
        } else {
          const token_index* ps = fparams + foff[next_fused];
          fused([tv, ps](std::size_t i) -> const auto& { return tv[ps[i]]; });
        }
        hook(g, val[g]);
        continue;
      }
    }
    if (k == gate_kind::times) {
      if constexpr (has_times_into<S>) {
        if (e - b == 2) {  // a scale gate (R_k ⊗ n_k): into the gate's slot, lists read in place
          s.times_into(val[g], val[to_index(ch[b])], val[to_index(ch[b + 1])]);
          hook(g, val[g]);
          continue;
        }
        if (e - b == 3) {  // any ⊗ of three (a fused gate's φ: three tokens), left to right as
          // times_of folds it, through a reused scratch value
          s.times_into(scratch, val[to_index(ch[b])], val[to_index(ch[b + 1])]);
          s.times_into(val[g], scratch, val[to_index(ch[b + 2])]);
          hook(g, val[g]);
          continue;
        }
      }
      val[g] = times_of(s, val, ch, b, e);
    } else if (k == gate_kind::token) {
      val[g] = token_value(s, tv[to_index(ch[b])]);
    } else if (k == gate_kind::plus) {
      val[g] = plus_of(s, val, ch, b, e, buf);
    } else if (k == gate_kind::zero) {
      val[g] = s.zero();
    } else {
      val[g] = s.one();
    }
    hook(g, val[g]);
  }
}

/// The loop for one combination of flags: masked or not, annotated or not, fused or not.
template <semiring S, class T, class Hook>
void dispatch_loop(const circuit& c, const S& s, std::span<const T> valuation, const values_of<S>* theta_values,
                   const std::uint8_t* mask, std::uint32_t end, values_of<S>& out, Hook&& hook) {
  out.resize(c.size());
  if (has_fused_gates(c)) {  // never annotated (checked by the caller)
    if (mask)
      evaluate_loop_impl<true, false, true>(c, s, valuation, theta_values, mask, end, out, hook);
    else
      evaluate_loop_impl<false, false, true>(c, s, valuation, theta_values, mask, end, out, hook);
    return;
  }
  if (mask) {
    if (theta_values)
      evaluate_loop_impl<true, true, false>(c, s, valuation, theta_values, mask, end, out, hook);
    else
      evaluate_loop_impl<true, false, false>(c, s, valuation, theta_values, mask, end, out, hook);
  } else {
    if (theta_values)
      evaluate_loop_impl<false, true, false>(c, s, valuation, theta_values, mask, end, out, hook);
    else
      evaluate_loop_impl<false, false, false>(c, s, valuation, theta_values, mask, end, out, hook);
  }
}

/// The counting semiring's evaluation in checked 64-bit integers, reading the packed
/// valuation in place; false (out untouched) when a valuation value or any intermediate
/// count is 2^63 or more.
template <semiring S>
bool evaluate_counting_u63(const circuit& c, std::span<const packed_count> valuation,
                           const values_of<S>* theta_values, const std::uint8_t* mask, std::uint32_t end,
                           values_of<S>& out) {
  std::vector<std::uint64_t> tv, r;
  if (theta_values) {
    tv.reserve(theta_values->size());
    for (const packed_count& x : *theta_values) {
      if (x.boxed()) return false;
      tv.push_back(x.raw());
    }
  }
  const checked_u63_semiring s;
  dispatch_loop(c, s, valuation, theta_values ? &tv : nullptr, mask, end, r, no_gate_hook{});
  if (s.overflow) return false;
  out.resize(c.size());
  for (std::uint32_t g = 0; g < end; ++g)
    if (!mask || mask[g]) out[g] = r[g];
  return true;
}

template <semiring S, class Hook>
void evaluate_loop(const circuit& c, const S& s, std::span<const stored_value_t<S>> valuation,
                   const values_of<S>* theta_values, const std::uint8_t* mask, std::uint32_t end, values_of<S>& out,
                   Hook&& hook) {
  PROVNN_ASSERT(valuation.size() >= c.tokens().size());
  if (theta_values) require_edge_gates(c, "edge annotations");
  // Chosen by registry name rather than by type, so that a test can take the generic path
  // with a renamed copy of counting_semiring and compare the two.
  if constexpr (requires { S::registry_name; }) {
    if constexpr (S::registry_name == std::string_view("counting") &&
                  std::is_same_v<stored_value_t<S>, packed_count>) {
      if (evaluate_counting_u63<S>(c, valuation, theta_values, mask, end, out)) {
        // The hook sees the gates in the same order, each after its value is final (a
        // releasing hook only drops values no later gate reads).
        if constexpr (!std::is_same_v<std::remove_cvref_t<Hook>, no_gate_hook>) {
          for (std::uint32_t g = 0; g < end; ++g)
            if (!mask || mask[g]) hook(g, out[g]);
        }
        return;
      }
    }
  }
  dispatch_loop(c, s, valuation, theta_values, mask, end, out, hook);
}

}  // namespace detail

/// evaluate() into a caller-owned buffer (resized to c.size(); its memory is reused, which
/// matters when evaluating many times: fresh pages cost more than the loop itself).
template <semiring S>
void evaluate_into(const circuit& c, const S& s, std::span<const stored_value_t<S>> valuation, values_of<S>& out,
                   const edge_annotation* theta = nullptr) {
  values_of<S> tv;
  if (theta) {
    PROVNN_ASSERT(theta->size() == c.edge_gates().size());
    tv = detail::annotation_values(s, *theta);
  }
  detail::evaluate_loop(c, s, valuation, theta ? &tv : nullptr, nullptr, static_cast<std::uint32_t>(c.size()), out,
                        detail::no_gate_hook{});
}

/// The value of every gate (indexed by gate id) under `valuation` (one value per token) and,
/// when given, the edge annotation Θ. O(gates + child references) semiring operations.
/// Preconditions: valuation.size() == c.tokens().size(); theta, when given, was made for c.
/// Throws unsupported_error when Θ has real values and S has no from_real.
template <semiring S>
values_of<S> evaluate(const circuit& c, const S& s, std::span<const stored_value_t<S>> valuation,
                      const edge_annotation* theta = nullptr) {
  values_of<S> out;
  evaluate_into(c, s, valuation, out, theta);
  return out;
}

/// evaluate() under the semiring's lifting of the natural real valuation.
template <semiring S>
values_of<S> evaluate(const circuit& c, const S& s, const edge_annotation* theta = nullptr) {
  const auto v = lift_valuation(c, s);
  return evaluate(c, s, std::span<const stored_value_t<S>>(v), theta);
}

namespace detail {
/// evaluate_gates() with a hook run after every evaluated gate (see evaluate_loop).
template <semiring S, class Hook>
values_of<S> evaluate_gates_hooked(const circuit& c, const S& s, std::span<const stored_value_t<S>> valuation,
                                   std::span<const gate_id> gates, const edge_annotation* theta, Hook&& hook) {
  values_of<S> all;
  values_of<S> tv;
  if (theta) {
    PROVNN_ASSERT(theta->size() == c.edge_gates().size());
    tv = annotation_values(s, *theta);
  }
  const auto mask = cone_mask(c, gates, theta != nullptr);
  std::uint32_t end = 0;
  for (auto g : gates) end = std::max(end, to_index(g) + 1);
  if constexpr (!std::is_trivially_copyable_v<stored_value_t<S>>) {
    if (!theta) {
      // Values that own memory (polynomials, witness sets, big integers) are dropped after
      // their last use, so peak memory follows the width of the cone, not its size.
      // last_use[g] = the largest parent of g in the cone (0: none, or asked for).
      std::vector<std::uint32_t> last_use(end, 0);
      for (std::uint32_t g = 0; g < end; ++g)
        if (mask[g])
          for (auto ch : c.children(gate_id{g})) last_use[to_index(ch)] = g;
      // A conv stage reads its scale gates (not children of its structured gates) when its
      // first structured gate in the cone is evaluated: structured_sums sums the stage then;
      // a semiring with term_sums reads them in place until the stage's last gate.
      const auto structured = c.structured_gates();
      // stage_done[st]: the gate after which stage st reads its scale values no more (its
      // first structured gate in the cone, or with term_sums its last).
      std::vector<std::uint32_t> stage_done(c.conv_stages().size(), 0);
      for (std::size_t i = 0; i < structured.size() && to_index(structured[i]) < end; ++i)
        if (mask[to_index(structured[i])] && (has_term_sums<S> || !stage_done[c.structured_stages()[i]]))
          stage_done[c.structured_stages()[i]] = to_index(structured[i]);
      for (std::size_t st = 0; st < stage_done.size(); ++st)
        if (stage_done[st])
          for (const gate_id x : c.conv_stages()[st].scaled)
            if (x != zero_gate && to_index(x) < end)
              last_use[to_index(x)] = std::max(last_use[to_index(x)], stage_done[st]);
      for (auto g : gates) last_use[to_index(g)] = 0;
      auto releasing = [&](std::uint32_t g, const auto& v) {  // a stored value: no conversion
        hook(g, v);
        for (auto ch : c.children(gate_id{g}))
          if (last_use[to_index(ch)] == g) all[to_index(ch)] = stored_value_t<S>{};
        if (c.kind(gate_id{g}) == gate_kind::structured)
          for (std::size_t st = 0; st < stage_done.size(); ++st)
            if (stage_done[st] == g)
              for (const gate_id x : c.conv_stages()[st].scaled)
                if (x != zero_gate && to_index(x) < end && last_use[to_index(x)] == g)
                  all[to_index(x)] = stored_value_t<S>{};
      };
      evaluate_loop(c, s, valuation, nullptr, mask.data(), end, all, releasing);
      values_of<S> out;
      out.reserve(gates.size());
      for (auto g : gates) out.push_back(all[to_index(g)]);
      return out;
    }
  }
  evaluate_loop(c, s, valuation, theta ? &tv : nullptr, mask.data(), end, all, hook);
  values_of<S> out;
  out.reserve(gates.size());
  for (auto g : gates) out.push_back(all[to_index(g)]);
  return out;
}
}  // namespace detail

/// The values of the given gates only (same order): evaluates just their cone, so an
/// expensive semiring pays for what is asked. O(cone) semiring operations + O(gates) bytes.
template <semiring S>
values_of<S> evaluate_gates(const circuit& c, const S& s, std::span<const stored_value_t<S>> valuation,
                            std::span<const gate_id> gates, const edge_annotation* theta = nullptr) {
  return detail::evaluate_gates_hooked(c, s, valuation, gates, theta, detail::no_gate_hook{});
}

/// The value of every root of c, in roots() order.
template <semiring S>
values_of<S> evaluate_roots(const circuit& c, const S& s, std::span<const stored_value_t<S>> valuation,
                            const edge_annotation* theta = nullptr) {
  std::vector<gate_id> gates;
  for (const auto& r : c.roots()) gates.push_back(r.gate);
  return evaluate_gates(c, s, valuation, gates, theta);
}

}  // namespace provnn
