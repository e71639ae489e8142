// Boolean semiring: is there any relevant path?
//
//   carrier   {false, true}
//   ⊕, ⊗      ∨, ∧
//   0, 1      false, true
//   properties commutative, ⊕- and ⊗-idempotent, absorptive, path
//   lifting   a token is true when its natural real value is non-zero
//   answers   "does any path with non-zero (or, under a threshold annotation, large
//             enough) coefficients connect this feature to the explained output?"
#pragma once

#include <string>

#include "semirings/semiring.hpp"

namespace provnn {

struct boolean_semiring {
  using value_type = bool;
  static constexpr std::uint32_t properties =
      commutative | plus_idempotent | times_idempotent | absorptive | path;
  static constexpr std::string_view registry_name = "boolean";
  static constexpr std::string_view question = "does any relevant path connect this feature to the output?";

  value_type zero() const noexcept { return false; }
  value_type one() const noexcept { return true; }
  value_type plus(value_type a, value_type b) const noexcept { return a || b; }
  value_type times(value_type a, value_type b) const noexcept { return a && b; }
  value_type lift(token_index, double v) const noexcept { return v != 0.0; }
  value_type from_real(double d) const noexcept { return d != 0.0; }
  std::string name() const { return std::string(registry_name); }
  std::string format(value_type a, const token_namer& = {}) const { return a ? "true" : "false"; }
};

}  // namespace provnn
