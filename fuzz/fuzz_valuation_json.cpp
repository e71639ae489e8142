// libFuzzer target: cli::read_valuation_json. It only reads from a path today, so the bytes
// go through one temporary file per process (a read_valuation_json_text(string_view) API
// would make this in-memory; asked for in docs/reliability.md).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "cli/circuit_support.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/provnn-fuzz-valuation-" + std::to_string(::getpid()) + ".json";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
  }
  PROVNN_FUZZ_EXPECTED_ERRORS({
    for (const auto& o : provnn::cli::read_valuation_json(path))
      if (!std::isfinite(o.value)) provnn::fuzz::property_failed("valuation: a non-finite value was accepted");
  });
  return 0;
}
