// packed_topk (semirings/topk.hpp): top-k's 16-byte storage in evaluation arrays, and the
// in-place products that write into it. Every value must come back as the topk_list it was
// made from; the inline forms must be chosen exactly when the list has one; times_into must
// equal times (the reference), also when its output slot held another value before; the
// monomial products used by the kernels must equal operator*.
#include "semirings/topk.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

using namespace provnn;

namespace {

// A valid top-k list made by the semiring's own plus and times: sums of products of lifted
// tokens (random scores of both signs, some exponents above 1), so sizes run from 0 to k.
topk_list random_list(const topk_semiring& s, std::mt19937& rng) {
  std::uniform_int_distribution<int> terms(0, 6), len(0, 3), tok(0, 9);
  std::uniform_real_distribution<double> score(-2.0, 2.0);
  topk_list r = s.zero();
  const int n = terms(rng);
  for (int i = 0; i < n; ++i) {
    topk_list p = s.from_real(score(rng));
    const int m = len(rng);
    for (int j = 0; j < m; ++j) p = s.times(p, s.lift(static_cast<token_index>(tok(rng)), score(rng)));
    r = s.plus(r, p);
  }
  return r;
}

bool has_inline_form(const topk_list& l) {
  if (l.entries.empty()) return true;
  if (l.entries.size() != 1) return false;
  const monomial& m = l.entries[0].mono;
  return m.is_one() || (m.size() == 1 && m[0].exponent == 1);
}

}  // namespace

TEST_CASE("packed_topk: the three inline forms, by hand") {
  const packed_topk empty;
  CHECK(empty.empty());
  CHECK(empty.size() == 0);
  CHECK(empty.top() == 0.0);
  CHECK(topk_list(empty).entries.empty());

  const packed_topk t = packed_topk::token(-2.5, 7);
  CHECK(t.boxed_list() == nullptr);
  CHECK(t.size() == 1);
  CHECK(t.top() == -2.5);
  const topk_list tl = t;
  REQUIRE(tl.entries.size() == 1);
  CHECK(tl.entries[0].score == -2.5);
  CHECK(tl.entries[0].mono == monomial(7));
  CHECK(packed_topk::token(0.0, 7).empty());  // a zero score is the empty list

  const packed_topk c = topk_list{{{3.0, monomial{}}}};
  CHECK(c.boxed_list() == nullptr);
  CHECK(c.top() == 3.0);
  CHECK(topk_list(c).entries[0].mono.is_one());
  CHECK_FALSE(c == t);

  // x7² is not a lifted token: boxed, and its best score is still read inline.
  const packed_topk sq = topk_list{{{4.0, monomial::from_factors({{7, 2}})}}};
  CHECK(sq.boxed_list() != nullptr);
  CHECK(sq.top() == 4.0);
  CHECK_FALSE(sq == t);
}

TEST_CASE("packed_topk: every list round-trips, inline exactly when it has an inline form") {
  const topk_semiring s(10);
  std::mt19937 rng(20261203);
  std::size_t inline_seen = 0, boxed_seen = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const topk_list l = random_list(s, rng);
    const packed_topk p(l);
    CHECK(topk_list(p) == l);
    CHECK(p.size() == l.entries.size());
    CHECK(p.top() == (l.entries.empty() ? 0.0 : l.entries[0].score));
    for (std::size_t a = 0; a < p.size(); ++a) {
      CHECK(p.score(a) == l.entries[a].score);
      p.with_mono(a, [&](const monomial& m) { CHECK(m == l.entries[a].mono); });
    }
    CHECK((p.boxed_list() == nullptr) == has_inline_form(l));
    (p.boxed_list() ? boxed_seen : inline_seen) += 1;
    // Copies, moves and equality keep the value; the moved-from value is the empty list.
    packed_topk copy = p;
    CHECK(copy == p);
    packed_topk moved = std::move(copy);
    CHECK(moved == p);
    CHECK(copy.empty());  // NOLINT(bugprone-use-after-move): the documented state
    packed_topk assigned = packed_topk::token(1.0, 1);
    assigned = moved;
    CHECK(topk_list(assigned) == l);
  }
  // Both encodings must have been exercised.
  CHECK(inline_seen > 100);
  CHECK(boxed_seen > 100);
}

TEST_CASE("packed_topk: list_for_writing + settle, back to the canonical form") {
  packed_topk v = topk_list{{{2.0, monomial(1)}, {1.0, monomial(2)}}};
  REQUIRE(v.boxed_list() != nullptr);
  // Rewritten in place to one lifted token: the value must collapse to the inline form.
  topk_list& w = v.list_for_writing();
  w.entries.resize(1);
  w.entries[0].score = -0.5;
  w.entries[0].mono = monomial(4);
  v.settle();
  CHECK(v.boxed_list() == nullptr);
  CHECK(v == packed_topk::token(-0.5, 4));
  // From an inline value to a long list: boxed, with the new first score as top().
  topk_list& w2 = v.list_for_writing();
  w2.entries = {{3.0, monomial(1) * monomial(2)}, {-1.0, monomial(5)}};
  v.settle();
  CHECK(v.boxed_list() != nullptr);
  CHECK(v.top() == 3.0);
  // Emptied in place: the empty list.
  v.list_for_writing().entries.clear();
  v.settle();
  CHECK(v.empty());
  CHECK(v == packed_topk{});
}

TEST_CASE("topk times_into = times, for every pair of shapes, into a slot that held a value") {
  std::mt19937 rng(7);
  for (std::size_t k : {1, 3, 10}) {
    const topk_semiring s(k);
    packed_topk out = topk_list{{{9.0, monomial::from_factors({{0, 3}})}, {-8.0, monomial(1)}}};
    std::size_t one_entry_side = 0;
    for (int trial = 0; trial < 1500; ++trial) {
      const topk_list a = random_list(s, rng), b = random_list(s, rng);
      const topk_list want = s.times(a, b);
      s.times_into(out, packed_topk(a), packed_topk(b));
      INFO("k = ", k, ", trial ", trial, ": ", s.format(a), " * ", s.format(b));
      CHECK(topk_list(out) == want);
      CHECK(out == packed_topk(want));  // canonical: same encoding as a fresh value
      one_entry_side += a.entries.size() == 1 || b.entries.size() == 1;
    }
    CHECK(one_entry_side > 200);  // the in-place path ran
  }
  // A product that underflows to 0 is dropped, as times drops it.
  const topk_semiring s(10);
  packed_topk out;
  const topk_list tiny = s.lift(1, 1e-200);
  const topk_list two = s.plus(s.lift(2, 1e-200), s.lift(3, 1.0));
  s.times_into(out, packed_topk(tiny), packed_topk(two));
  CHECK(topk_list(out) == s.times(tiny, two));
  CHECK(out.size() == 1);
}

TEST_CASE("monomial assign_product = operator*, two and three factors, short and long") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> len(0, 12), tok(0, 30), ex(1, 3);
  auto random_mono = [&](int max_len) {
    std::vector<factor> fs;
    const int n = len(rng) % (max_len + 1);
    for (int i = 0; i < n; ++i) fs.push_back({static_cast<token_index>(tok(rng)), static_cast<std::uint32_t>(ex(rng))});
    return monomial::from_factors(fs);
  };
  std::size_t long_ab = 0;
  monomial out = monomial::from_factors({{99, 4}});  // storage reused across products
  for (int trial = 0; trial < 3000; ++trial) {
    const monomial a = random_mono(12), b = random_mono(12), c = random_mono(12);
    out.assign_product(a, b);
    CHECK(out == a * b);
    out.assign_product(a, b, c);
    CHECK(out == a * b * c);
    long_ab += a.size() + b.size() > 16;  // the path without the stack buffer
  }
  CHECK(long_ab > 20);
}

TEST_CASE("topk's bound compaction = a plain filter, vector and scalar paths, every length") {
  // detail::compact_positive_at_least is pass 1's selection in the fused kernel: the indices
  // and values of the bounds that are > 0 and ≥ lim, in order. Where the tests are compiled
  // with AVX-512 (the default native build on such a CPU) it runs eight at a time, storing
  // eight lanes at its count; elsewhere both arms below run the scalar loop. The reference is
  // a push_back filter.
  std::mt19937 rng(5);
  const double specials[] = {0.0, -0.0, std::numeric_limits<double>::denorm_min(), 0.25, 0.5, 1.0, -1.0,
                             std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
  std::uniform_int_distribution<int> pick_special(0, 8), coin(0, 2);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::size_t taken = 0, skipped = 0;
  for (std::size_t n = 0; n <= 41; ++n)
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> x(n);
      for (double& v : x) v = coin(rng) == 0 ? specials[pick_special(rng)] : u(rng);  // ties, 0, inf, NaN
      const double lims[] = {0.0, -1.0, std::numeric_limits<double>::denorm_min(), 0.25, 0.5, u(rng),
                             std::numeric_limits<double>::infinity()};
      for (const double lim : lims) {
        std::vector<std::uint32_t> want_idx;
        std::vector<double> want_val;
        for (std::size_t i = 0; i < n; ++i)
          if (x[i] > 0.0 && x[i] >= lim) {
            want_idx.push_back(static_cast<std::uint32_t>(i));
            want_val.push_back(x[i]);
          }
        taken += want_idx.size();
        skipped += n - want_idx.size();
        for (const bool vector_path : {true, false}) {
          // Exactly n entries, as the kernel has: a write at n or past it fails under ASan.
          std::vector<std::uint32_t> idx(n);
          std::vector<double> val(n);
          const std::size_t m =
              vector_path ? detail::compact_positive_at_least(x.data(), n, lim, idx.data(), val.data())
                          : detail::compact_positive_at_least_scalar(x.data(), 0, n, lim, idx.data(), val.data());
          REQUIRE(m == want_idx.size());
          CHECK(std::vector<std::uint32_t>(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(m)) == want_idx);
          CHECK(std::vector<double>(val.begin(), val.begin() + static_cast<std::ptrdiff_t>(m)) == want_val);
        }
      }
    }
  CHECK(taken > 1000);  // both outcomes are exercised
  CHECK(skipped > 1000);
}

TEST_CASE("topk fused_sum_into: a term after one below the k-th still enters, with and without sorting") {
  // φ ⊗ ⊕_i ψ_i ⊗ σ_i with k = 3, by hand. Term A (ψ = 2·x10, σ = 2·x20 ⊕ 2·x21 ⊕ 2·x22) gives
  // three products of |score| 4, so after A the k-th kept is 4. `filler` terms (ψ = 1·x, σ =
  // 2·x) have bound 2, which is the floor (the 3rd largest bound). Term Y (2·x1 ⊗ 2·x2) comes
  // last: |score| 4 ties A's, and its monomial x0·x1·x2 ranks first (earlier tokens). With 12
  // fillers, 14 terms reach the floor (> 4k): the kernel visits them in index order, and a
  // filler below the k-th must not end the pass. With 2 fillers it sorts them by bound.
  const topk_semiring s(3);
  const topk_list want{{{4.0, monomial::from_factors({{0, 1}, {1, 1}, {2, 1}})},
                        {4.0, monomial::from_factors({{0, 1}, {10, 1}, {20, 1}})},
                        {4.0, monomial::from_factors({{0, 1}, {10, 1}, {21, 1}})}}};
  for (const std::size_t fillers : {12, 2}) {
    std::vector<packed_topk> psi{packed_topk::token(2.0, 10)}, sigma{s.plus(s.plus(s.lift(20, 2.0), s.lift(21, 2.0)), s.lift(22, 2.0))};
    for (std::size_t f = 0; f < fillers; ++f) {
      psi.push_back(packed_topk::token(1.0, static_cast<token_index>(30 + f)));
      sigma.push_back(packed_topk::token(2.0, static_cast<token_index>(60 + f)));
    }
    psi.push_back(packed_topk::token(2.0, 1));
    sigma.push_back(packed_topk::token(2.0, 2));
    const packed_topk phi = packed_topk::token(1.0, 0);
    // The reference: the fold of the semiring's own plus and times.
    topk_list fold = s.zero();
    for (std::size_t i = 0; i < psi.size(); ++i) fold = s.plus(fold, s.times(topk_list(psi[i]), topk_list(sigma[i])));
    fold = s.times(topk_list(phi), fold);
    REQUIRE(fold == want);
    for (const bool gathered : {false, true}) {
      std::vector<double> bounds;
      for (const auto& v : sigma) bounds.push_back(topk_semiring::fused_bound(v));
      packed_topk out;
      s.fused_sum_into(
          out, phi, psi.size(), [&](std::size_t i) -> const packed_topk& { return psi[i]; },
          [&](std::size_t i) -> const packed_topk& { return sigma[i]; }, gathered ? bounds.data() : nullptr);
      CHECK(topk_list(out) == want);
    }
  }
}
