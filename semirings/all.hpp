// Every semiring of provnn, in ONE type list. The tests run the law tester over it
// (TEST_CASE_TEMPLATE_APPLY) and the registry (semirings/registry.hpp) finds semirings by
// name in it: adding a semiring here is all it takes to make it testable and nameable.
#pragma once

#include <cstddef>
#include <tuple>

#include "semirings/boolean.hpp"
#include "semirings/bx.hpp"
#include "semirings/counting.hpp"
#include "semirings/dual.hpp"
#include "semirings/exact.hpp"
#include "semirings/exact_float.hpp"
#include "semirings/fuzzy.hpp"
#include "semirings/lineage.hpp"
#include "semirings/lukasiewicz.hpp"
#include "semirings/max_plus.hpp"
#include "semirings/nx.hpp"
#include "semirings/posbool.hpp"
#include "semirings/real.hpp"
#include "semirings/security.hpp"
#include "semirings/topk.hpp"
#include "semirings/trio.hpp"
#include "semirings/tropical.hpp"
#include "semirings/viterbi.hpp"
#include "semirings/why.hpp"

namespace provnn {

/// A compile-time list of types.
template <class... Ts>
struct type_list {
  static constexpr std::size_t size = sizeof...(Ts);
  /// The same types as a std::tuple (doctest's TEST_CASE_TEMPLATE_APPLY wants one).
  using as_tuple = std::tuple<Ts...>;
};

/// All semirings, in the order `provnn semirings` lists them.
using all_semirings =
    type_list<real_semiring, exact_semiring, exact_float_semiring, boolean_semiring, counting_semiring,
              tropical_semiring, max_plus_semiring, viterbi_semiring, fuzzy_semiring, lukasiewicz_semiring,
              security_semiring, lineage_semiring, why_semiring, posbool_semiring, bx_semiring, trio_semiring,
              nx_semiring, topk_semiring, dual_semiring>;

}  // namespace provnn
