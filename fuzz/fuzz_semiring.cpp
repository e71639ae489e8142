// libFuzzer target: the semiring-name parser (is_valid_semiring, with_semiring), with a
// resolver over the tokens of the fixed circuit so that dual:TOKEN is exercised.
// with_semiring must accept exactly the specifications is_valid_semiring accepts.
#include "fuzz/fuzz_common.hpp"
#include "semirings/registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view spec = provnn::fuzz::as_text(data, size);
  const auto& tokens = provnn::fuzz::fixed_circuit().tokens();
  const provnn::token_resolver resolve = [&tokens](std::string_view name) { return tokens.find(name); };
  bool valid = false;
  PROVNN_FUZZ_EXPECTED_ERRORS(valid = provnn::is_valid_semiring(spec, resolve));
  bool built = false;
  PROVNN_FUZZ_EXPECTED_ERRORS({
    built = provnn::with_semiring(spec, resolve, [](const auto& s) {
      const auto v = s.plus(s.one(), s.times(s.one(), s.zero()));
      (void)v;
      return true;
    });
  });
  if (valid != built) provnn::fuzz::property_failed("semiring: is_valid_semiring disagrees with with_semiring");
  return 0;
}
