// The semirings the circuit tests run over (every semiring of semirings/all.hpp), the
// structure object each test uses, and value comparison that respects the `approximate`
// flag — shared with the semiring suite (tests/semirings/generators.hpp) so both suites
// agree on what "equal" means.
#pragma once

#include "semirings/all.hpp"
#include "tests/semirings/generators.hpp"

namespace provnn::testing {

using provnn::test::make_test_semiring;

template <semiring S>
bool same_value(const S& s, const typename S::value_type& a, const typename S::value_type& b) {
  return provnn::test::same(s, a, b);
}

}  // namespace provnn::testing
