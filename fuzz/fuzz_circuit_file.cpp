// libFuzzer target: deserialize_circuit (.pvc). The format ends with a CRC-32 of everything
// before it, which random mutation almost never satisfies; so the target recomputes the CRC
// over the mutated bytes (zlib's crc32, the same polynomial) and checks the records behind it.
// Inputs whose first byte after the magic is 0xFF are left as they are, so the CRC check
// itself is still exercised.
#include <zlib.h>

#include <string>

#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(provnn::fuzz::as_text(data, size));
  if (bytes.size() >= 12 && static_cast<unsigned char>(bytes[8]) != 0xFF) {
    const auto crc = static_cast<std::uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size() - 4)));
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  }
  PROVNN_FUZZ_EXPECTED_ERRORS({
    const provnn::circuit c = provnn::deserialize_circuit(bytes, "fuzz.pvc");
    // An accepted circuit must survive a round trip: writing it, reading that back and
    // writing again gives the same bytes (reserved bytes of the input may differ, so the
    // comparison is not against the input itself).
    const std::string once = provnn::serialize_circuit(c);
    if (provnn::serialize_circuit(provnn::deserialize_circuit(once, "round-trip")) != once)
      provnn::fuzz::property_failed("pvc: an accepted circuit does not round-trip");
  });
  return 0;
}
