// The semiring concept every evaluation in provnn is written against.
//
// A semiring is a small *structure object* S (OpenFst's weights, but with run-time
// parameters such as top-k's K or the dual numbers' chosen token) together with a regular
// value type S::value_type, its carrier. Values are plain regular types; the structure
// object holds the parameters and the operations:
//
//   s.zero(), s.one()               the neutral elements of ⊕ and ⊗
//   s.plus(a, b), s.times(a, b)     ⊕ and ⊗ (total; noexcept where the carrier allows)
//   s.name()                        the registry name ("viterbi", "topk:10", …)
//   S::properties                   a constexpr bitmask of semiring_property flags
//   s.lift(t, v)                    the standard lifting of the natural real valuation:
//                                   the value in S of token t whose real value is v
//                                   (DESIGN §3: Boolean v≠0, Viterbi |v|, N[X] the token…)
//   s.format(a, names)              a readable, deterministic rendering (fmt-based);
//                                   `names` turns token indices into names
//
// Optional members, detected rather than virtual:
//   s.sum(span<const value_type>)   an n-ary ⊕ better than a fold (Kahan, one merge…)
//   s.from_real(d)                  the image of a real *coefficient* (edge annotations Θ
//                                   that produce numbers rather than 0/1)
//
// All ⊕ and ⊗ provnn uses are commutative (provenance semirings); the flag is still
// carried so the law tester checks it.
#pragma once

#include <concepts>
#include <utility>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace provnn {

/// Index of a token in a circuit's token table; polynomial variables are token indices.
using token_index = std::uint32_t;

/// How values of a carrier are stored in evaluation arrays (one per gate or per token): as
/// themselves, unless a carrier specialises this. bool is stored as one byte per value
/// (std::vector<bool> is a bit set: slower, and not a span); counting's big integers as 8-byte
/// packed counts (counting.hpp). A stored value converts implicitly to and from value_type.
template <class V>
struct value_storage {
  using type = V;
};
template <>
struct value_storage<bool> {
  using type = std::uint8_t;
};

/// Turns a token index into its readable name when formatting symbolic values.
/// An empty function formats tokens as `t<index>`.
using token_namer = std::function<std::string(token_index)>;

/// Turns a token name into its index (nullopt when the circuit has no such token). The
/// registry uses it for parameters that name a token, such as `dual:W1[3,4]`.
using token_resolver = std::function<std::optional<token_index>(std::string_view)>;

/// Property flags, OpenFst style. Composite semirings derive theirs from their parts.
enum semiring_property : std::uint32_t {
  commutative = 1u << 0,       ///< a ⊗ b = b ⊗ a (⊕ is always commutative)
  plus_idempotent = 1u << 1,   ///< a ⊕ a = a
  times_idempotent = 1u << 2,  ///< a ⊗ a = a
  absorptive = 1u << 3,        ///< 1 ⊕ a = 1 (0-closed, bounded): a ⊕ a⊗b = a
  path = 1u << 4,              ///< a ⊕ b ∈ {a, b}: ⊕ selects along a total order
  approximate = 1u << 5,       ///< floating-point carrier: the laws hold up to rounding
};

template <class S>
concept semiring =
    std::regular<typename S::value_type> &&
    requires(const S& s, const typename S::value_type& a, const typename S::value_type& b,
             token_index t, double v, const token_namer& names) {
      { s.zero() } -> std::same_as<typename S::value_type>;
      { s.one() } -> std::same_as<typename S::value_type>;
      { s.plus(a, b) } -> std::same_as<typename S::value_type>;
      { s.times(a, b) } -> std::same_as<typename S::value_type>;
      { s.name() } -> std::convertible_to<std::string>;
      { S::properties } -> std::convertible_to<std::uint32_t>;
      { s.lift(t, v) } -> std::same_as<typename S::value_type>;
      { s.format(a, names) } -> std::convertible_to<std::string>;
    };

template <class S>
inline constexpr bool has_property(std::uint32_t p) {
  return (static_cast<std::uint32_t>(S::properties) & p) == p;
}

/// Refined concepts: an algorithm that needs a property says so in its requires clause.
template <class S>
concept idempotent_semiring = semiring<S> && has_property<S>(plus_idempotent);

template <class S>
concept absorptive_semiring = semiring<S> && has_property<S>(absorptive | plus_idempotent);

template <class S>
concept path_semiring = semiring<S> && has_property<S>(path | plus_idempotent);

/// Semirings with an n-ary ⊕ better than a left fold.
template <class S>
concept has_nary_sum = semiring<S> && requires(const S& s, std::span<const typename S::value_type> xs) {
  { s.sum(xs) } -> std::same_as<typename S::value_type>;
};

/// Semirings with their own kernel for a fused gate's value φ ⊗ ⊕_{i<n} (ψ(i) ⊗ σ(i))
/// (DESIGN §5), equal to folding plus and times but cheaper (top-k prunes). φ, ψ(i), σ(i)
/// and the output are the evaluation arrays' values (value_storage): the kernel writes into
/// the gate's slot, whose storage it may reuse.
template <class S>
concept has_fused_sum =
    semiring<S> && requires(const S& s, typename value_storage<typename S::value_type>::type& out,
                            const typename value_storage<typename S::value_type>::type& v, std::size_t n,
                            const typename value_storage<typename S::value_type>::type& (*at)(std::size_t)) {
      s.fused_sum_into(out, v, n, at, at);
    };

/// has_fused_sum semirings whose kernel bounds each term by a number read from σ(i) alone
/// (top-k: |σ(i)'s best score|): s.fused_bound(σ) gives it, and fused_sum_into takes a sixth
/// argument, those bounds for i < n in one array, or nullptr (then it reads them itself).
/// Evaluation gathers them once for the gates that share their children.
template <class S>
concept has_fused_bound =
    has_fused_sum<S> && requires(const S& s, const typename value_storage<typename S::value_type>::type& v,
                                 typename value_storage<typename S::value_type>::type& out, std::size_t n,
                                 const typename value_storage<typename S::value_type>::type& (*at)(std::size_t)) {
      { s.fused_bound(v) } -> std::same_as<double>;
      s.fused_sum_into(out, v, n, at, at, static_cast<const double*>(nullptr));
    };

/// Semirings with an accumulator for ⊕ ψ ⊗ σ over terms visited in any order, per unit:
/// S::term_sums(s, units) when S::term_sums::fits(s, units), add(j, ψ, σ) on stored values
/// (read in place until the last times_into), times_into(out, φ, j) writes φ ⊗ unit j's sum
/// into a stored value. Evaluation uses it for structured stages, whose edges it visits
/// upper unit by upper unit (top-k: the k best candidates per unit instead of a list built
/// per edge, and no list for the sum).
template <class S>
concept has_term_sums =
    semiring<S> && requires(const S& s, typename S::term_sums& sums, std::size_t j,
                            const typename value_storage<typename S::value_type>::type& v,
                            typename value_storage<typename S::value_type>::type& out) {
      requires std::constructible_from<typename S::term_sums, const S&, std::size_t>;
      { S::term_sums::fits(s, j) } -> std::same_as<bool>;
      sums.add(j, v, v);
      std::as_const(sums).times_into(out, v, j);
    };

/// Semirings whose a ⊗ b can be written into an evaluation array's slot, reading the operands
/// there (top-k: no list copied, the slot's storage reused). Equal to times(a, b).
template <class S>
concept has_times_into =
    semiring<S> && requires(const S& s, typename value_storage<typename S::value_type>::type& out,
                            const typename value_storage<typename S::value_type>::type& a) {
      s.times_into(out, a, a);
    };

/// Semirings with a kernel for ⊕_{i<n} (ψ[i] ⊗ σ[i]) over two contiguous arrays: a dense
/// layer's fused gate once its scaled children's values are gathered (evaluate.hpp). It must
/// equal the fold of plus and times up to the grouping of ⊕ (which may be reassociated).
template <class S>
concept has_run_sum = semiring<S> && requires(const S& s, const typename S::value_type* p, std::uint32_t n) {
  { s.run_sum(p, p, n) } -> std::same_as<typename S::value_type>;
};

namespace detail {
/// Four doubles as one vector (GCC and Clang vector extensions): one AVX register where the
/// build targets AVX (PROVNN_NATIVE), two SSE2 registers on generic x86-64. The lanes and
/// their order are the same either way, so a run kernel's partial results — and its
/// rounding — do not depend on the build. Run kernels keep several of these as independent
/// partial results: a fold over one chain waits for each ⊕ to finish, several chains do not.
/// No function takes or returns one by value: that ABI differs between AVX and non-AVX code.
using f64x4 = double __attribute__((vector_size(32)));
inline void load(f64x4& v, const double* p) noexcept { std::memcpy(&v, p, sizeof v); }

/// The maximum of term(ψ[i], σ[i]) over i < n16 (a multiple of 16), from `zero`, in four
/// vectors of four lanes: the shared part of the run kernels whose ⊕ is max (max-plus,
/// Viterbi); the caller folds the last n mod 16 terms. A NaN term keeps the maximum, as
/// std::max(m, NaN) does. Term: a type with static void apply(f64x4& t, const f64x4& p,
/// const f64x4& q).
template <class Term>
double lanes_max(const double* psi, const double* sigma, std::uint32_t n16, double zero) noexcept {
  const f64x4 z{zero, zero, zero, zero};
  f64x4 m[4] = {z, z, z, z}, p, q, t;
  for (std::uint32_t i = 0; i < n16; i += 16)
    for (std::uint32_t u = 0; u < 4; ++u) {
      load(p, psi + i + 4 * u);
      load(q, sigma + i + 4 * u);
      Term::apply(t, p, q);
      m[u] = t > m[u] ? t : m[u];  // (v)maxpd
    }
  m[0] = m[1] > m[0] ? m[1] : m[0];
  m[2] = m[3] > m[2] ? m[3] : m[2];
  m[0] = m[2] > m[0] ? m[2] : m[0];
  return std::max(std::max(m[0][0], m[0][1]), std::max(m[0][2], m[0][3]));
}
}  // namespace detail

/// Semirings that can take a real coefficient directly (edge annotation Θ with numeric output).
template <class S>
concept real_embeddable = semiring<S> && requires(const S& s, double d) {
  { s.from_real(d) } -> std::same_as<typename S::value_type>;
};

/// ⊕ over a range, using the semiring's own n-ary sum where it has one.
template <semiring S>
typename S::value_type sum(const S& s, std::span<const typename S::value_type> xs) {
  if constexpr (has_nary_sum<S>) {
    return s.sum(xs);
  } else {
    typename S::value_type acc = s.zero();
    for (const auto& x : xs) acc = s.plus(acc, x);
    return acc;
  }
}

}  // namespace provnn
