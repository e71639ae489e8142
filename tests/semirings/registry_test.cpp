// The by-name registry: names, construction, parameters, errors.
#include "semirings/registry.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/error.hpp"

using namespace provnn;

namespace {
const token_resolver table = [](std::string_view n) -> std::optional<token_index> {
  if (n == "W1[3,4]") return 7;
  if (n == "x[0]") return 0;
  return std::nullopt;
};

std::string error_of(std::string_view spec, const token_resolver& r = table) {
  try {
    with_semiring(spec, r, [](const auto&) {});
  } catch (const parse_error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("registry: the names, in order, with their flags and questions") {
  const std::vector<std::string> expected{"real",     "exact",       "exact-float", "boolean", "counting",
                                          "tropical", "max-plus",    "viterbi",     "fuzzy",   "lukasiewicz",
                                          "security", "lineage",     "why",         "posbool", "bx",
                                          "trio",     "nx",          "topk:K",      "dual:TOKEN"};
  std::vector<std::string> names;
  for (const auto& i : list_semirings()) {
    names.push_back(i.name);
    CHECK(!i.question.empty());
    CHECK((i.properties & commutative) != 0);
  }
  CHECK(names == expected);
  CHECK(property_names(commutative | plus_idempotent | path) == "commutative, ⊕-idempotent, path");
  CHECK(property_names(0) == "");
  CHECK(valid_semiring_names().find("real, exact, exact-float, boolean") == 0);
}

TEST_CASE("registry: every name constructs the semiring it names") {
  for (const auto& i : list_semirings()) {
    std::string spec = i.name;
    if (spec == "topk:K") spec = "topk:3";
    if (spec == "dual:TOKEN") spec = "dual:W1[3,4]";
    std::string built;
    with_semiring(spec, table, [&](const auto& s) { built = s.name(); });
    CHECK(built == spec);
  }
}

TEST_CASE("registry: parameters") {
  CHECK(with_semiring("topk:3", {}, [](const auto& s) -> std::size_t {
          if constexpr (requires { s.k(); }) return s.k();
          else return 0;
        }) == 3);
  CHECK(with_semiring("dual:W1[3,4]", table, [](const auto& s) -> long {
          if constexpr (requires { s.chosen(); }) return s.chosen();
          else return -1;
        }) == 7);
  CHECK(with_semiring("dual:t5", {}, [](const auto& s) -> long {
          if constexpr (requires { s.chosen(); }) return s.chosen();
          else return -1;
        }) == 5);
  // The dispatcher returns what f returns.
  CHECK(with_semiring("viterbi", {}, [](const auto& s) { return s.format(s.plus(s.lift(0, -3.0), s.lift(1, 2.0))); }) == "3");
  CHECK(is_valid_semiring("nx"));
  CHECK(!is_valid_semiring("nx:2"));
}

TEST_CASE("registry: bad names and parameters are parse errors that list the valid names") {
  for (const char* bad : {"foo", "", "Real", "topk", "topk:0", "topk:x", "topk:", "topk:3x", "topk:-1",
                          "topk:99999999999999999999", "real:3", "dual:", "dual:W9[0]", "dual", "nx:"}) {
    CAPTURE(bad);
    const std::string msg = error_of(bad);
    CHECK(msg.find("valid semirings: real, exact") != std::string::npos);
    CHECK(msg.find("topk:K, dual:TOKEN") != std::string::npos);
  }
  CHECK(error_of("foo").find("unknown semiring 'foo'") == 0);
  CHECK(error_of("topk:0").find("topk:0: K must be an integer from 1 to") == 0);
  CHECK(error_of("dual:W9[0]").find("no token named 'W9[0]'") != std::string::npos);
  CHECK(error_of("dual:W1[3,4]", {}).find("without a circuit's token table") != std::string::npos);
  CHECK(error_of("real:3").find("takes no parameter") != std::string::npos);
  CHECK(error_of("topk").find("needs a parameter: topk:K") != std::string::npos);
}

TEST_CASE("registry: exceptions thrown by f pass through unchanged") {
  CHECK_THROWS_AS(with_semiring("real", {}, [](const auto&) -> int { throw std::logic_error("mine"); }), std::logic_error);
  CHECK_THROWS_WITH_AS(with_semiring("real", {}, [](const auto&) -> int { throw parse_error("mine"); }), "mine", parse_error);
}
