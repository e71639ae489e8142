// The universal property: h_ν: N[X] → K, by hand and as a law on random polynomials.
#include "semirings/homomorphism.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "semirings/all.hpp"
#include "tests/semirings/generators.hpp"

using namespace provnn;
using namespace provnn::test;

namespace {
std::string xyz(token_index t) { return std::string(1, static_cast<char>('x' + t)); }

// p = 2·x·y^2 + 3·z + 1, with the real valuation x = 0.5, y = -2, z = 4.
polynomial hand_polynomial() {
  return polynomial::from_terms({{monomial::from_factors({{0, 1}, {1, 2}}), natural(2)},
                                 {monomial(2), natural(3)},
                                 {monomial{}, natural(1)}});
}
const double nu_real[] = {0.5, -2.0, 4.0};

template <class S>
typename S::value_type hom_lift(const S& s) {
  return evaluate_polynomial(s, hand_polynomial(), lift_valuation(s, [](token_index t) { return nu_real[t]; }));
}
}  // namespace

TEST_CASE("homomorphism: a hand-written polynomial in several semirings") {
  CHECK(format_polynomial(hand_polynomial(), xyz) == "2·x·y^2 + 3·z + 1");
  CHECK(hom_lift(real_semiring{}) == 17.0);                   // 2·0.5·4 + 12 + 1
  CHECK(hom_lift(exact_semiring{}) == 17);
  CHECK(hom_lift(counting_semiring{}) == 6);                  // every token non-zero: 2 + 3 + 1 paths
  CHECK(hom_lift(boolean_semiring{}) == true);
  CHECK(hom_lift(viterbi_semiring{}) == 4.0);                 // max(0.5·4, 4, 1)
  CHECK(hom_lift(tropical_semiring{}) == doctest::Approx(-std::log(4.0)));
  CHECK(hom_lift(max_plus_semiring{}) == doctest::Approx(std::log(4.0)));
  CHECK(hom_lift(fuzzy_semiring{}) == 1.0);                   // the constant term 1 wins
  CHECK(why_semiring{}.format(hom_lift(why_semiring{}), xyz) == "{{}, {z}, {x, y}}");
  CHECK(posbool_semiring{}.format(hom_lift(posbool_semiring{}), xyz) == "true");
  CHECK(trio_semiring{}.format(hom_lift(trio_semiring{}), xyz) == "2·x·y + 3·z + 1");
  CHECK(bx_semiring{}.format(hom_lift(bx_semiring{}), xyz) == "x·y + z + 1");
  CHECK(hom_lift(nx_semiring{}) == hand_polynomial());        // the universal valuation: identity
  CHECK(hom_lift(dual_semiring(1)) == dual_number{17.0, -4.0});  // ∂/∂y 2xy² = 4xy = -4
  CHECK(topk_semiring(2).format(hom_lift(topk_semiring(2)), xyz) == "[4·z, 4·z]");
  // Deleting z (valuing it 0) removes its term.
  CHECK(evaluate_polynomial(real_semiring{}, hand_polynomial(), [](token_index t) { return t == 2 ? 0.0 : nu_real[t]; }) == 5.0);
}

TEST_CASE("homomorphism: the natural-number embedding and powers") {
  const natural big = (natural(1) << 200) + (natural(1) << 100) + 7;
  CHECK(embed_natural(counting_semiring{}, big) == big);
  CHECK(embed_natural(real_semiring{}, big) == doctest::Approx(std::ldexp(1.0, 200)));  // doubling, no from_natural
  CHECK(embed_natural(real_semiring{}, natural(1000003)) == 1000003.0);
  CHECK(embed_natural(dual_semiring(0), natural(12)) == dual_number{12.0, 0.0});
  CHECK(embed_natural(viterbi_semiring{}, big) == 1.0);       // idempotent: 1 ⊕ 1 = 1
  CHECK(embed_natural(why_semiring{}, big) == why_semiring{}.one());
  CHECK(embed_natural(tropical_semiring{}, natural(0)) == tropical_semiring{}.zero());
  CHECK(topk_semiring(3).format(embed_natural(topk_semiring(3), natural(5))) == "[1, 1, 1]");
  CHECK(embed_natural(trio_semiring{}, natural(9)) == polynomial::constant(9));
  CHECK(embed_natural(exact_semiring{}, big) == boost::multiprecision::cpp_rational(big));
  CHECK(power(counting_semiring{}, natural(3), 5) == 243);
  CHECK(power(counting_semiring{}, natural(3), 0) == 1);
  CHECK(power(real_semiring{}, 2.0, 10) == 1024.0);
  CHECK(power(fuzzy_semiring{}, 0.3, 7) == 0.3);
  CHECK(power(tropical_semiring{}, 1.5, 4) == 6.0);
}

TEST_CASE_TEMPLATE_DEFINE("homomorphism respects 0, 1, tokens, sum and product", S, hom_laws) {
  const S s = make_test_semiring<S>();
  rng g(0x40a + S::registry_name.size());
  nx_semiring n;
  for (int round = 0; round < 40; ++round) {
    std::vector<typename S::value_type> nu;
    for (token_index t = 0; t < test_tokens; ++t) nu.push_back(random_element(s, g));
    const auto h = [&](const polynomial& p) { return evaluate_polynomial(s, p, [&](token_index t) { return nu[t]; }); };
    const polynomial p = random_polynomial(g, 4, 2, 4), q = random_polynomial(g, 4, 2, 4);
    INFO("p = ", format_polynomial(p), ", q = ", format_polynomial(q));
    CHECK(h(n.zero()) == s.zero());
    CHECK(h(n.one()) == s.one());
    const token_index t = static_cast<token_index>(round % test_tokens);
    CHECK(h(n.lift(t, 0.0)) == nu[t]);
    CHECK(same(s, h(n.plus(p, q)), s.plus(h(p), h(q))));
    CHECK(same(s, h(n.times(p, q)), s.times(h(p), h(q))));
  }
}
TEST_CASE_TEMPLATE_APPLY(hom_laws, all_semirings::as_tuple);
