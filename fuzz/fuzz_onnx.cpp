// libFuzzer target: engine::load_onnx_bytes (protobuf parsing, graph checks, shape arithmetic,
// BatchNorm folding) on arbitrary bytes.
#include <string>

#include "engine/onnx_import.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  PROVNN_FUZZ_EXPECTED_ERRORS((void)provnn::engine::load_onnx_bytes(provnn::fuzz::as_text(data, size), "fuzz.onnx"));
  return 0;
}
