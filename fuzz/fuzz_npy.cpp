// libFuzzer target: engine::parse_npy. A parsed array must hold exactly element_count(shape)
// values (the header is checked against the data before allocation).
#include "engine/npy.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  PROVNN_FUZZ_EXPECTED_ERRORS({
    const auto a = provnn::engine::parse_npy(provnn::fuzz::as_text(data, size), "fuzz.npy");
    std::size_t n = 1;
    for (auto d : a.shape) n *= d;
    if (n != a.data.size()) provnn::fuzz::property_failed("npy: data size != product of the shape");
    if (a.data.size() > size) provnn::fuzz::property_failed("npy: more values than input bytes");
  });
  return 0;
}
