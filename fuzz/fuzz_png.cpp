// libFuzzer target: engine::parse_png (libpng behind setjmp/longjmp error handling).
#include "engine/png_io.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  PROVNN_FUZZ_EXPECTED_ERRORS({
    const auto img = provnn::engine::parse_png(provnn::fuzz::as_text(data, size), "fuzz.png");
    if (img.data.size() != img.channels * img.height * img.width)
      provnn::fuzz::property_failed("png: data size != channels*height*width");
    if (img.channels != 1 && img.channels != 3) provnn::fuzz::property_failed("png: channels not 1 or 3");
  });
  return 0;
}
