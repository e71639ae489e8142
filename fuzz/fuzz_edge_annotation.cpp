// libFuzzer target: parse_edge_annotation on the fixed circuit; an accepted annotation has
// one entry per edge gate.
#include "circuits/edge_annotation.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& c = provnn::fuzz::fixed_circuit();
  PROVNN_FUZZ_EXPECTED_ERRORS({
    const auto a = provnn::parse_edge_annotation(c, provnn::fuzz::as_text(data, size));
    if (a.size() != c.edge_gates().size()) provnn::fuzz::property_failed("edge annotation: size != edge gates");
  });
  return 0;
}
