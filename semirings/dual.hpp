// Dual numbers: the sensitivity of relevance to one chosen token (forward-mode
// differentiation).
//
//   carrier   ℝ × ℝ as two doubles (value, derivative) — a + a'ε with ε² = 0
//   ⊕         (a, a') + (b, b') = (a + b, a' + b')
//   ⊗         (a, a') · (b, b') = (ab, ab' + a'b)
//   0, 1      (0, 0), (1, 0)
//   properties commutative, approximate (doubles)
//   lifting   token t with real value v ↦ (v, 1) if t is the chosen token, (v, 0) otherwise
//   answers   "how fast does this relevance change when the chosen token (a weight, a
//             feature, a unit normaliser) changes?" — ∂R/∂token, exactly, in one pass.
//
// The chosen token is a run-time parameter: the registry builds `dual:W1[3,4]` by resolving
// the name through the circuit's token table (a token_resolver); without a table, `t<index>`
// names the token by index.
#pragma once

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

struct dual_number {
  double value = 0.0;
  double derivative = 0.0;
  friend bool operator==(const dual_number&, const dual_number&) = default;
};

class dual_semiring {
 public:
  using value_type = dual_number;
  static constexpr std::uint32_t properties = commutative | approximate;
  static constexpr std::string_view registry_name = "dual";
  static constexpr std::string_view parameter = "TOKEN";
  static constexpr std::string_view question = "how sensitive is the relevance to one chosen token (d relevance / d token)?";

  /// Differentiates with respect to token `chosen`; `token_name` is what name() shows
  /// (`t<chosen>` when empty).
  explicit dual_semiring(token_index chosen, std::string token_name = {})
      : chosen_(chosen), token_name_(token_name.empty() ? fmt::format("t{}", chosen) : std::move(token_name)) {}

  /// Builds `dual:TOKEN` from TOKEN. With a resolver, TOKEN is a token name of the circuit;
  /// without one, only `t<index>` is understood. Throws parse_error naming TOKEN otherwise.
  static dual_semiring from_parameter(std::string_view token, const token_resolver& resolve) {
    if (token.empty()) throw parse_error("dual:TOKEN needs a token name after the colon, e.g. dual:W1[3,4]");
    if (resolve) {
      if (auto t = resolve(token)) return dual_semiring(*t, std::string(token));
      throw parse_error(fmt::format("dual:{0}: the circuit has no token named '{0}' (names look like x[0,3], "
                                    "W1[3,4], b2[5]; list the circuit's tokens to find the right one)",
                                    token));
    }
    if (token.size() > 1 && token[0] == 't') {
      token_index t = 0;
      const char* e = token.data() + token.size();
      auto [p, ec] = std::from_chars(token.data() + 1, e, t);
      if (ec == std::errc() && p == e) return dual_semiring(t);
    }
    throw parse_error(fmt::format("dual:{0}: cannot resolve the token name '{0}' without a circuit's token table; "
                                  "load a circuit first or name the token by index as t<index>",
                                  token));
  }

  token_index chosen() const noexcept { return chosen_; }

  value_type zero() const noexcept { return {0.0, 0.0}; }
  value_type one() const noexcept { return {1.0, 0.0}; }
  value_type plus(const value_type& a, const value_type& b) const noexcept {
    return {a.value + b.value, a.derivative + b.derivative};
  }
  value_type times(const value_type& a, const value_type& b) const noexcept {
    return {a.value * b.value, a.value * b.derivative + a.derivative * b.value};
  }
  value_type lift(token_index t, double v) const noexcept { return {v, t == chosen_ ? 1.0 : 0.0}; }
  /// A real coefficient is a constant: derivative 0.
  value_type from_real(double d) const noexcept { return {d, 0.0}; }
  std::string name() const { return fmt::format("{}:{}", registry_name, token_name_); }
  /// `0.5 + 2ε`, `0.5 - 2ε`.
  std::string format(const value_type& a, const token_namer& = {}) const {
    if (a.derivative < 0.0)
      return fmt::format("{} - {}ε", a.value, -a.derivative);
    return fmt::format("{} + {}ε", a.value, a.derivative);
  }

 private:
  token_index chosen_;
  std::string token_name_;
};

}  // namespace provnn
