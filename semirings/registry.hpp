// The by-name registry of semirings, driven by the type list of semirings/all.hpp.
//
// A specification is `NAME` or `NAME:PARAMETER` (`real`, `topk:10`, `dual:W1[3,4]`).
// Semirings with a static `parameter` member take exactly one parameter and build themselves
// with `S::from_parameter(text, resolver)`; the others take none and are default-constructed.
//
//   with_semiring("viterbi", {}, [](const auto& s) { … s.plus(…) … });
//
// instantiates the generic lambda for every semiring of the list (so it must compile for
// all of them and return the same type for all) and calls it once, with the one named.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/error.hpp"
#include "semirings/all.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

/// One line of `provnn semirings`.
struct semiring_info {
  std::string name;          ///< as written in a specification: `real`, `topk:K`, `dual:TOKEN`
  std::uint32_t properties;  ///< semiring_property flags
  std::string question;      ///< what it answers for a relevance circuit
};

/// Every registered semiring, in type-list order.
std::vector<semiring_info> list_semirings();

/// `commutative, ⊕-idempotent, path` — the flags set in p, in declaration order.
std::string property_names(std::uint32_t p);

/// `real, exact, …, topk:K, dual:TOKEN` — for error messages and help.
std::string valid_semiring_names();

template <class S>
concept parameterised_semiring = requires {
  { S::parameter } -> std::convertible_to<std::string_view>;
};

namespace detail {

template <class S>
std::string display_name() {
  if constexpr (parameterised_semiring<S>)
    return fmt::format("{}:{}", S::registry_name, S::parameter);
  else
    return std::string(S::registry_name);
}

struct semiring_spec {
  std::string_view full, name, argument;
  bool has_argument = false;
};

inline semiring_spec split_spec(std::string_view spec) noexcept {
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos) return {spec, spec, {}, false};
  return {spec, spec.substr(0, colon), spec.substr(colon + 1), true};
}

[[noreturn]] void throw_unknown_semiring(std::string_view spec);
[[noreturn]] void throw_bad_semiring_parameter(std::string_view message);

template <class S>
S make_semiring(const semiring_spec& sp, const token_resolver& resolve) {
  if constexpr (parameterised_semiring<S>) {
    if (!sp.has_argument)
      throw_bad_semiring_parameter(fmt::format("semiring '{}' needs a parameter: {}", sp.full, display_name<S>()));
    try {
      return S::from_parameter(sp.argument, resolve);
    } catch (const parse_error& e) {
      throw_bad_semiring_parameter(e.what());
    }
  } else {
    (void)resolve;
    if (sp.has_argument)
      throw_bad_semiring_parameter(
          fmt::format("semiring '{}' takes no parameter (write '{}')", sp.full, S::registry_name));
    return S{};
  }
}

template <class F, class Head, class... Tail>
decltype(auto) dispatch(type_list<Head, Tail...>, const semiring_spec& sp, const token_resolver& resolve, F& f) {
  if (sp.name == Head::registry_name) {
    const Head s = make_semiring<Head>(sp, resolve);
    return f(s);
  }
  if constexpr (sizeof...(Tail) == 0)
    throw_unknown_semiring(sp.full);
  else
    return dispatch(type_list<Tail...>{}, sp, resolve, f);
}

}  // namespace detail

/// Builds the semiring named by `spec` and calls f(const S&) with it, returning what f
/// returns. `resolve` turns token names into indices for parameters that name a token
/// (`dual:TOKEN`); it may be empty. Cost: one string comparison per registered semiring.
/// Throws parse_error — listing the valid names — for an unknown name, a missing, extra or
/// bad parameter (`topk:0`, `topk:x`, `dual:` with an unknown token); exceptions thrown by f
/// pass through unchanged.
template <class F>
decltype(auto) with_semiring(std::string_view spec, const token_resolver& resolve, F&& f) {
  return detail::dispatch(all_semirings{}, detail::split_spec(spec), resolve, f);
}

/// True when `spec` names a registered semiring with a well-formed parameter (the token of
/// `dual:TOKEN` is checked through `resolve`).
bool is_valid_semiring(std::string_view spec, const token_resolver& resolve = {});

}  // namespace provnn
