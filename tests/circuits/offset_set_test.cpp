// detail::offset_set (a sparse token block's held offsets), checked against a plain sorted
// vector and std::lower_bound on random sets of every density, in both of its storages.
#include "circuits/detail/offset_set.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "circuits/file_format.hpp"
#include "circuits/tokens.hpp"
#include "circuits/circuit.hpp"

using provnn::detail::offset_set;

TEST_CASE("offset_set: at, find and for_each agree with a sorted vector, list and bitmap alike") {
  std::mt19937_64 g(7);
  bool saw_list = false, saw_bitmap = false;
  for (const std::uint64_t universe : {1u, 63u, 64u, 65u, 200u, 4096u, 10007u}) {
    for (const double density : {0.0, 0.01, 0.05, 0.2, 0.5, 0.97, 1.0}) {
      std::vector<std::uint32_t> ref;
      std::bernoulli_distribution keep(density);
      for (std::uint32_t o = 0; o < universe; ++o)
        if (keep(g)) ref.push_back(o);
      offset_set s;
      s.assign(ref, universe);
      CAPTURE(universe);
      CAPTURE(density);
      REQUIRE(s.size() == ref.size());
      (s.is_bitmap() ? saw_bitmap : saw_list) = true;
      // The smaller storage is kept: half of 10 007 coordinates (≈ 5 000 × 4 bytes as a list)
      // fit a bitmap of 157 words (1 884 bytes with their counts); 1 % (≈ 100 × 4) does not.
      if (universe == 10007 && density == 0.5) CHECK(s.is_bitmap());
      if (universe == 10007 && density == 0.01) CHECK_FALSE(s.is_bitmap());
      for (std::size_t q = 0; q < ref.size(); ++q) REQUIRE(s.at(q) == ref[q]);
      for (std::uint64_t o = 0; o < universe + 70; ++o) {
        const auto it = std::lower_bound(ref.begin(), ref.end(), o);
        const bool held = it != ref.end() && *it == o;
        const auto f = s.find(o);
        REQUIRE(f.has_value() == held);
        if (held) REQUIRE(*f == static_cast<std::size_t>(it - ref.begin()));
      }
      std::vector<std::uint32_t> seen;
      s.for_each([&](std::uint64_t o) { seen.push_back(static_cast<std::uint32_t>(o)); });
      CHECK(seen == ref);
    }
  }
  CHECK(saw_list);
  CHECK(saw_bitmap);
}

TEST_CASE("a dense sparse block (a ReLU layer's used weights) costs a bitmap, and names and files stay the same") {
  using namespace provnn;
  circuit c;
  auto& tt = c.tokens();
  const std::uint32_t shape[] = {300, 784};
  const std::uint8_t j_major[] = {1, 0};
  std::vector<std::uint32_t> present;
  std::mt19937_64 g(11);
  for (std::uint32_t o = 0; o < 300 * 784; ++o)
    if (g() % 2) present.push_back(o);
  const auto before = tt.bytes();
  const auto first = tt.add_block(token_kind::parameter, token_variant::plain, 1, shape, j_major, 0, present);
  // Values 8 bytes per held token (plus the table's slack), the offsets ≈ 0.19 bytes per coordinate, not 4 per token.
  const double extra = static_cast<double>(tt.bytes() - before) - 8.0 * static_cast<double>(present.size());
  CHECK(extra < 0.25 * 300 * 784 + 8.0 * present.size() / 8);
  // Token q of the block has the q-th held offset (j-major: offset = j · 300 + k), by name too.
  for (std::size_t q : {std::size_t{0}, std::size_t{1}, present.size() / 2, present.size() - 1}) {
    const std::uint32_t o = present[q];
    const std::uint32_t j = o / 300, k = o % 300;
    const auto t = static_cast<token_index>(first + q);
    CHECK(tt.name(t) == "W1[" + std::to_string(k) + "," + std::to_string(j) + "]");
    CHECK(tt.find(tt.name(t)) == t);
    const std::uint32_t idx[] = {k, j};
    CHECK(tt.block_token(first, idx) == t);
  }
  // A coordinate the block does not hold has no token.
  std::uint32_t absent = 0;
  while (std::binary_search(present.begin(), present.end(), absent)) ++absent;
  const std::uint32_t aidx[] = {absent % 300, absent / 300};
  CHECK_FALSE(tt.block_token(first, aidx).has_value());
  // The file holds the bitmap; read back, the block holds the same tokens.
  for (token_index t = first; t < first + 5; ++t) tt.set_value(t, 0.25 * t);
  c.add_root({"w", c.token(first + 3)});
  const circuit back = deserialize_circuit(serialize_circuit(c));
  REQUIRE(back.tokens().block_count() == 1);
  CHECK(back.tokens().block_at(0).present.size() == present.size());
  CHECK(back.tokens().block_at(0).present.is_bitmap());
  for (std::size_t q = 0; q < present.size(); q += 997)
    CHECK(back.tokens().name(static_cast<token_index>(first + q)) == tt.name(static_cast<token_index>(first + q)));
  CHECK(serialize_circuit(back) == serialize_circuit(c));
}

TEST_CASE("offset_set::assign_words holds the set bits: the same set as assign() with them listed") {
  std::mt19937_64 g(23);
  for (const std::uint64_t universe : {1u, 64u, 65u, 4096u, 10007u}) {
    for (const double density : {0.01, 0.5, 1.0}) {
      std::vector<std::uint32_t> ref;
      std::vector<std::uint64_t> words((universe + 63) / 64, 0);
      std::bernoulli_distribution keep(density);
      for (std::uint32_t o = 0; o < universe; ++o)
        if (keep(g)) ref.push_back(o), words[o / 64] |= std::uint64_t{1} << (o % 64);
      offset_set a, b;
      a.assign(ref, universe);
      b.assign_words(words, universe);
      CAPTURE(universe);
      CAPTURE(density);
      REQUIRE(b.size() == ref.size());
      CHECK(b.is_bitmap() == a.is_bitmap());  // the same storage choice
      for (std::size_t q = 0; q < ref.size(); ++q) REQUIRE(b.at(q) == ref[q]);
      for (std::uint64_t o = 0; o < universe; ++o) REQUIRE(b.find(o) == a.find(o));
    }
  }
}
