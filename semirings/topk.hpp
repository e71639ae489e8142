// Top-k: the k most relevant paths, each with the monomial that names it.
//
//   carrier   lists of at most k entries (score, monomial), sorted best first; a list is a
//             multiset (two paths with the same monomial stay two entries)
//   ⊕         the k best of the union                         O(k)
//   ⊗         the k best of all pairwise products             O(k²) score products, monomials
//             (score a·b, monomial m·n)                       built only for the candidates
//   0, 1      the empty list, [(1, 1)]
//   properties commutative, approximate (scores are doubles)
//   lifting   token t with real value v ↦ [(v, t)]; a zero-valued token ↦ 0 (the empty list)
//   answers   "which k paths carry the most relevance, and how much each?" — the scalable
//             way to read the leading monomials of the N[X] polynomial.
//
// Ranking: |score| descending (the sign of the real product is kept in the entry), then the
// canonical monomial order, then the signed score descending — a total order, so a value has
// one representation and == is multiset equality.
//
// Why zero scores are dropped (lift(t, 0) = 0, products that underflow vanish): an entry of
// score 0 would rank by its monomial alone, and then 0 ⊗ (keep-k of A) ≠ keep-k of (0 ⊗ A)
// — zero would not annihilate, and the laws would fail. Dropping them makes 0 absorbing and
// matches "setting a token to zero deletes it". The laws then hold exactly for exact scores,
// except at cuts between entries that tie on |score| and monomial with opposite signs (the
// order cannot be compatible with multiplying by a negative number there).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

#include "common/error.hpp"
#include "semirings/polynomial.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

/// One path: its real product and the monomial of its tokens.
struct scored_monomial {
  double score = 0.0;
  monomial mono;
  friend bool operator==(const scored_monomial&, const scored_monomial&) = default;
};

/// The ranking of top-k: true when a comes before b (|score| desc, monomial, score desc).
inline bool topk_better(const scored_monomial& a, const scored_monomial& b) noexcept {
  const double fa = std::fabs(a.score), fb = std::fabs(b.score);
  if (fa != fb) return fa > fb;
  const auto c = a.mono <=> b.mono;
  if (c != 0) return c < 0;
  return a.score > b.score;
}

namespace detail {

/// The i in [begin, n) with x[i] > 0 and x[i] ≥ lim, in order: i into idx, x[i] into val;
/// returns their number. NaN is never taken. Branch-free: two stores per element, and a chain
/// on the count. Entries past the count, below n - begin, may be overwritten.
inline std::size_t compact_positive_at_least_scalar(const double* x, std::size_t begin, std::size_t n, double lim,
                                                    std::uint32_t* idx, double* val) noexcept {
  std::size_t m = 0;
  for (std::size_t i = begin; i < n; ++i) {
    idx[m] = static_cast<std::uint32_t>(i);
    val[m] = x[i];
    m += (x[i] >= lim) & (x[i] > 0.0);
  }
  return m;
}

/// compact_positive_at_least_scalar from 0, eight elements per step where AVX-512 is compiled
/// in (the fused top-k kernel's pass 1 compacts every edge's bound: the scalar chain on the
/// count was a tenth of top-k on 784-300-100-10, issue 5). Each step stores eight lanes at the
/// count, which is at most the step's first index, so nothing is written at n or past it
/// (idx and val hold n). Both paths give the same result (a program that mixes -march
/// settings may run either).
inline std::size_t compact_positive_at_least(const double* x, std::size_t n, double lim, std::uint32_t* idx,
                                             double* val) noexcept {
  std::size_t m = 0, i = 0;
#if defined(__AVX512F__) && defined(__AVX512VL__)
  // Compressed in registers and stored whole: a compressing store to memory is microcoded
  // and slow on AMD Zen 4. The compares are ordered: NaN is never taken.
  const __m512d vlim = _mm512_set1_pd(lim), zero = _mm512_setzero_pd();
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_loadu_pd(x + i);
    const __mmask8 take = _mm512_cmp_pd_mask(v, vlim, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v, zero, _CMP_GT_OQ);
    const __m256i at = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(i)), iota);
    _mm512_storeu_pd(val + m, _mm512_maskz_compress_pd(take, v));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + m), _mm256_maskz_compress_epi32(take, at));
    m += static_cast<std::size_t>(__builtin_popcount(take));
  }
#endif
  return m + compact_positive_at_least_scalar(x, i, n, lim, idx + m, val + m);
}

}  // namespace detail

/// A top-k value: at most k entries, best first (see topk_better), no zero score.
struct topk_list {
  std::vector<scored_monomial> entries;
  friend bool operator==(const topk_list&, const topk_list&) = default;
};

/// A top-k value as evaluation arrays store it, in 16 bytes (issue 5). A topk_list is a
/// 24-byte header and a heap block per value; a fused circuit's valuation holds one value per
/// weight, and the fused kernel's first pass reads every ψ's and σ's best score — a pointer
/// chase per edge, which made top-k memory-bound. Here the best score is inline:
///
///   the empty list (0)                       top 0,       bits 0
///   [(s, t)] — a lifted token, exponent 1    top s,       bits 2t + 1
///   [(s, 1)] — a constant                    top s,       bits 2
///   any other list                           top = its first score, bits = the pointer to
///                                            a heap topk_list (8-aligned: even, not 0 or 2)
///
/// The encoding is canonical (a list is boxed exactly when it has none of the three inline
/// forms), so equal values have equal bits unless both are boxed. Converts implicitly to
/// and from topk_list, as packed_count does for counts.
class packed_topk {
 public:
  packed_topk() noexcept = default;
  packed_topk(const topk_list& l) { assign(topk_list(l)); }  // NOLINT(google-explicit-constructor)
  packed_topk(topk_list&& l) { assign(std::move(l)); }       // NOLINT(google-explicit-constructor)
  packed_topk(const packed_topk& o) : top_(o.top_), bits_(o.bits_) {
    if (o.boxed()) bits_ = reinterpret_cast<std::uintptr_t>(new topk_list(*o.list()));
  }
  packed_topk(packed_topk&& o) noexcept : top_(std::exchange(o.top_, 0.0)), bits_(std::exchange(o.bits_, 0)) {}
  packed_topk& operator=(packed_topk o) noexcept {
    std::swap(top_, o.top_);
    std::swap(bits_, o.bits_);
    return *this;
  }
  ~packed_topk() {
    if (boxed()) delete list();
  }

  /// The lifted token t with score s (s ≠ 0: a zero score is the empty list).
  static packed_topk token(double s, token_index t) noexcept {
    packed_topk r;
    if (s != 0.0 && !std::isnan(s)) {
      r.top_ = s;
      r.bits_ = (std::uintptr_t{t} << 1) | 1u;
    }
    return r;
  }

  operator topk_list() const {  // NOLINT(google-explicit-constructor)
    if (boxed()) return *list();
    topk_list r;
    if (bits_ != 0) r.entries.push_back({top_, inline_mono()});
    return r;
  }

  /// Number of entries.
  std::size_t size() const noexcept { return boxed() ? list()->entries.size() : bits_ != 0; }
  bool empty() const noexcept { return bits_ == 0; }
  /// The first entry's score (0 for the empty list), without reading the heap.
  double top() const noexcept { return top_; }
  /// Entry a's score (a < size()).
  double score(std::size_t a) const noexcept { return boxed() ? list()->entries[a].score : top_; }
  /// f(entry a's monomial) — by reference into the list when boxed, a monomial made on the
  /// stack (one factor or none, no heap) otherwise.
  template <class F>
  decltype(auto) with_mono(std::size_t a, F&& f) const {
    if (boxed()) return f(static_cast<const monomial&>(list()->entries[a].mono));
    const monomial m = inline_mono();
    return f(m);
  }
  /// The list when boxed, nullptr for the inline forms.
  const topk_list* boxed_list() const noexcept { return boxed() ? list() : nullptr; }

  /// The scores read where they lie: the list's entries when boxed, top() otherwise. Taken
  /// once before a loop, it keeps the list's address in a register — score(a) reloads it
  /// after every store the compiler cannot prove apart (issue 5: a tenth of offer()).
  struct score_view {
    const scored_monomial* entries;  // nullptr for the inline forms
    double top;
    std::size_t size;
    double operator[](std::size_t a) const noexcept { return entries ? entries[a].score : top; }
  };
  score_view scores() const noexcept {
    if (boxed()) return {list()->entries.data(), top_, list()->entries.size()};
    return {nullptr, top_, std::size_t{bits_ != 0}};
  }

  /// A list to write this value into, in place: the boxed list (its entries and their
  /// monomials keep their storage, so filling it again allocates nothing when the sizes
  /// fit), or a new empty box. settle() must follow, before the value is read.
  topk_list& list_for_writing() {
    if (!boxed()) {
      top_ = 0.0;
      bits_ = reinterpret_cast<std::uintptr_t>(new topk_list);
    }
    return *reinterpret_cast<topk_list*>(bits_);
  }
  /// Back to the canonical encoding after list_for_writing(): the inline form when the list
  /// has one, the first score as top() otherwise.
  void settle() {
    auto* l = reinterpret_cast<topk_list*>(bits_);
    const auto& e = l->entries;
    if (e.empty() || (e.size() == 1 && (e[0].mono.is_one() || (e[0].mono.size() == 1 && e[0].mono[0].exponent == 1)))) {
      topk_list tmp = std::move(*l);
      delete l;
      top_ = 0.0;
      bits_ = 0;
      assign(std::move(tmp));
      return;
    }
    top_ = e[0].score;
  }

  friend bool operator==(const packed_topk& a, const packed_topk& b) {
    if (a.boxed() && b.boxed()) return *a.list() == *b.list();
    return a.bits_ == b.bits_ && (a.bits_ == 0 || a.top_ == b.top_);
  }

 private:
  static constexpr std::uintptr_t constant_bits = 2;
  bool boxed() const noexcept { return (bits_ & 1u) == 0 && bits_ > constant_bits; }
  const topk_list* list() const noexcept { return reinterpret_cast<const topk_list*>(bits_); }
  monomial inline_mono() const { return bits_ == constant_bits ? monomial{} : monomial(static_cast<token_index>(bits_ >> 1)); }
  void assign(topk_list&& l) {
    if (l.entries.empty()) return;
    top_ = l.entries[0].score;
    if (l.entries.size() == 1) {
      const monomial& m = l.entries[0].mono;
      if (m.is_one()) {
        bits_ = constant_bits;
        return;
      }
      if (m.size() == 1 && m[0].exponent == 1) {
        bits_ = (std::uintptr_t{m[0].token} << 1) | 1u;
        return;
      }
    }
    bits_ = reinterpret_cast<std::uintptr_t>(new topk_list(std::move(l)));
  }

  double top_ = 0.0;
  std::uintptr_t bits_ = 0;
};
static_assert(sizeof(packed_topk) == 16);

template <>
struct value_storage<topk_list> {
  using type = packed_topk;
};

class topk_semiring {
 public:
  using value_type = topk_list;
  static constexpr std::uint32_t properties = commutative | approximate;
  static constexpr std::string_view registry_name = "topk";
  static constexpr std::string_view parameter = "K";
  static constexpr std::string_view question = "which k paths carry the most relevance, and how much each?";
  static constexpr std::size_t default_k = 10;
  /// A sanity bound for K from text: ⊗ costs O(K²) per gate.
  static constexpr std::size_t max_k = 100000;

  /// k ≥ 1 (throws provnn::error otherwise).
  explicit topk_semiring(std::size_t k = default_k) : k_(k) {
    if (k == 0) throw error("top-k semiring: k must be at least 1");
  }
  std::size_t k() const noexcept { return k_; }

  /// Builds `topk:K` from K: a decimal integer in [1, max_k]. Throws parse_error otherwise.
  static topk_semiring from_parameter(std::string_view k, const token_resolver& = {}) {
    std::size_t v = 0;
    const char* e = k.data() + k.size();
    auto [p, ec] = std::from_chars(k.data(), e, v);
    if (k.empty() || ec != std::errc() || p != e || v == 0 || v > max_k)
      throw parse_error(fmt::format("topk:{}: K must be an integer from 1 to {}, e.g. topk:10", k, max_k));
    return topk_semiring(v);
  }

  value_type zero() const { return {}; }
  value_type one() const {
    value_type r;
    r.entries.push_back({1.0, monomial{}});
    return r;
  }
  value_type lift(token_index t, double v) const {
    value_type r;
    if (v != 0.0 && !std::isnan(v)) r.entries.push_back({v, monomial(t)});
    return r;
  }
  /// A real coefficient with no token: [(d, 1)] (0 for d = 0).
  value_type from_real(double d) const {
    value_type r;
    if (d != 0.0 && !std::isnan(d)) r.entries.push_back({d, monomial{}});
    return r;
  }

  /// The k best of the union: a merge of two sorted lists. O(k).
  value_type plus(const value_type& a, const value_type& b) const {
    if (b.entries.empty()) return a;
    if (a.entries.empty()) return b;
    value_type r;
    const std::size_t n = std::min(k_, a.entries.size() + b.entries.size());
    r.entries.reserve(n);
    auto i = a.entries.begin(), j = b.entries.begin();
    while (r.entries.size() < n) {
      if (j == b.entries.end() || (i != a.entries.end() && !topk_better(*j, *i)))
        r.entries.push_back(*i++);
      else
        r.entries.push_back(*j++);
    }
    return r;
  }

  /// The k best pairwise products. Scores are multiplied first (cheap); monomials are built
  /// only for the products whose |score| reaches the k-th largest. O(k² + c log c) for c
  /// candidates (c = k unless |scores| tie).
  value_type times(const value_type& a, const value_type& b) const {
    value_type r;
    if (a.entries.empty() || b.entries.empty()) return r;
    const std::size_t na = a.entries.size(), nb = b.entries.size();
    if (na == 1 && nb == 1) {
      const double s = a.entries[0].score * b.entries[0].score;
      if (s != 0.0) r.entries.push_back({s, a.entries[0].mono * b.entries[0].mono});
      return r;
    }
    thread_local std::vector<double> mags;
    mags.clear();
    for (const auto& x : a.entries)
      for (const auto& y : b.entries) mags.push_back(std::fabs(x.score * y.score));
    double threshold = 0.0;
    if (mags.size() > k_) {
      std::nth_element(mags.begin(), mags.begin() + static_cast<std::ptrdiff_t>(k_ - 1), mags.end(),
                       std::greater<double>());
      threshold = mags[k_ - 1];
    }
    for (const auto& x : a.entries)
      for (const auto& y : b.entries) {
        const double s = x.score * y.score;
        if (s != 0.0 && std::fabs(s) >= threshold) r.entries.push_back({s, x.mono * y.mono});
      }
    std::sort(r.entries.begin(), r.entries.end(), topk_better);
    if (r.entries.size() > k_) r.entries.resize(k_);
    return r;
  }

  /// out = a ⊗ b on the evaluation arrays' values, reading the lists in place and writing
  /// into out's storage (no list or monomial allocated when out's fit: an evaluation that
  /// fills its arrays again). Equal to times(a, b). `out` must be neither a nor b.
  void times_into(packed_topk& out, const packed_topk& a, const packed_topk& b) const {
    if (a.empty() || b.empty()) {
      out = packed_topk{};
      return;
    }
    const std::size_t na = a.size(), nb = b.size();
    if (na != 1 && nb != 1) {  // both lists long: the general product (candidates by |score|)
      out = times(topk_list(a), topk_list(b));
      return;
    }
    // One side has one entry: at most k products (each list holds at most k), every one kept
    // but those that underflow to 0, then sorted — times() with its threshold at 0. Scores and
    // monomials multiply commutatively, so which side is which does not matter.
    const packed_topk& one = na == 1 ? a : b;
    const packed_topk& many = na == 1 ? b : a;
    const std::size_t m = many.size();
    const double s1 = one.score(0);
    topk_list& r = out.list_for_writing();
    if (r.entries.size() < m) r.entries.resize(m);
    std::size_t w = 0;
    one.with_mono(0, [&](const monomial& x) {
      for (std::size_t i = 0; i < m; ++i) {
        const double sc = s1 * many.score(i);
        if (sc == 0.0) continue;
        auto& e = r.entries[w++];
        e.score = sc;
        many.with_mono(i, [&](const monomial& y) { e.mono.assign_product(x, y); });
      }
    });
    r.entries.resize(w);
    sort_by_rank(r.entries);
    if (r.entries.size() > k_) r.entries.resize(k_);
    out.settle();
  }

  /// φ ⊗ ⊕_{i<n} (ψ(i) ⊗ σ(i)) — a fused gate's value (DESIGN §5) — equal to folding plus
  /// and times, but without building a list per term: the k best products are kept as
  /// (score, i, a, b) candidates and monomials are built only for the k that survive. psi(i)
  /// and sigma(i) return const packed_topk& (the evaluation arrays' values).
  ///
  /// Pass 1 reads each term's best product |ψ(i)₀|·|σ(i)₀| from the packed values (no heap
  /// read) and finds the k-th largest — a lower bound of the result's k-th |score|, since
  /// every one of them is a product. Pass 2 opens only the terms that reach it (lists are
  /// sorted by |score| and rounding is monotone, so nothing in a term below it could enter):
  /// about k of them. Ties on |score| compare the candidates' monomials, as topk_better
  /// does. Typically O(n + k²) comparisons and k monomials; when many products tie on |score|
  /// (quantised values), each opened candidate may compare against up to k others, each
  /// comparison building two monomials — the fold's cost class, not below it.
  ///
  /// The value is written into `out` in place (list_for_writing): an evaluation that fills
  /// its arrays again reuses the lists and monomials of the previous one. `out` must not be
  /// φ or any ψ(i), σ(i). sigma_bounds, when not null, holds fused_bound(σ(i)) for i < n
  /// (evaluation gathers them once for the gates of a layer that share their σ).
  template <class Psi, class Sigma>
  void fused_sum_into(packed_topk& out, const packed_topk& phi, std::size_t n, Psi&& psi, Sigma&& sigma,
                      const double* sigma_bounds = nullptr) const {
    // Pass 1. |fl(x·y)| = fl(|x|·|y|), and fl is monotone: nothing in term i beats bound[i].
    // The k-th largest bound is a floor: the result's k-th |score| is at least it (k distinct
    // terms reach it), so no term below it can enter. It is found among the terms whose
    // bound reaches a guess — the previous gate's floor, scaled down a little: a dense
    // layer's lower units see the same upper values through weights of one distribution,
    // so their floors are alike. When k or more terms reach the guess, the k largest bounds
    // are all among them and their k-th is the floor; otherwise the guess was too high: it
    // is halved three times, then every term is taken. Either way the floor is exact; the guess
    // (one per thread, carried from gate to gate) only decides how many bounds the
    // selection (kth_largest) visits — about 2k instead of n on 784-300-100-10.
    thread_local std::vector<double> bound, picked;
    thread_local std::vector<std::uint32_t> open;
    thread_local double guess = 0.0;
    bound.resize(n);
    open.resize(n);
    picked.resize(n);
    double* bd = bound.data();
    if (sigma_bounds)
      for (std::size_t i = 0; i < n; ++i) bd[i] = std::fabs(psi(i).top()) * sigma_bounds[i];
    else
      for (std::size_t i = 0; i < n; ++i) bd[i] = std::fabs(psi(i).top()) * fused_bound(sigma(i));
    std::uint32_t* op = open.data();
    double* pk = picked.data();
    const auto pick = [&](double at_least) {  // the terms with a non-zero bound ≥ at_least
      return detail::compact_positive_at_least(bd, n, at_least, op, pk);
    };
    std::size_t n_open = n > k_ ? pick(guess) : pick(0.0);
    for (double g = guess; n > k_ && n_open < k_ && g > 0.0;) {  // too high: lower it
      g = g > guess * 0.2 ? g * 0.5 : 0.0;  // ½, ¼, ⅛ of the guess, then every term
      n_open = pick(g);
    }
    double floor = 0.0;
    if (n_open > k_) {
      floor = kth_largest(pk, n_open);
      std::size_t w = 0;
      for (std::size_t o = 0; o < n_open; ++o) {
        op[w] = op[o];
        pk[w] = pk[o];
        w += pk[o] >= floor;
      }
      n_open = w;
      guess = floor * 0.95;
    }
    // Pass 2: the candidates of the opened terms, best k kept (a term whose bound is below
    // the k-th kept so far is skipped without reading its lists). The terms go by decreasing
    // bound when they are few (an insertion sort: about k after the floor): the k-th kept
    // then rises fastest, so a term's row stops early and the first term below it ends the
    // pass (784-300-100-10: 15–20 % of top-k, issue 5). Any order gives the same value: the
    // ranking is total.
    thread_local std::vector<candidate> best_store;  // best[0, nb): sorted best first
    best_store.resize(k_ + 1);
    candidate* best = best_store.data();
    std::size_t nb = 0;
    double kth = -1.0;  // best[k-1].mag once k are kept: a candidate below it cannot enter
    const bool sorted = n_open <= 4 * k_;  // pk[o] is the bound of term op[o] either way
    if (sorted)
      for (std::size_t o = 1; o < n_open; ++o) {  // insertion sort by bound, largest first
        const std::uint32_t i = op[o];
        const double v = pk[o];
        std::size_t at = o;
        for (; at > 0 && pk[at - 1] < v; --at) {
          op[at] = op[at - 1];
          pk[at] = pk[at - 1];
        }
        op[at] = i;
        pk[at] = v;
      }
    for (std::size_t o = 0; o < n_open; ++o) {
      if (pk[o] < kth) {
        if (sorted) break;  // every later term is below it too
        continue;
      }
      offer(psi(op[o]), sigma(op[o]), floor, best, nb, kth);
    }
    phi_times_into(out, phi, best, nb);
  }

  /// The bound fused_sum_into reads of a term's σ: |its best score| (0 for the empty list).
  static double fused_bound(const packed_topk& v) noexcept { return std::fabs(v.top()); }

  std::string name() const { return fmt::format("{}:{}", registry_name, k_); }

  /// `[0.75·x[0]·W1[0,3], -0.5·x[1]·W1[1,3]]`; `[]` for 0. Scores in shortest round-trip form.
  std::string format(const value_type& a, const token_namer& names = {}) const {
    std::string out = "[";
    for (std::size_t i = 0; i < a.entries.size(); ++i) {
      if (i > 0) out += ", ";
      out += fmt::format("{}", a.entries[i].score);
      if (!a.entries[i].mono.is_one()) out += "·" + format_monomial(a.entries[i].mono, names);
    }
    return out + "]";
  }

 private:
  /// A product ψ_a · σ_b that may enter a k-best list, read in place from the two values.
  struct candidate {
    double score, mag;
    const packed_topk *psi, *sigma;
    std::uint32_t a, b;
    monomial mono() const {
      return psi->with_mono(a, [&](const monomial& x) { return sigma->with_mono(b, [&](const monomial& y) { return x * y; }); });
    }
  };
  /// topk_better on candidates: |score|, then the monomials (built only on a tie), then score.
  static bool better(const candidate& x, const candidate& y) {
    if (x.mag != y.mag) return x.mag > y.mag;
    const auto c = x.mono() <=> y.mono();
    if (c != 0) return c < 0;
    return x.score > y.score;
  }
  /// Offers the products of ψ ⊗ σ to best[0, nb) (sorted best first, room for k): each that
  /// ranks among the k best is inserted; kth is best[k-1].mag once k are kept (else below any
  /// |score|), and products below it or below `floor` are not made. Lists are sorted by
  /// |score| and rounding is monotone, so a row stops at its first product too small, and the
  /// rows stop when that happens at b = 0 (|ψ_a| does not increase). Products that underflow
  /// are dropped, as times drops them.
  void offer(const packed_topk& p, const packed_topk& q, double floor, candidate* best, std::size_t& nb_io,
             double& kth_io) const {
    // The state in locals: stores into best[] may not alias them, so they stay in registers.
    const packed_topk::score_view ps = p.scores(), qs = q.scores();
    const std::size_t k = k_;
    std::size_t nb = nb_io;
    double kth = kth_io;
    bool rows_left = true;
    for (std::uint32_t a = 0; a < ps.size && rows_left; ++a) {
      const double pa = ps[a];
      for (std::uint32_t b = 0; b < qs.size; ++b) {
        const double sc = pa * qs[b];
        const double mag = std::fabs(sc);
        if (mag == 0.0 || mag < floor || mag < kth) {
          rows_left = b > 0;
          break;
        }
        const candidate c{sc, mag, &p, &q, a, b};
        std::size_t at = nb;
        while (at > 0 && better(c, best[at - 1])) --at;
        if (at >= k) continue;  // ties the k-th on |score| but ranks after it
        std::copy_backward(best + at, best + std::min(nb, k - 1), best + std::min(nb + 1, k));
        best[at] = c;
        nb += nb < k;
        if (nb == k) kth = best[k - 1].mag;
      }
    }
    nb_io = nb;
    kth_io = kth;
  }

  /// out = φ ⊗ [the candidates best[0, nb), sorted best first], as times() computes it, in
  /// place (list_for_writing): for a one-entry φ every product is kept — there are at most k
  /// — zero products dropped, then sorted, each monomial made in one product into the entry's
  /// storage: (φ's · ψ's), both at most one factor for lifted tokens, · σ's.
  void phi_times_into(packed_topk& out, const packed_topk& phi, const candidate* best, std::size_t nb) const {
    if (nb == 0 || phi.empty()) {
      out = packed_topk{};
      return;
    }
    if (phi.size() != 1) {
      value_type inner;
      inner.entries.reserve(nb);
      for (std::size_t r = 0; r < nb; ++r) inner.entries.push_back({best[r].score, best[r].mono()});
      out = times(phi, inner);
      return;
    }
    const double ps = phi.score(0);
    topk_list& r = out.list_for_writing();
    if (r.entries.size() < nb) r.entries.resize(nb);
    std::size_t w = 0;
    phi.with_mono(0, [&](const monomial& pm) {
      for (std::size_t slot = 0; slot < nb; ++slot) {
        const candidate& c = best[slot];
        const double s = ps * c.score;
        if (s == 0.0) continue;
        auto& e = r.entries[w++];
        e.score = s;
        c.psi->with_mono(c.a, [&](const monomial& x) {
          c.sigma->with_mono(c.b, [&](const monomial& y) { e.mono.assign_product(pm, x, y); });
        });
      }
    });
    r.entries.resize(w);
    sort_by_rank(r.entries);
    out.settle();
  }

  /// Sorts entries best first (topk_better). Entries made from a sorted list by one factor
  /// usually have strictly decreasing |score| already, which decides their order alone: then
  /// one compare per entry and no moves of their monomials.
  static void sort_by_rank(std::vector<scored_monomial>& e) {
    for (std::size_t i = 1; i < e.size(); ++i)
      if (!(std::fabs(e[i - 1].score) > std::fabs(e[i].score))) {
        std::sort(e.begin(), e.end(), topk_better);
        return;
      }
  }

  /// The k-th largest of x[0, n) (n ≥ k_, every x ≥ 0): the k largest kept sorted, a value
  /// entering only above the k-th so far, by a branch-free insertion — position j takes
  /// max(min(v, old[j-1]), old[j]), independent of the other positions (an insertion loop's
  /// compares would mispredict and chain).
  double kth_largest(const double* x, std::size_t n) const {
    if (k_ <= 16) {  // a fixed width the compiler unrolls (lanes past k hold smaller values)
      alignas(64) double tp[16] = {};
      for (std::size_t i = 0; i < n; ++i) {
        const double v = x[i];
        if (!(v > tp[k_ - 1])) continue;
        for (std::size_t j = 15; j > 0; --j) tp[j] = std::max(std::min(v, tp[j - 1]), tp[j]);
        tp[0] = std::max(v, tp[0]);
      }
      return tp[k_ - 1];
    }
    thread_local std::vector<double> top;
    top.assign(k_, 0.0);
    double* tp = top.data();
    double kth = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double v = x[i];
      if (!(v > kth)) continue;
      for (std::size_t j = k_ - 1; j > 0; --j) tp[j] = std::max(std::min(v, tp[j - 1]), tp[j]);
      tp[0] = std::max(v, tp[0]);
      kth = tp[k_ - 1];
    }
    return kth;
  }

 public:
  /// ⊕ of ψ ⊗ σ terms per unit, the terms visited in any order: a structured stage's sums
  /// (DESIGN §5), whose edges evaluation visits upper unit by upper unit, each adding to many
  /// lower units. Per unit the k best products so far are kept as candidates (score, the two
  /// values, their entries) — a term whose bound |ψ₀|·|σ₀| is below the unit's k-th is
  /// skipped without reading its lists — and monomials are built only for the survivors, by
  /// times_into(). Equal to folding plus and times over the unit's terms in any order (the
  /// ranking is total, so the k best of a union are the k best of the parts' k best). The
  /// values added must outlive the last times_into(): they are read in place. Memory: k
  /// candidates per unit (fits(): at most max_candidates per stage; evaluation keeps a
  /// stage's until its last structured gate, so the stages of one layer's targets and rule
  /// terms, whose gates alternate, are held together).
  class term_sums {
   public:
    /// At most this many candidates (40 bytes each) are held; a stage needing more (a large
    /// k) is folded by the evaluator instead, its lists growing only with what is added.
    static constexpr std::size_t max_candidates = std::size_t{1} << 20;
    static bool fits(const topk_semiring& s, std::size_t units) noexcept {
      return units <= max_candidates / s.k();
    }
    term_sums(const topk_semiring& s, std::size_t units)
        : s_(s), k_(s.k()), best_(units * s.k()), count_(units, 0), kth_(units, -1.0) {}

    /// Unit j ⊕= ψ ⊗ σ.
    void add(std::size_t j, const packed_topk& psi, const packed_topk& sigma) {
      double kth = kth_[j];
      const double bound = std::fabs(psi.top()) * std::fabs(sigma.top());
      if (!(bound > 0.0) || bound < kth) return;  // empty, every product underflows, or too small
      candidate* best = best_.data() + j * k_;
      std::size_t nb = count_[j];
      s_.offer(psi, sigma, 0.0, best, nb, kth);
      count_[j] = static_cast<std::uint32_t>(nb);
      kth_[j] = kth;
    }

    /// out = φ ⊗ unit j's sum, written in place as fused_sum_into writes a fused gate's value
    /// (no list built for the sum). `out` must not be φ or a value added.
    void times_into(packed_topk& out, const packed_topk& phi, std::size_t j) const {
      s_.phi_times_into(out, phi, best_.data() + j * k_, count_[j]);
    }

   private:
    const topk_semiring& s_;
    std::size_t k_;
    std::vector<candidate> best_;
    std::vector<std::uint32_t> count_;
    std::vector<double> kth_;
  };

 private:
  std::size_t k_;
};

/// Top-k with k fixed at compile time (same values and operations as topk_semiring).
template <std::size_t K>
struct topk_fixed_semiring : topk_semiring {
  static_assert(K >= 1, "top-k needs k >= 1");
  topk_fixed_semiring() : topk_semiring(K) {}
};

}  // namespace provnn
