#include "circuits/tokens.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/error.hpp"

using namespace provnn;

TEST_CASE("token names follow the documented grammar") {
  token_table tt;
  using K = token_kind;
  using V = token_variant;
  CHECK(tt.name(tt.intern(K::input, V::plain, 0, {0, 3, 4})) == "x[0,3,4]");
  CHECK(tt.name(tt.intern(K::input, V::pos, 0, {0, 3, 4})) == "x+[0,3,4]");
  CHECK(tt.name(tt.intern(K::input, V::neg, 0, {0, 3, 4})) == "x-[0,3,4]");
  CHECK(tt.name(tt.intern(K::input, V::low, 0, {2})) == "l[2]");
  CHECK(tt.name(tt.intern(K::input, V::high, 0, {2})) == "h[2]");
  CHECK(tt.name(tt.intern(K::parameter, V::plain, 1, {3, 4})) == "W1[3,4]");
  CHECK(tt.name(tt.intern(K::parameter, V::pos, 1, {3, 4})) == "W1+[3,4]");
  CHECK(tt.name(tt.intern(K::parameter, V::neg, 1, {3, 4})) == "W1-[3,4]");
  CHECK(tt.name(tt.intern(K::parameter, V::gamma_pos, 12, {3, 4})) == "W12g+[3,4]");
  CHECK(tt.name(tt.intern(K::parameter, V::gamma_neg, 1, {3, 4})) == "W1g-[3,4]");
  CHECK(tt.name(tt.intern(K::parameter, V::square, 1, {3, 4})) == "W1^2[3,4]");
  CHECK(tt.name(tt.intern(K::parameter, V::one, 1, {3, 4})) == "W1^0[3,4]");
  CHECK(tt.name(tt.intern(K::bias, V::plain, 1, {3})) == "b1[3]");
  CHECK(tt.name(tt.intern(K::activation, V::plain, 2, {7})) == "a2[7]");
  CHECK(tt.name(tt.intern(K::normaliser, V::plain, 1, {3}, 0)) == "n1[3]#0");
  CHECK(tt.name(tt.intern(K::normaliser, V::plain, 1, {3}, 2)) == "n1[3]#2");
  CHECK(tt.name(tt.intern(K::target, V::plain, 0, {7})) == "r[7]");
  CHECK(tt.name(tt.intern(K::constant, V::plain, 0, {})) == "c[]");
  CHECK(tt.size() == 18);
}

TEST_CASE("interning creates each token once and find(name) parses every name back") {
  token_table tt;
  std::vector<token_index> made;
  for (std::uint8_t k = 0; k < token_kind_count; ++k)
    for (std::uint8_t v = 0; v < token_variant_count; ++v) {
      const auto kind = static_cast<token_kind>(k);
      const auto var = static_cast<token_variant>(v);
      if ((var == token_variant::low || var == token_variant::high) && kind != token_kind::input) continue;
      const std::uint32_t layer = has_layer(kind) ? 3 : 0;
      const std::uint32_t term = kind == token_kind::normaliser ? 1 : 0;
      const auto t = tt.intern(kind, var, layer, {1, 20, 300}, term);
      CHECK(tt.intern(kind, var, layer, {1, 20, 300}, term) == t);  // interned
      CHECK(tt.intern(kind, var, layer, {1, 20}, term) != t);        // a different index is a different token
      made.push_back(t);
    }
  for (auto t : made) {
    const auto n = tt.name(t);
    INFO(n);
    REQUIRE(tt.find(n).has_value());
    CHECK(*tt.find(n) == t);
    CHECK(tt.at(n) == t);
  }
  CHECK_FALSE(tt.find("W3[1,20,301]").has_value());
  CHECK_FALSE(tt.find("W[1]").has_value());     // parameters need a layer
  CHECK_FALSE(tt.find("x3[1,20,300]").has_value());  // inputs have none
  CHECK_FALSE(tt.find("n3[1,20,300]").has_value());  // normalisers need a term
  CHECK_FALSE(tt.find("W3*[1,20,300]").has_value());
  CHECK_FALSE(tt.find("").has_value());
  CHECK_FALSE(tt.find("W3[1,20,300").has_value());
  CHECK_FALSE(tt.find("W3[1,,300]").has_value());
  CHECK_FALSE(tt.find("W3[99999999999]").has_value());
  // Only canonical decimals name a token (fuzz finding: "r[01]" found r[1], whose name differs).
  CHECK_FALSE(tt.find("W3[01,20,300]").has_value());
  CHECK_FALSE(tt.find("W03[1,20,300]").has_value());
  CHECK_FALSE(tt.find("W3[1,020,300]").has_value());
  REQUIRE(tt.find("W3[1,20,300]").has_value());
  const auto zero = tt.intern(token_kind::target, token_variant::plain, 0, {0});
  CHECK(tt.find("r[0]") == zero);  // a lone 0 is canonical
  CHECK_FALSE(tt.find("r[00]").has_value());
  CHECK_THROWS_WITH_AS(tt.at("W9[1]"), doctest::Contains("'W9[1]' does not exist"), provnn::error);
}

TEST_CASE("unnameable combinations are refused") {
  token_table tt;
  CHECK_THROWS_AS(tt.intern(token_kind::parameter, token_variant::low, 1, {0}), provnn::error);
  CHECK_THROWS_AS(tt.intern(token_kind::input, token_variant::plain, 1, {0}), provnn::error);
  CHECK_THROWS_AS(tt.intern(token_kind::bias, token_variant::plain, 1, {0}, 2), provnn::error);
  CHECK(tt.size() == 0);
}

TEST_CASE("glob matching: * and ? are wildcards, everything else is literal") {
  CHECK(glob_match("W1[3,*]", "W1[3,4]"));
  CHECK(glob_match("W1[3,*]", "W1[3,]"));
  CHECK_FALSE(glob_match("W1[3,*]", "W1[4,3]"));
  CHECK_FALSE(glob_match("W1[3,*]", "W1+[3,4]"));
  CHECK(glob_match("W1*[3,*]", "W1+[3,4]"));
  CHECK(glob_match("x*", "x[0,1]"));
  CHECK(glob_match("x*", "x"));
  CHECK_FALSE(glob_match("x*", "a1[0]"));
  CHECK(glob_match("a?[*]", "a2[7]"));
  CHECK_FALSE(glob_match("a?[*]", "a12[7]"));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "x"));
  CHECK(glob_match("*[*]#1", "n1[3]#1"));
  CHECK_FALSE(glob_match("*[*]#1", "n1[3]#10"));
  CHECK(glob_match("a*b*c", "aXXbYYbZc"));
  CHECK_FALSE(glob_match("a*b*c", "aXXbYYbZ"));
  CHECK(glob_match("[1]", "[1]"));  // '[' is no character class

  token_table tt;
  for (std::uint32_t k = 0; k < 3; ++k)
    for (std::uint32_t j = 0; j < 4; ++j) {
      tt.intern(token_kind::parameter, token_variant::plain, 1, {k, j});
      tt.intern(token_kind::parameter, token_variant::pos, 1, {k, j});
    }
  tt.intern(token_kind::activation, token_variant::plain, 2, {7});
  CHECK(tt.match("W1[2,*]").size() == 4);
  CHECK(tt.match("W1*[2,*]").size() == 8);
  CHECK(tt.match("W1?[*,3]").size() == 3);
  CHECK(tt.match("a2[*]") == std::vector<token_index>{24});
  CHECK(tt.match("b*").empty());
  const auto row = tt.match("W1[1,*]");
  for (std::size_t i = 1; i < row.size(); ++i) CHECK(row[i - 1] < row[i]);  // index order
}

TEST_CASE("natural valuation: one double per token, zero until set") {
  token_table tt;
  const auto a = tt.intern(token_kind::input, token_variant::plain, 0, {0});
  const auto b = tt.intern(token_kind::input, token_variant::plain, 0, {1});
  CHECK(tt.value(a) == 0.0);
  tt.set_value(b, -2.5);
  CHECK(tt.values().size() == 2);
  CHECK(tt.values()[1] == -2.5);
}

TEST_CASE("glob_match: a '*' in the pattern is a wildcard even where the text has a '*' (fuzz finding)") {
  // fuzz/regressions/tokens/glob_star_literal_first: the '*' used to match the text's '*'
  // literally, leaving no back-tracking point.
  CHECK(provnn::glob_match("*", "*g-*"));
  CHECK(provnn::glob_match("*", "*"));
  CHECK(provnn::glob_match("*g-*", "W1g-[3,4]"));
  CHECK(provnn::glob_match("a*", "a*b"));
  CHECK(provnn::glob_match("*b", "*ab"));
  CHECK_FALSE(provnn::glob_match("*c", "*ab"));
  CHECK_FALSE(provnn::glob_match("?", "**"));
}

TEST_CASE("token blocks: every coordinate of a tensor at once, named, found and ordered as asked") {
  token_table tt;
  using K = token_kind;
  using V = token_variant;
  const auto x = tt.intern(K::input, V::plain, 0, {5});
  // W2 of shape (out 3, in 4), stored j-major: token first + j·3 + k holds W2[k,j].
  const std::uint32_t shape[] = {3, 4};
  const std::uint8_t j_major[] = {1, 0};
  const auto first = tt.add_block(K::parameter, V::pos, 2, shape, j_major);
  CHECK(first == x + 1);
  CHECK(tt.size() == 13);
  const auto after = tt.intern(K::normaliser, V::plain, 2, {1}, 0);  // a single after the block
  CHECK(after == 13);
  CHECK(tt.name(after) == "n2[1]#0");
  CHECK(tt.name(x) == "x[5]");
  std::vector<std::uint32_t> buf;
  for (std::uint32_t k = 0; k < 3; ++k)
    for (std::uint32_t j = 0; j < 4; ++j) {
      const token_index t = first + j * 3 + k;
      CHECK(tt.name(t) == "W2+[" + std::to_string(k) + "," + std::to_string(j) + "]");
      CHECK(tt.kind(t) == K::parameter);
      CHECK(tt.variant(t) == V::pos);
      CHECK(tt.layer(t) == 2);
      CHECK(tt.in_block(t));
      const auto idx = tt.index(t, buf);
      REQUIRE(idx.size() == 2);
      CHECK((idx[0] == k && idx[1] == j));
      const std::uint32_t kj[] = {k, j};
      CHECK(tt.block_token(first, kj) == t);
      CHECK(tt.find(tt.name(t)) == t);
      CHECK(tt.intern(K::parameter, V::pos, 2, kj) == t);  // interning finds the block token
    }
  CHECK_FALSE(tt.in_block(x));
  CHECK_FALSE(tt.in_block(after));
  CHECK_FALSE(tt.find("W2+[3,0]").has_value());  // outside the shape
  CHECK_FALSE(tt.find("W2[0,0]").has_value());   // another variant
  // Natural (row-major) order when none is given; values start at 0 and are settable.
  const std::uint32_t conv[] = {2, 1, 2, 2};
  const auto c0 = tt.add_block(K::parameter, V::plain, 1, conv);
  CHECK(tt.name(c0 + 5) == "W1[1,0,0,1]");
  CHECK(tt.value(c0 + 5) == 0.0);
  tt.set_value(c0 + 5, -2.5);
  CHECK(tt.value(*tt.find("W1[1,0,0,1]")) == -2.5);
  // Globs see block tokens like any other: row 1 of W2+ has 4 tokens.
  CHECK(tt.match("W2+[1,*]").size() == 4);
  CHECK(tt.match("W1[*]").size() == 8);
  // A copy is independent and equal.
  token_table copy = tt;
  CHECK(copy.name(c0 + 7) == tt.name(c0 + 7));
}

TEST_CASE("sparse token blocks hold only the listed coordinates, in storage order") {
  token_table tt;
  using K = token_kind;
  using V = token_variant;
  // W1 (out 3, in 4) stored j-major (offset j·3 + k); present: W1[2,0] (0·3+2 = 2),
  // W1[0,1] (3), W1[1,3] (10).
  const std::uint32_t shape[] = {3, 4};
  const std::uint8_t j_major[] = {1, 0};
  const std::uint32_t present[] = {2, 3, 10};
  const auto first = tt.add_block(K::parameter, V::plain, 1, shape, j_major, 0, present);
  CHECK(tt.size() == 3);
  CHECK(tt.name(first) == "W1[2,0]");
  CHECK(tt.name(first + 1) == "W1[0,1]");
  CHECK(tt.name(first + 2) == "W1[1,3]");
  CHECK(tt.find("W1[1,3]") == first + 2);
  CHECK_FALSE(tt.find("W1[0,0]").has_value());  // in the shape, not in the block
  const std::uint32_t k0j1[] = {0, 1}, k0j0[] = {0, 0};
  CHECK(tt.block_token(first, k0j1) == first + 1);
  CHECK_FALSE(tt.block_token(first, k0j0).has_value());
  // interning an absent coordinate makes a single token; the present ones are found
  const std::uint32_t k1j3[] = {1, 3};
  CHECK(tt.intern(K::parameter, V::plain, 1, k1j3) == first + 2);
  CHECK(tt.match("W1[*,3]").size() == 1);
  const std::uint32_t unsorted[] = {3, 2};
  CHECK_THROWS_AS(tt.add_block(K::parameter, V::neg, 1, shape, j_major, 0, unsorted), error);
  const std::uint32_t outside[] = {12};
  CHECK_THROWS_AS(tt.add_block(K::parameter, V::neg, 1, shape, j_major, 0, outside), error);
}

TEST_CASE("a token block takes its values with it, in token order, or refuses a wrong count") {
  token_table tt;
  using K = token_kind;
  using V = token_variant;
  const std::uint32_t shape[] = {3, 4};
  const std::uint8_t j_major[] = {1, 0};
  tt.intern(K::input, V::plain, 0, std::vector<std::uint32_t>{0});  // a single token before the blocks
  const std::uint32_t present[] = {2, 3, 10};
  const double sparse_values[] = {0.5, -2.0, 7.25};
  const auto s = tt.add_block(K::parameter, V::plain, 1, shape, j_major, 0, present, sparse_values);
  CHECK(tt.value(tt.find("W1[2,0]").value()) == 0.5);
  CHECK(tt.value(tt.find("W1[0,1]").value()) == -2.0);
  CHECK(tt.value(tt.find("W1[1,3]").value()) == 7.25);
  CHECK(s == 1);
  std::vector<double> dense_values(12);
  for (std::size_t i = 0; i < 12; ++i) dense_values[i] = 1.0 + static_cast<double>(i);
  const auto d = tt.add_block(K::parameter, V::pos, 1, shape, j_major, 0, {}, dense_values);
  // Token order is storage order: W1+[k, j] sits at j·3 + k.
  CHECK(tt.value(tt.find("W1+[2,3]").value()) == 1.0 + (3 * 3 + 2));
  CHECK(tt.value(tt.find("W1+[0,0]").value()) == 1.0);
  CHECK(tt.value(d + 11) == 12.0);
  CHECK(tt.size() == 1 + 3 + 12);
  // A wrong count is refused before anything is added.
  const double two[] = {1.0, 2.0};
  CHECK_THROWS_WITH_AS(tt.add_block(K::parameter, V::neg, 1, shape, j_major, 0, present, two),
                       "token block: 2 values for its 3 tokens", error);
  CHECK(tt.size() == 16);
  CHECK(tt.block_count() == 2);
}

TEST_CASE("token blocks refuse duplicates and bad orders") {
  token_table tt;
  using K = token_kind;
  using V = token_variant;
  const std::uint32_t shape[] = {2, 2};
  tt.add_block(K::parameter, V::plain, 1, shape);
  CHECK_THROWS_AS(tt.add_block(K::parameter, V::plain, 1, shape), error);  // the same block again
  const std::uint8_t bad[] = {0, 0};
  CHECK_THROWS_AS(tt.add_block(K::parameter, V::neg, 1, shape, bad), error);
  const std::uint8_t short_order[] = {0};
  CHECK_THROWS_AS(tt.add_block(K::parameter, V::neg, 1, shape, short_order), error);
  tt.intern(K::parameter, V::pos, 3, {0, 0});
  CHECK_THROWS_AS(tt.add_block(K::parameter, V::pos, 3, shape), error);  // a single of it exists
  CHECK_THROWS_AS(tt.add_block(K::bias, V::low, 1, shape), error);        // not nameable
  CHECK(tt.size() == 5);
}

TEST_CASE("add_block_bits: the same block as add_block with the offsets listed, values in place, bad bitmaps refused") {
  using K = token_kind;
  using V = token_variant;
  // A 70 × 3 shape stored j-major (offset j·70 + k: 210 coordinates, 4 words, the last with
  // 18 bits), held: offsets 0, 63, 64 (a word boundary), 130 and 209 (the last coordinate).
  const std::uint32_t shape[] = {70, 3};
  const std::uint8_t j_major[] = {1, 0};
  const std::uint32_t listed[] = {0, 63, 64, 130, 209};
  std::uint64_t words[4] = {};
  for (auto o : listed) words[o / 64] |= std::uint64_t{1} << (o % 64);
  const double values[] = {1.5, -2.0, 3.0, 0.25, 9.0};
  token_table a, b;
  const auto fa = a.add_block(K::parameter, V::plain, 1, shape, j_major, 0, listed, values);
  // b writes its values into the room first: taken in place, the same values result.
  const auto room = b.value_room(5);
  REQUIRE(room.size() == 5);
  std::copy(std::begin(values), std::end(values), room.begin());
  const double* where = room.data();
  const auto fb = b.add_block_bits(K::parameter, V::plain, 1, shape, j_major, 0, words, room.first(5));
  CHECK(fa == fb);
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 5);
  CHECK(b.values().data() + fb == where);  // no copy was made
  for (token_index t = 0; t < 5; ++t) {
    CHECK(a.name(t) == b.name(t));
    CHECK(a.value(t) == b.value(t));
  }
  CHECK(b.name(fb + 2) == "W1[64,0]");  // offset 64 = j 0, k 64
  CHECK(b.name(fb + 4) == "W1[69,2]");  // offset 209 = j 2, k 69
  CHECK(b.find("W1[63,0]") == fb + 1);
  CHECK_FALSE(b.find("W1[1,0]").has_value());
  // A wrong number of words, a bit past the shape, or no bit at all: refused, nothing added.
  const std::uint64_t three[3] = {1, 0, 0};
  CHECK_THROWS_WITH_AS(b.add_block_bits(K::parameter, V::pos, 1, shape, j_major, 0, three),
                       "token block: 3 presence words for a shape of 210 coordinates (4 expected)", error);
  std::uint64_t past[4] = {1, 0, 0, std::uint64_t{1} << 18};  // offset 210
  CHECK_THROWS_WITH_AS(b.add_block_bits(K::parameter, V::pos, 1, shape, j_major, 0, past),
                       "token block: a presence bit at or past offset 210, the shape's size", error);
  const std::uint64_t none[4] = {};
  CHECK_THROWS_AS(b.add_block_bits(K::parameter, V::pos, 1, shape, j_major, 0, none), error);
  CHECK(b.size() == 5);
  CHECK(b.block_count() == 1);
}
