// packed_count (semirings/counting.hpp): counting's 8-byte storage in evaluation arrays. Every
// value must come back as the cpp_int it was made from; inline exactly on [0, 2^63).
#include "semirings/counting.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "circuits/evaluate.hpp"

using namespace provnn;
using big = boost::multiprecision::cpp_int;

TEST_CASE("packed_count: inline exactly from 0 to 2^63 - 1, every cpp_int round-trips") {
  const big two63 = big(1) << 63;
  for (const big& v : std::vector<big>{0, 1, 12345, two63 - 1}) {
    const packed_count p(v);
    CHECK_FALSE(p.boxed());
    CHECK(p.raw() == static_cast<std::uint64_t>(v));
    CHECK(big(p) == v);
  }
  for (const big& v : std::vector<big>{two63, two63 + 1, big(1) << 64, (big(1) << 200) + 7, -1, -(big(1) << 70)}) {
    const packed_count p(v);
    CHECK(p.boxed());
    CHECK(p.raw() >= packed_count::box_tag);
    CHECK(big(p) == v);
  }
  // From built-in integers, at the edges of their ranges.
  CHECK(big(packed_count(std::numeric_limits<std::int64_t>::max())) == big(std::numeric_limits<std::int64_t>::max()));
  CHECK_FALSE(packed_count(std::numeric_limits<std::int64_t>::max()).boxed());
  CHECK(packed_count(std::numeric_limits<std::uint64_t>::max()).boxed());
  CHECK(big(packed_count(std::numeric_limits<std::uint64_t>::max())) == big(std::numeric_limits<std::uint64_t>::max()));
  CHECK(big(packed_count(std::numeric_limits<std::int64_t>::min())) == big(std::numeric_limits<std::int64_t>::min()));
  CHECK(packed_count(-3).boxed());
  CHECK(big(packed_count(-3)) == -3);
  static_assert(sizeof(packed_count) == 8);
  static_assert(std::is_same_v<stored_value_t<counting_semiring>, packed_count>);
}

TEST_CASE("packed_count: copies are deep, moves leave zero, equality is by value") {
  const big huge = (big(1) << 100) + 3;
  packed_count a(huge);
  packed_count b = a;  // deep copy
  CHECK(b.boxed());
  CHECK(b.raw() != a.raw());  // its own heap value
  b = packed_count(5);         // the copy released; a untouched
  CHECK(big(a) == huge);
  CHECK(big(b) == 5);
  packed_count c = std::move(a);
  CHECK(big(c) == huge);
  CHECK(big(a) == 0);  // NOLINT(bugprone-use-after-move): documented state
  a = c;  // a held 0 inline; now its own copy of c's heap value
  CHECK(a == c);
  const packed_count& same = c;
  c = same;  // self-assignment keeps the value
  CHECK(big(c) == huge);
  b = a;  // inline ← boxed
  CHECK(b == a);
  b = 7;  // boxed ← inline
  CHECK_FALSE(b.boxed());
  CHECK(b == 7);
  // Equality: inline values by bits, boxed by value, never inline = boxed.
  CHECK(packed_count(huge) == packed_count(huge));
  CHECK_FALSE(packed_count(huge) == packed_count(huge + 1));
  CHECK_FALSE(packed_count(huge) == packed_count(3));
  CHECK(packed_count(big(1) << 62) == packed_count(std::uint64_t{1} << 62));
  std::ostringstream os;
  os << packed_count(huge) << ' ' << packed_count(42);
  CHECK(os.str() == "1267650600228229401496703205379 42");
}

TEST_CASE("packed_count: a vector of mixed counts grows, copies and round-trips") {
  std::mt19937_64 rng(20261130);
  std::vector<big> want;
  std::vector<packed_count> got;
  for (int i = 0; i < 2000; ++i) {
    big v = rng() >> (rng() % 64);
    if (i % 3 == 0) v = (v << (rng() % 130)) + rng();  // often past 2^63
    if (i % 17 == 0) v = -v;
    want.push_back(v);
    got.emplace_back(v);  // reallocations move boxed values
  }
  const std::vector<packed_count> copy = got;
  got.erase(got.begin(), got.begin() + 1000);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(big(copy[i]) == want[i]);
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(big(got[i]) == want[i + 1000]);
}
