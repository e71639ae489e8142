// The generic law tester (OpenFst's weight tester is the model), applied to every semiring
// of the type list: random triples from the per-semiring generators, checking closure,
// associativity, commutativity, identities, annihilation, distributivity and every property
// flag the semiring claims — and, so that flags stay honest in both directions, that every
// flag it does not claim has a counterexample among the samples.
#include <doctest/doctest.h>

#include <array>
#include <string>

#include "semirings/all.hpp"
#include "semirings/registry.hpp"
#include "tests/semirings/generators.hpp"

using namespace provnn;
using namespace provnn::test;


namespace {

constexpr int samples = 300;

template <class S>
void check_laws(const S& s, rng& g) {
  using V = typename S::value_type;
  const V zero = s.zero(), one = s.one();
  for (int i = 0; i < samples; ++i) {
    const V a = random_element(s, g), b = random_element(s, g), c = random_element(s, g);
    INFO("a = ", s.format(a), ", b = ", s.format(b), ", c = ", s.format(c));
    REQUIRE(is_member(s, a));
    REQUIRE(is_member(s, b));
    REQUIRE(is_member(s, c));
    // Closure.
    CHECK(is_member(s, s.plus(a, b)));
    CHECK(is_member(s, s.times(a, b)));
    // Associativity.
    CHECK(same(s, s.plus(s.plus(a, b), c), s.plus(a, s.plus(b, c))));
    CHECK(same(s, s.times(s.times(a, b), c), s.times(a, s.times(b, c))));
    // Commutativity (⊕ always; ⊗ when claimed — every provnn semiring claims it).
    CHECK(same(s, s.plus(a, b), s.plus(b, a)));
    if constexpr (has_property<S>(commutative)) CHECK(same(s, s.times(a, b), s.times(b, a)));
    // Identities and annihilation.
    CHECK(s.plus(a, zero) == a);
    CHECK(s.plus(zero, a) == a);
    CHECK(s.times(a, one) == a);
    CHECK(s.times(one, a) == a);
    CHECK(s.times(a, zero) == zero);
    CHECK(s.times(zero, a) == zero);
    // Distributivity, both sides.
    CHECK(same(s, s.times(a, s.plus(b, c)), s.plus(s.times(a, b), s.times(a, c))));
    CHECK(same(s, s.times(s.plus(a, b), c), s.plus(s.times(a, c), s.times(b, c))));
    // Claimed properties.
    if constexpr (has_property<S>(plus_idempotent)) CHECK(s.plus(a, a) == a);
    if constexpr (has_property<S>(times_idempotent)) CHECK(s.times(a, a) == a);
    if constexpr (has_property<S>(absorptive)) {
      CHECK(s.plus(one, a) == one);
      CHECK(same(s, s.plus(a, s.times(a, b)), a));
    }
    if constexpr (has_property<S>(path)) {
      const V p = s.plus(a, b);
      CHECK((p == a || p == b));
    }
    // The n-ary sum, where a semiring has one, equals the fold.
    const std::array<V, 3> xs{a, b, c};
    CHECK(same(s, sum(s, std::span<const V>(xs)), s.plus(s.plus(a, b), c)));
    // Formatting is deterministic and never empty.
    CHECK(!s.format(a).empty());
    CHECK(s.format(a) == s.format(V(a)));
  }
}

/// Every flag a semiring does not claim must fail on some sample (otherwise the flag set is
/// incomplete and algorithms needing it would be refused for no reason).
template <class S>
void check_unclaimed_flags_fail(const S& s, rng& g) {
  using V = typename S::value_type;
  bool plus_idem_fails = false, times_idem_fails = false, absorption_fails = false, path_fails = false;
  for (int i = 0; i < samples; ++i) {
    const V a = random_element(s, g), b = random_element(s, g);
    plus_idem_fails |= !(s.plus(a, a) == a);
    times_idem_fails |= !(s.times(a, a) == a);
    absorption_fails |= !(s.plus(s.one(), a) == s.one());
    const V p = s.plus(a, b);
    path_fails |= !(p == a || p == b);
  }
  if constexpr (!has_property<S>(plus_idempotent)) CHECK(plus_idem_fails);
  if constexpr (!has_property<S>(times_idempotent)) CHECK(times_idem_fails);
  if constexpr (!has_property<S>(absorptive)) CHECK(absorption_fails);
  if constexpr (!has_property<S>(path)) CHECK(path_fails);
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("semiring laws hold on random triples", S, semiring_laws) {
  static_assert(semiring<S>);
  const S s = make_test_semiring<S>();
  rng g(0x5eed + S::registry_name.size());
  check_laws(s, g);
}
TEST_CASE_TEMPLATE_APPLY(semiring_laws, all_semirings::as_tuple);

TEST_CASE_TEMPLATE_DEFINE("property flags are not under-claimed", S, semiring_flags) {
  const S s = make_test_semiring<S>();
  rng g(0xf1a9);
  check_unclaimed_flags_fail(s, g);
}
TEST_CASE_TEMPLATE_APPLY(semiring_flags, all_semirings::as_tuple);

TEST_CASE_TEMPLATE_DEFINE("every semiring is registered under its own name", S, semiring_registered) {
  const S s = make_test_semiring<S>();
  const std::string spec = s.name();
  std::string seen;
  const token_resolver resolve = [](std::string_view n) -> std::optional<token_index> {
    if (n == "y") return 1;  // the token make_test_semiring<dual_semiring> differentiates by
    return std::nullopt;
  };
  with_semiring(spec, resolve, [&](const auto& t) { seen = t.name(); });
  CHECK(seen == spec);
  CHECK(property_names(S::properties).find("commutative") != std::string::npos);
}
TEST_CASE_TEMPLATE_APPLY(semiring_registered, all_semirings::as_tuple);
