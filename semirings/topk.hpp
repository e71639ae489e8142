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
#include <vector>

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

/// A top-k value: at most k entries, best first (see topk_better), no zero score.
struct topk_list {
  std::vector<scored_monomial> entries;
  friend bool operator==(const topk_list&, const topk_list&) = default;
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

  /// φ ⊗ ⊕_{i<n} (ψ(i) ⊗ σ(i)) — a fused gate's value (DESIGN §5) — equal to folding plus
  /// and times, but without building a list per term: the k best products are kept as
  /// (score, i, a, b) candidates and monomials are built only for the k that survive. A term
  /// whose best product |ψ(i)₀|·|σ(i)₀| is below the k-th largest such product is skipped
  /// after one multiplication (lists are sorted by |score|, and rounding is monotone, so
  /// nothing in it could enter). Ties on |score| compare the candidates' monomials, as
  /// topk_better does. psi(i) and sigma(i) return const value_type&. Typically O(n + k²)
  /// comparisons and k monomials; when many products tie on |score| (quantised values),
  /// every opened candidate may compare against up to k others, each such comparison building
  /// two monomials — the fold's cost class, not below it.
  template <class Psi, class Sigma>
  value_type fused_sum(const value_type& phi, std::size_t n, Psi&& psi, Sigma&& sigma) const {
    struct candidate {
      double score, mag;
      std::uint32_t i, a, b;
    };
    thread_local std::vector<candidate> best;  // sorted best first, at most k_
    best.clear();
    const auto mono_of = [&](const candidate& c) {
      return psi(c.i).entries[c.a].mono * sigma(c.i).entries[c.b].mono;
    };
    const auto better = [&](const candidate& x, const candidate& y) {
      if (x.mag != y.mag) return x.mag > y.mag;
      const auto c = mono_of(x) <=> mono_of(y);
      if (c != 0) return c < 0;
      return x.score > y.score;
    };
    // Pass 1: each term's best product |ψ(i)₀|·|σ(i)₀| — itself a candidate — and the k
    // largest of them. The k-th is a lower bound of the final k-th |score|, so pass 2 only
    // opens terms that reach it: about k of them, not one per edge.
    thread_local std::vector<double> bound, top;
    bound.resize(n);
    top.clear();
    constexpr std::size_t ahead = 16;  // ψ lists live on the heap, one per token: fetch early
    for (std::size_t i = 0; i < n; ++i) {
      if (i + ahead < n) __builtin_prefetch(psi(i + ahead).entries.data());
      const auto& p = psi(i).entries;
      const auto& q = sigma(i).entries;
      // |fl(x·y)| = fl(|x|·|y|), and fl is monotone: nothing in term i beats this bound.
      const double b = p.empty() || q.empty() ? 0.0 : std::fabs(p[0].score) * std::fabs(q[0].score);
      bound[i] = b;
      if (b == 0.0 || (top.size() == k_ && b <= top.back())) continue;
      std::size_t at = top.size();
      while (at > 0 && b > top[at - 1]) --at;
      top.insert(top.begin() + static_cast<std::ptrdiff_t>(at), b);
      if (top.size() > k_) top.pop_back();
    }
    const double floor = top.size() == k_ ? top.back() : 0.0;
    // Pass 2: the candidates of the terms that reach the floor and the k-th so far, best k
    // kept (the test on bound[i] is the inner loop's first one, without loading the lists).
    for (std::size_t i = 0; i < n; ++i) {
      if (bound[i] == 0.0 || bound[i] < floor || (best.size() == k_ && bound[i] < best.back().mag)) continue;
      const auto& p = psi(i).entries;
      const auto& q = sigma(i).entries;
      bool rows_left = true;
      for (std::uint32_t a = 0; a < p.size() && rows_left; ++a) {
        for (std::uint32_t b = 0; b < q.size(); ++b) {
          const double sc = p[a].score * q[b].score;
          const double mag = std::fabs(sc);
          // Underflow (times drops it), or below the k-th: the rest of the row is smaller, and
          // when that happens at b = 0 so is every later row (|ψ(i)_a| does not increase).
          if (mag == 0.0 || mag < floor || (best.size() == k_ && mag < best.back().mag)) {
            rows_left = b > 0;
            break;
          }
          const candidate c{sc, mag, static_cast<std::uint32_t>(i), a, b};
          std::size_t at = best.size();
          while (at > 0 && better(c, best[at - 1])) --at;
          if (at >= k_) continue;  // ties the k-th on |score| but ranks after it
          best.insert(best.begin() + static_cast<std::ptrdiff_t>(at), c);
          if (best.size() > k_) best.pop_back();
        }
      }
    }
    value_type inner;
    inner.entries.reserve(best.size());
    for (const auto& c : best) inner.entries.push_back({c.score, mono_of(c)});
    return times(phi, inner);
  }

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
  std::size_t k_;
};

/// Top-k with k fixed at compile time (same values and operations as topk_semiring).
template <std::size_t K>
struct topk_fixed_semiring : topk_semiring {
  static_assert(K >= 1, "top-k needs k >= 1");
  topk_fixed_semiring() : topk_semiring(K) {}
};

}  // namespace provnn
