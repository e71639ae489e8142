// What every fuzz target shares: the bytes as a string_view, the fixed circuit some targets
// parse against, and the rule that a provnn::error is an expected answer to bad input while
// anything else (another exception, a crash, a sanitizer report, an abort) is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "circuits/circuit.hpp"
#include "circuits/file_format.hpp"
#include "common/error.hpp"

namespace provnn::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// A property that must hold for every input failed: report it the way a sanitizer would
/// (libFuzzer saves the input on abort).
[[noreturn]] inline void property_failed(const char* what) {
  std::fprintf(stderr, "provnn fuzz: property violated: %s\n", what);
  std::abort();
}

/// The small CNN circuit of fuzz/data (91 tokens, 90 edge gates), loaded once.
inline const circuit& fixed_circuit() {
  static const circuit c = load_circuit(PROVNN_FUZZ_DATA_DIR "/tiny_cnn.pvc");
  return c;
}

}  // namespace provnn::fuzz

/// Runs body; swallows provnn::error (the documented answer to bad input), lets all else escape.
#define PROVNN_FUZZ_EXPECTED_ERRORS(body) \
  try {                                   \
    body;                                 \
  } catch (const ::provnn::error&) {      \
  }
