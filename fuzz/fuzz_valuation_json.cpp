// libFuzzer target: cli::parse_valuation_json, the parser behind `provnn eval --valuation`
// (read_valuation_json reads the file and hands its bytes to it). Properties: every accepted
// value is finite.
#include <cmath>
#include <string_view>

#include "cli/circuit_support.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  PROVNN_FUZZ_EXPECTED_ERRORS({
    for (const auto& o : provnn::cli::parse_valuation_json(text, "fuzz input"))
      if (!std::isfinite(o.value)) provnn::fuzz::property_failed("valuation: a non-finite value was accepted");
  });
  return 0;
}
