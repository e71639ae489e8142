// Hand-computed examples, one block per semiring: values and their formatting.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "common/error.hpp"
#include "semirings/all.hpp"

using namespace provnn;

namespace {
std::string xyz(token_index t) { return std::string(1, static_cast<char>('x' + t)); }
constexpr double inf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("real and Boolean") {
  real_semiring r;
  CHECK(r.times(r.plus(r.lift(0, 1.5), r.lift(1, -0.5)), 4.0) == 4.0);
  const double xs[] = {1e16, 1.0, -1e16, 1.0};
  CHECK(r.sum(xs) == 2.0);  // a left fold gives 0 or 1
  CHECK(r.format(0.5) == "0.5");
  CHECK(r.format(-inf) == "−∞");
  CHECK(r.format(r.times(1e300, 1e300)) == "∞");
  boolean_semiring b;
  CHECK(b.lift(0, -2.0) == true);
  CHECK(b.lift(0, 0.0) == false);
  CHECK(b.format(b.plus(false, true)) == "true");
}

TEST_CASE("exact: lifting converts the double exactly, sums do not round") {
  exact_semiring s;
  using boost::multiprecision::cpp_rational;
  const cpp_rational tenth = s.lift(0, 0.1);
  CHECK(tenth == cpp_rational(3602879701896397, boost::multiprecision::cpp_int(1) << 55));
  CHECK(s.format(tenth) == "3602879701896397/36028797018963968");
  // 0.1 + 0.2 ≠ 0.3 as doubles, and the exact sum of the two doubles is neither.
  const cpp_rational sum = s.plus(tenth, s.lift(1, 0.2));
  CHECK(s.format(sum) == "10808639105689191/36028797018963968");
  CHECK(sum != s.lift(2, 0.3));
  CHECK(s.format(s.times(tenth, tenth)).rfind("≈0.01000000000000000111", 0) == 0);
  CHECK(s.format(cpp_rational(1, 3)) == "1/3");
  CHECK(s.format(s.lift(0, -6.0)) == "-6");
  CHECK(s.lift(0, 0x1p-1074) * (boost::multiprecision::cpp_int(1) << 1074) == 1);  // the smallest subnormal
  CHECK_THROWS_AS(s.lift(3, inf), unsupported_error);
  try {
    (void)s.lift(3, std::nan(""));
  } catch (const unsupported_error& e) {
    CHECK(std::string(e.what()).find("token t3") != std::string::npos);
  }
}

TEST_CASE("exact-float: 100 digits") {
  exact_float_semiring s;
  CHECK(s.format(s.lift(0, 0.1)) == "0.1000000000000000055511151231257827021182");
  const auto third = s.one() / 3;
  CHECK(s.format(third) == "0.3333333333333333333333333333333333333333");
  const auto err = boost::multiprecision::abs(s.times(third, 3) - s.one());
  CHECK(err < boost::multiprecision::cpp_bin_float_100("1e-99"));
  CHECK_THROWS_AS(s.lift(0, -inf), unsupported_error);
}

TEST_CASE("counting: 2^200 does not wrap") {
  counting_semiring s;
  auto v = s.one();
  for (int i = 0; i < 200; ++i) v = s.plus(v, v);
  CHECK(s.format(v) == "1606938044258990275541962092341162602522202993782792835301376");
  CHECK(s.times(v, s.zero()) == 0);
  CHECK(s.lift(0, 0.0) == 0);
  CHECK(s.lift(0, -3.5) == 1);
}

TEST_CASE("tropical: min-plus with a real +infinity") {
  tropical_semiring s;
  CHECK(s.zero() == inf);
  CHECK(s.format(s.zero()) == "∞");
  CHECK(s.lift(0, 0.0) == inf);
  CHECK(s.lift(0, std::exp(1.0)) == doctest::Approx(-1.0));
  CHECK(s.times(inf, -5.0) == inf);
  CHECK(s.times(-inf, inf) == inf);  // 0 annihilates even against an out-of-carrier −∞
  CHECK(s.plus(inf, 3.0) == 3.0);
  CHECK(s.times(s.lift(0, 2.0), s.lift(1, 0.5)) == doctest::Approx(0.0));
  CHECK(s.format(2.5) == "2.5");
}

TEST_CASE("max-plus: max-plus with a real -infinity") {
  max_plus_semiring s;
  CHECK(s.zero() == -inf);
  CHECK(s.format(s.zero()) == "−∞");
  CHECK(s.lift(0, -std::exp(2.0)) == doctest::Approx(2.0));
  CHECK(s.times(-inf, 5.0) == -inf);
  CHECK(s.plus(s.lift(0, 0.0), 1.0) == 1.0);
  CHECK(s.format(s.times(1.25, 2.0)) == "3.25");
}

TEST_CASE("Viterbi, fuzzy, Lukasiewicz") {
  viterbi_semiring v;
  CHECK(v.plus(0.5, 2.0) == 2.0);
  CHECK(v.times(0.5, 4.0) == 2.0);
  CHECK(v.lift(0, -3.0) == 3.0);
  fuzzy_semiring f;
  CHECK(f.times(0.3, 0.7) == 0.3);
  CHECK(f.plus(0.3, 0.7) == 0.7);
  CHECK(f.lift(0, -2.5) == 1.0);
  CHECK(f.lift(0, -0.25) == 0.25);
  lukasiewicz_semiring l;
  CHECK(l.times(0.75, 0.5) == 0.25);
  CHECK(l.times(0.25, 0.5) == 0.0);
  CHECK(l.times(1e-20, 1.0) == 1e-20);  // (a + 1) − 1 would round this to 0
  CHECK(l.format(0.25) == "0.25");
  // Three edges of 0.75: fuzzy keeps 0.75, Lukasiewicz loses 0.25 per edge.
  CHECK(f.times(0.75, f.times(0.75, 0.75)) == 0.75);
  CHECK(l.times(0.75, l.times(0.75, 0.75)) == 0.25);
}

TEST_CASE("security: min over alternatives, max along a path") {
  security_semiring s;
  using L = security_level;
  CHECK(s.plus(L::secret, L::confidential) == L::confidential);
  CHECK(s.times(L::secret, L::confidential) == L::secret);
  CHECK(s.times(L::top_secret, s.zero()) == L::unreachable);
  CHECK(s.format(s.zero()) == "unreachable");
  CHECK(s.format(L::top_secret) == "top-secret");
  CHECK(s.lift(0, 0.0) == L::unreachable);
  CHECK(s.lift(0, 0.1) == L::public_level);
  CHECK(parse_security_level("top-secret") == L::top_secret);
  CHECK(parse_security_level("top_secret") == L::top_secret);
  CHECK(parse_security_level("cosmic") == std::nullopt);
  // Path 1 needs secret (x secret, y public); path 2 needs top-secret: secret suffices.
  CHECK(s.plus(s.times(L::secret, L::public_level), s.times(L::top_secret, L::confidential)) == L::secret);
}

TEST_CASE("lineage: union with a distinguished zero") {
  lineage_semiring s;
  const auto xy = s.times(s.lift(0, 0.0), s.lift(1, 5.0));
  CHECK(s.format(xy, xyz) == "{x, y}");
  CHECK(s.format(s.plus(xy, s.lift(2, 1.0)), xyz) == "{x, y, z}");
  CHECK(s.format(s.one()) == "{}");
  CHECK(s.format(s.zero()) == "⊥");
  CHECK(s.plus(s.zero(), s.one()) == s.one());
  CHECK(s.times(xy, s.zero()) == s.zero());
  CHECK(s.format(s.lift(3, 1.0)) == "{t3}");
}

TEST_CASE("Why[X], PosBool[X], B[X], Trio[X] on (x + y)(x + z)") {
  const auto sum_xy_xz = [](const auto& s) {
    return s.times(s.plus(s.lift(0, 1.0), s.lift(1, 1.0)), s.plus(s.lift(0, 1.0), s.lift(2, 1.0)));
  };
  why_semiring w;
  CHECK(w.format(sum_xy_xz(w), xyz) == "{{x}, {x, y}, {x, z}, {y, z}}");
  CHECK(w.format(w.one()) == "{{}}");
  CHECK(w.format(w.zero()) == "{}");
  posbool_semiring p;
  CHECK(p.format(sum_xy_xz(p), xyz) == "x ∨ y∧z");
  CHECK(p.format(p.one()) == "true");
  CHECK(p.format(p.zero()) == "false");
  // Absorption: {x} + {x, y} = {x}.
  CHECK(p.plus(p.lift(0, 1.0), p.times(p.lift(0, 1.0), p.lift(1, 1.0))) == p.lift(0, 1.0));
  bx_semiring b;
  CHECK(b.format(sum_xy_xz(b), xyz) == "x·y + x·z + x + y·z");
  const auto x_plus_y = b.plus(b.lift(0, 1.0), b.lift(1, 1.0));
  CHECK(b.format(b.times(x_plus_y, x_plus_y), xyz) == "x·y + x + y");
  CHECK(b.plus(b.one(), b.one()) == b.one());
  trio_semiring t;
  const auto tx_plus_y = t.plus(t.lift(0, 1.0), t.lift(1, 1.0));
  CHECK(t.format(t.times(tx_plus_y, tx_plus_y), xyz) == "2·x·y + x + y");
  CHECK(t.format(t.plus(t.one(), t.one())) == "2");
  nx_semiring n;
  const auto nx_plus_y = n.plus(n.lift(0, 1.0), n.lift(1, 1.0));
  CHECK(n.format(n.times(nx_plus_y, nx_plus_y), xyz) == "x^2 + 2·x·y + y^2");
}

TEST_CASE("dual numbers: d/dy (x·y + y·y) at x = 3, y = 2") {
  dual_semiring s(1);
  CHECK(s.name() == "dual:t1");
  const auto x = s.lift(0, 3.0), y = s.lift(1, 2.0);
  const auto v = s.plus(s.times(x, y), s.times(y, y));
  CHECK(v == dual_number{10.0, 7.0});  // value 6 + 4, derivative x + 2y
  CHECK(s.format(v) == "10 + 7ε");
  CHECK(s.format(dual_number{1.0, -2.0}) == "1 - 2ε");
  CHECK(s.from_real(0.5) == dual_number{0.5, 0.0});
  CHECK(dual_semiring(4, "W1[3,4]").name() == "dual:W1[3,4]");
}

TEST_CASE("top-k keeps the k best of a wide sum and agrees with ranking the N[X] expansion") {
  topk_semiring s(3);
  auto acc = s.zero();
  for (token_index t = 0; t < 6; ++t) acc = s.plus(acc, s.lift(t, (t % 2 ? -1.0 : 1.0) * (t + 1)));
  CHECK(s.format(acc) == "[-6·t5, 5·t4, -4·t3]");
  // (a + b + c)(d + e) with a..e = 1, -2, 3, 0.5, -4: rank the six products by hand.
  const double val[] = {1, -2, 3, 0.5, -4};
  const auto l = [&](token_index t) { return s.lift(t, val[t]); };
  const auto r = s.times(s.plus(s.plus(l(0), l(1)), l(2)), s.plus(l(3), l(4)));
  // products: a·d 0.5, a·e -4, b·d -1, b·e 8, c·d 1.5, c·e -12
  CHECK(s.format(r) == "[-12·t2·t4, 8·t1·t4, -4·t0·t4]");
}
