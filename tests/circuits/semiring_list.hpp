// The semirings the circuit tests run over, and value comparison that respects the
// `approximate` flag (floating-point carriers agree up to rounding, the others exactly).
#pragma once

#include <doctest/doctest.h>

#include <cmath>

#include "semirings/boolean.hpp"
#include "semirings/real.hpp"
#include "semirings/semiring.hpp"

#define PROVNN_CIRCUIT_TEST_SEMIRINGS provnn::real_semiring, provnn::boolean_semiring

namespace provnn::testing {

template <semiring S>
bool same_value(const S&, const typename S::value_type& a, const typename S::value_type& b) {
  if constexpr (std::is_same_v<typename S::value_type, double>) {
    if (a == b) return true;
    const double scale = std::max({1.0, std::fabs(a), std::fabs(b)});
    return std::fabs(a - b) <= 1e-9 * scale;
  } else {
    return a == b;
  }
}

}  // namespace provnn::testing
