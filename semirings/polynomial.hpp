// Monomials and polynomials over token indices: the carrier of N[X] (semirings/nx.hpp),
// also used by B[X], Trio[X] and by top-k (which labels each score with its monomial).
//
//   monomial    a finite product Π x_t^e_t, stored as (token, exponent) factors sorted by
//               token, every exponent ≥ 1; the empty monomial is 1.
//   polynomial  Σ c_m · m with natural-number coefficients (boost cpp_int, never wraps),
//               stored as terms sorted in the canonical monomial order, no two terms with
//               the same monomial, no zero coefficient. The representation of a value is
//               therefore unique, and == on polynomials is equality of polynomials.
//
// Canonical order: lexicographic with smaller token indices more significant and larger
// exponents first (x0² > x0·x1 > x1² > x1 > 1 when x0 is token 0). It is a *monomial order*
// (a < b ⇒ a·m < b·m), which lets multiplication by a single term keep the order without
// re-sorting, and it prints polynomials the way one writes them by hand:
// `x^2 + 3·x·y + 2·y^2 + 1`.
//
// Formatting: `2·x[3]·W1[3,4]^2 + …`. Exponents are written `^e` rather than as Unicode
// superscripts because token names themselves may carry superscripts (the `w²` variant).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <boost/multiprecision/cpp_int.hpp>
#include <compare>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "semirings/semiring.hpp"

namespace provnn {

/// Natural-number coefficients: arbitrary precision, never wrap.
using natural = boost::multiprecision::cpp_int;

/// One factor x_token^exponent of a monomial.
struct factor {
  token_index token = 0;
  std::uint32_t exponent = 1;
  friend bool operator==(const factor&, const factor&) = default;
};

static_assert(std::is_trivially_copyable_v<factor>);  // monomial's merge writes factors through a pointer

/// Token name under a namer; `t<index>` when the namer is empty.
inline std::string token_name(token_index t, const token_namer& names) {
  return names ? names(t) : fmt::format("t{}", t);
}

/// A product of tokens with exponents, in canonical form (factors sorted by token, exponents ≥ 1).
class monomial {
 public:
  /// Up to 16 factors are held inline. An LRP path has about three tokens per layer (activation,
  /// weight, normaliser), so a 4–5 layer network's monomials have 13–16: with 6 inline, nearly
  /// every one was on the heap, a malloc per copy and a pointer chase per read (issue 5: N[X] on
  /// 16-12-12-8-4 2.4× FLINT's time with 6, 1.3× with 16; top-k on lenet5 15–20 % faster).
  using storage = boost::container::small_vector<factor, 16>;
  using const_iterator = storage::const_iterator;

  /// The empty product, 1.
  monomial() = default;
  /// The single token t (exponent 1).
  explicit monomial(token_index t) { factors_.push_back({t, 1}); }

  // small_vector does not declare its moves noexcept, which would make every
  // std::vector<term> copy on growth. They cannot throw here: the elements are trivially
  // copyable and a move either steals the heap buffer or copies into the inline one.
  monomial(const monomial&) = default;
  monomial& operator=(const monomial&) = default;
  monomial(monomial&& o) noexcept : factors_(std::move(o.factors_)) {}
  monomial& operator=(monomial&& o) noexcept {
    factors_ = std::move(o.factors_);
    return *this;
  }
  ~monomial() = default;

  /// Builds a monomial from factors in any order; equal tokens have their exponents added
  /// and zero exponents are dropped. O(n log n).
  static monomial from_factors(std::span<const factor> fs) {
    monomial m;
    m.factors_.assign(fs.begin(), fs.end());
    std::sort(m.factors_.begin(), m.factors_.end(),
              [](const factor& a, const factor& b) { return a.token < b.token; });
    std::size_t out = 0;
    for (std::size_t i = 0; i < m.factors_.size(); ++i) {
      if (m.factors_[i].exponent == 0) continue;
      if (out > 0 && m.factors_[out - 1].token == m.factors_[i].token) {
        m.factors_[out - 1].exponent += m.factors_[i].exponent;
      } else {
        m.factors_[out++] = m.factors_[i];
      }
    }
    m.factors_.resize(out);
    return m;
  }
  static monomial from_factors(std::initializer_list<factor> fs) {
    return from_factors(std::span<const factor>(fs.begin(), fs.size()));
  }

  const_iterator begin() const noexcept { return factors_.begin(); }
  const_iterator end() const noexcept { return factors_.end(); }
  std::size_t size() const noexcept { return factors_.size(); }  ///< number of distinct tokens
  bool is_one() const noexcept { return factors_.empty(); }
  const factor& operator[](std::size_t i) const noexcept { return factors_[i]; }

  /// Total degree Σ e_t.
  std::uint64_t degree() const noexcept {
    std::uint64_t d = 0;
    for (const auto& f : factors_) d += f.exponent;
    return d;
  }
  /// Exponent of token t (0 when absent). O(log n).
  std::uint32_t exponent_of(token_index t) const noexcept {
    auto it = std::lower_bound(factors_.begin(), factors_.end(), t,
                               [](const factor& f, token_index x) { return f.token < x; });
    return (it != factors_.end() && it->token == t) ? it->exponent : 0;
  }

  /// The product: a merge of the two factor lists, O(|a| + |b|).
  friend monomial operator*(const monomial& a, const monomial& b) {
    monomial r;
    r.factors_.reserve(a.size() + b.size());
    merge(a, b, r, [](std::uint32_t x, std::uint32_t y) { return x + y; });
    return r;
  }
  /// *this = a · b, reusing this monomial's storage (no allocation when its capacity is
  /// enough: evaluation arrays that are filled again). Neither a nor b may be *this.
  void assign_product(const monomial& a, const monomial& b) {
    factors_.clear();
    merge(a, b, *this, [](std::uint32_t x, std::uint32_t y) { return x + y; });
  }
  /// *this = a · b · c, as assign_product, with a · b made on the stack when it is short
  /// (top-k: φ's and ψ's monomials are one token each for lifted tokens).
  void assign_product(const monomial& a, const monomial& b, const monomial& c) {
    constexpr std::size_t short_product = 16;
    const auto add = [](std::uint32_t x, std::uint32_t y) { return x + y; };
    if (a.size() + b.size() > short_product) {
      assign_product(a * b, c);
      return;
    }
    factor ab[short_product];
    const factor* ab_end = merge_into(a.factors_.data(), a.factors_.data() + a.size(), b.factors_.data(),
                                      b.factors_.data() + b.size(), ab, add);
    factors_.resize(static_cast<std::size_t>(ab_end - ab) + c.size(), boost::container::default_init);
    const factor* end = merge_into(ab, ab_end, c.factors_.data(), c.factors_.data() + c.size(), factors_.data(), add);
    factors_.resize(static_cast<std::size_t>(end - factors_.data()));
  }
  /// The product with every exponent capped at 1 (B[X], Trio[X], lineage: monomials are sets).
  static monomial set_union(const monomial& a, const monomial& b) {
    monomial r;
    r.factors_.reserve(a.size() + b.size());
    merge(a, b, r, [](std::uint32_t, std::uint32_t) { return std::uint32_t{1}; });
    for (auto& f : r.factors_) f.exponent = 1;
    return r;
  }
  /// The same tokens with every exponent 1.
  monomial support() const {
    monomial r = *this;
    for (auto& f : r.factors_) f.exponent = 1;
    return r;
  }

  friend bool operator==(const monomial& a, const monomial& b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  /// The canonical order (see the file comment): `a < b` when a comes first when printed.
  friend std::strong_ordering operator<=>(const monomial& a, const monomial& b) noexcept {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
      const factor& x = a.factors_[i];
      const factor& y = b.factors_[i];
      // Having an earlier token is more significant: that monomial is printed first.
      if (x.token != y.token) return x.token < y.token ? std::strong_ordering::less : std::strong_ordering::greater;
      if (x.exponent != y.exponent) return y.exponent <=> x.exponent;
    }
    // The longer one has an extra positive exponent of a later token: it is "bigger", printed first.
    return b.size() <=> a.size();
  }

 private:
  // The merge of the sorted factor lists [i, ie) and [j, je) written from `out` on; returns
  // the end. Equal tokens have their exponents combined.
  template <class Combine>
  static factor* merge_into(const factor* i, const factor* ie, const factor* j, const factor* je, factor* out,
                            Combine combine) {
    while (i != ie && j != je) {
      if (i->token < j->token) {
        *out++ = *i++;
      } else if (j->token < i->token) {
        *out++ = *j++;
      } else {
        *out++ = {i->token, combine(i->exponent, j->exponent)};
        ++i, ++j;
      }
    }
    out = std::copy(i, ie, out);
    return std::copy(j, je, out);
  }
  // r = the merge of a and b (r empty, not a or b). Written through a pointer into storage
  // sized for both (factor is trivially copyable: default_init leaves it unwritten), then
  // trimmed: no capacity check per factor (top-k builds a monomial per entry, issue 5).
  template <class Combine>
  static void merge(const monomial& a, const monomial& b, monomial& r, Combine combine) {
    r.factors_.resize(a.size() + b.size(), boost::container::default_init);
    const factor* end = merge_into(a.factors_.data(), a.factors_.data() + a.size(), b.factors_.data(),
                                   b.factors_.data() + b.size(), r.factors_.data(), combine);
    r.factors_.resize(static_cast<std::size_t>(end - r.factors_.data()));
  }

  storage factors_;
};

/// `x[3]·W1[3,4]^2`; the empty monomial is `1`.
inline std::string format_monomial(const monomial& m, const token_namer& names = {}) {
  if (m.is_one()) return "1";
  std::string out;
  for (const auto& f : m) {
    if (!out.empty()) out += "·";
    out += token_name(f.token, names);
    if (f.exponent != 1) out += fmt::format("^{}", f.exponent);
  }
  return out;
}

/// One term c·m of a polynomial.
struct term {
  monomial mono;
  natural coefficient;
  friend bool operator==(const term&, const term&) = default;
};

/// A polynomial with natural-number coefficients in canonical form (see the file comment).
/// Iterate over it to read the terms in canonical order (the CLI prints them as JSON).
class polynomial {
 public:
  using const_iterator = std::vector<term>::const_iterator;

  /// The zero polynomial.
  polynomial() = default;

  static polynomial constant(const natural& c) {
    polynomial p;
    if (c != 0) p.terms_.push_back({monomial{}, c});
    return p;
  }
  static polynomial variable(token_index t) {
    polynomial p;
    p.terms_.push_back({monomial(t), natural(1)});
    return p;
  }
  static polynomial from_monomial(monomial m, const natural& c = 1) {
    polynomial p;
    if (c != 0) p.terms_.push_back({std::move(m), c});
    return p;
  }
  /// Normalises any list of terms (sorts, adds the coefficients of equal monomials, drops
  /// zeros). O(n log n).
  static polynomial from_terms(std::vector<term> ts) {
    polynomial p;
    p.terms_ = std::move(ts);
    p.normalise();
    return p;
  }

  const_iterator begin() const noexcept { return terms_.begin(); }
  const_iterator end() const noexcept { return terms_.end(); }
  const std::vector<term>& terms() const noexcept { return terms_; }
  std::size_t size() const noexcept { return terms_.size(); }  ///< number of monomials
  bool is_zero() const noexcept { return terms_.empty(); }

  /// Coefficient of m (0 when absent). O(log n) comparisons.
  natural coefficient_of(const monomial& m) const {
    auto it = std::lower_bound(terms_.begin(), terms_.end(), m,
                               [](const term& t, const monomial& x) { return t.mono < x; });
    return (it != terms_.end() && it->mono == m) ? it->coefficient : natural(0);
  }

  /// Sum: one linear merge of the two sorted term lists, O(|p| + |q|) monomial comparisons.
  friend polynomial operator+(const polynomial& p, const polynomial& q) {
    if (p.is_zero()) return q;
    if (q.is_zero()) return p;
    polynomial r;
    r.terms_.reserve(p.size() + q.size());
    auto i = p.terms_.begin(), j = q.terms_.begin();
    while (i != p.terms_.end() && j != q.terms_.end()) {
      const auto c = i->mono <=> j->mono;
      if (c < 0) {
        r.terms_.push_back(*i++);
      } else if (c > 0) {
        r.terms_.push_back(*j++);
      } else {
        natural s = i->coefficient + j->coefficient;
        if (s != 0) r.terms_.push_back({i->mono, std::move(s)});
        ++i, ++j;
      }
    }
    r.terms_.insert(r.terms_.end(), i, p.terms_.end());
    r.terms_.insert(r.terms_.end(), j, q.terms_.end());
    return r;
  }

  /// Product. Multiplying by one term keeps the canonical order (it is a monomial order),
  /// so each row small[i]·large is already sorted: a single term costs O(n), and in general
  /// the rows are merged with a heap, O(|p||q| log min(|p|,|q|)) comparisons, building every
  /// product monomial once and storing only the combined result.
  friend polynomial operator*(const polynomial& p, const polynomial& q) {
    if (p.is_zero() || q.is_zero()) return {};
    const polynomial& small = p.size() <= q.size() ? p : q;
    const polynomial& large = p.size() <= q.size() ? q : p;
    if (small.size() == 1)
      return multiply(p, q, [](const monomial& a, const monomial& b) { return a * b; }, true);
    return merge_rows(small, large);
  }
  /// Σ of many polynomials: one k-way merge instead of a chain of binary merges,
  /// O(n log k) comparisons for n terms in k inputs.
  static polynomial sum(std::span<const polynomial> ps) {
    std::size_t n = 0;
    const polynomial* only = nullptr;
    std::size_t nonzero = 0;
    for (const auto& p : ps) {
      n += p.size();
      if (!p.is_zero()) only = &p, ++nonzero;
    }
    if (nonzero == 0) return {};
    if (nonzero == 1) return *only;
    if (nonzero == 2) {
      const polynomial* a = nullptr;
      for (const auto& p : ps)
        if (!p.is_zero()) {
          if (a == nullptr) a = &p;
          else return *a + p;
        }
    }
    // k-way merge of the sorted inputs: every term is copied once, O(n log k) comparisons.
    std::vector<std::pair<const term*, const term*>> cursors;  // (next, end) per input
    for (const auto& p : ps)
      if (!p.is_zero()) cursors.emplace_back(p.terms_.data(), p.terms_.data() + p.terms_.size());
    std::vector<std::uint32_t> heap(cursors.size());
    for (std::uint32_t i = 0; i < heap.size(); ++i) heap[i] = i;
    const auto later = [&](std::uint32_t a, std::uint32_t b) { return cursors[b].first->mono < cursors[a].first->mono; };
    std::make_heap(heap.begin(), heap.end(), later);
    polynomial r;
    r.terms_.reserve(n);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      auto& c = cursors[heap.back()];
      if (!r.terms_.empty() && r.terms_.back().mono == c.first->mono)
        r.terms_.back().coefficient += c.first->coefficient;
      else
        r.terms_.push_back(*c.first);
      if (++c.first != c.second)
        std::push_heap(heap.begin(), heap.end(), later);
      else
        heap.pop_back();
    }
    r.terms_.erase(std::remove_if(r.terms_.begin(), r.terms_.end(), [](const term& t) { return t.coefficient == 0; }),
                   r.terms_.end());
    return r;
  }

  /// Generic product with a custom monomial product (B[X] and Trio[X] use the set union);
  /// `order_preserving` says whether multiplying by one monomial keeps the canonical order.
  template <class MonoTimes>
  static polynomial multiply(const polynomial& p, const polynomial& q, MonoTimes mono_times,
                             bool order_preserving) {
    if (p.is_zero() || q.is_zero()) return {};
    const polynomial& small = p.size() <= q.size() ? p : q;
    const polynomial& large = p.size() <= q.size() ? q : p;
    polynomial r;
    r.terms_.reserve(small.size() * large.size());
    for (const auto& s : small.terms_)
      for (const auto& l : large.terms_) r.terms_.push_back({mono_times(s.mono, l.mono), s.coefficient * l.coefficient});
    if (small.size() == 1 && order_preserving) return r;  // already canonical, no zero coefficients
    r.normalise();
    return r;
  }

  /// Sets every coefficient to 1 (B[X]: Boolean coefficients).
  void clamp_coefficients() {
    for (auto& t : terms_) t.coefficient = 1;
  }

  friend bool operator==(const polynomial&, const polynomial&) = default;

 private:
  // Heap merge of the sorted rows small[i]·large (see operator*).
  static polynomial merge_rows(const polynomial& small, const polynomial& large) {
    struct cursor {
      term value;  // small[row]·large[col]
      std::uint32_t col;
    };
    std::vector<cursor> rows;  // one per row of small; the heap holds row indices only
    rows.reserve(small.size());
    const auto product = [&](std::uint32_t row, std::uint32_t col) {
      const term& s = small.terms_[row];
      const term& l = large.terms_[col];
      return term{s.mono * l.mono, s.coefficient * l.coefficient};
    };
    std::vector<std::uint32_t> heap;
    heap.reserve(small.size());
    for (std::uint32_t i = 0; i < small.size(); ++i) {
      rows.push_back({product(i, 0), 0});
      heap.push_back(i);
    }
    const auto later = [&](std::uint32_t a, std::uint32_t b) { return rows[b].value.mono < rows[a].value.mono; };
    std::make_heap(heap.begin(), heap.end(), later);
    polynomial r;
    // The result has at most |small|·|large| terms; reserving that (up to a cap) avoids
    // moving a growing vector of terms several times.
    r.terms_.reserve(std::min<std::size_t>(small.size() * large.size(), std::size_t{1} << 22));
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const std::uint32_t row = heap.back();
      cursor& c = rows[row];
      if (!r.terms_.empty() && r.terms_.back().mono == c.value.mono)
        r.terms_.back().coefficient += c.value.coefficient;
      else
        r.terms_.push_back(std::move(c.value));
      if (++c.col < large.size()) {
        c.value = product(row, c.col);
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        heap.pop_back();
      }
    }
    // Coefficients of N[X] are positive, but from_terms accepts any integers: drop zeros.
    r.terms_.erase(std::remove_if(r.terms_.begin(), r.terms_.end(), [](const term& t) { return t.coefficient == 0; }),
                   r.terms_.end());
    return r;
  }

  void normalise() {
    std::sort(terms_.begin(), terms_.end(), [](const term& a, const term& b) { return a.mono < b.mono; });
    std::size_t out = 0;
    for (std::size_t i = 0; i < terms_.size(); ++i) {
      if (out > 0 && terms_[out - 1].mono == terms_[i].mono) {
        terms_[out - 1].coefficient += terms_[i].coefficient;
      } else {
        if (out > 0 && terms_[out - 1].coefficient == 0) --out;
        if (out != i) terms_[out] = std::move(terms_[i]);
        ++out;
      }
    }
    if (out > 0 && terms_[out - 1].coefficient == 0) --out;
    terms_.erase(terms_.begin() + static_cast<std::ptrdiff_t>(out), terms_.end());
  }

  std::vector<term> terms_;
};

/// `2·x[3]·W1[3,4] + x[1]^2 + 1`, terms in canonical order; `0` for the zero polynomial.
/// A coefficient 1 is omitted except on the constant term.
inline std::string format_polynomial(const polynomial& p, const token_namer& names = {}) {
  if (p.is_zero()) return "0";
  std::string out;
  for (const auto& t : p) {
    if (!out.empty()) out += " + ";
    if (t.mono.is_one()) {
      out += t.coefficient.str();
    } else {
      if (t.coefficient != 1) out += t.coefficient.str() + "·";
      out += format_monomial(t.mono, names);
    }
  }
  return out;
}

}  // namespace provnn
