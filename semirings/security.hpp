// Security (access-control) semiring: the clearance needed to observe the relevance.
//
//   carrier   the ordered levels public < confidential < secret < top_secret < unreachable
//   ⊕, ⊗      min, max — alternative paths: the most permissive one suffices; along a path:
//             the most restrictive token decides
//   0, 1      unreachable (no path at all: nobody can observe it), public
//   properties commutative, ⊕- and ⊗-idempotent, absorptive, path; exact
//   lifting   public for a token with a non-zero real value, unreachable for a zero one (a
//             deleted token opens no path). With this lifting alone the answer only says
//             "public" or "unreachable" (it mirrors Boolean); the levels become meaningful
//             when users classify tokens — e.g. set `W1[*]` to secret — through the CLI's
//             valuation overrides (parse_security_level reads the level names).
//   answers   "what is the lowest clearance under which some relevant path is fully
//             visible?"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "semirings/semiring.hpp"

namespace provnn {

enum class security_level : std::uint8_t { public_level = 0, confidential, secret, top_secret, unreachable };

/// `public`, `confidential`, `secret`, `top-secret`, `unreachable`.
inline std::string_view security_level_name(security_level l) noexcept {
  switch (l) {
    case security_level::public_level: return "public";
    case security_level::confidential: return "confidential";
    case security_level::secret: return "secret";
    case security_level::top_secret: return "top-secret";
    case security_level::unreachable: return "unreachable";
  }
  return "unreachable";
}

/// The level named by security_level_name (also accepts `top_secret`); nullopt otherwise.
inline std::optional<security_level> parse_security_level(std::string_view s) noexcept {
  for (auto l : {security_level::public_level, security_level::confidential, security_level::secret,
                 security_level::top_secret, security_level::unreachable})
    if (s == security_level_name(l)) return l;
  if (s == "top_secret") return security_level::top_secret;
  return std::nullopt;
}

struct security_semiring {
  using value_type = security_level;
  static constexpr std::uint32_t properties =
      commutative | plus_idempotent | times_idempotent | absorptive | path;
  static constexpr std::string_view registry_name = "security";
  static constexpr std::string_view question =
      "what is the lowest clearance under which some relevant path is fully visible?";

  value_type zero() const noexcept { return security_level::unreachable; }
  value_type one() const noexcept { return security_level::public_level; }
  value_type plus(value_type a, value_type b) const noexcept { return a < b ? a : b; }
  value_type times(value_type a, value_type b) const noexcept { return a < b ? b : a; }
  value_type lift(token_index, double v) const noexcept { return from_real(v); }
  value_type from_real(double d) const noexcept {
    return d != 0.0 ? security_level::public_level : security_level::unreachable;
  }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const { return std::string(security_level_name(a)); }
};

}  // namespace provnn
