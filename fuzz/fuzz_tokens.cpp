// libFuzzer target: token names and glob patterns. Input "NAME|PATTERN" (no '|': both).
//   token_table::find(NAME) on the fixed circuit: a token found must print back as NAME;
//   glob_match(s, s) must hold for every s ('*' and '?' also match themselves);
//   token_table::match(PATTERN) must agree with glob_match over every name.
#include <algorithm>
#include <string>
#include <vector>

#include "circuits/tokens.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = provnn::fuzz::as_text(data, size);
  const auto bar = text.find('|');
  const std::string_view name = text.substr(0, bar);
  const std::string_view pattern = bar == std::string_view::npos ? text : text.substr(bar + 1);
  const auto& tokens = provnn::fuzz::fixed_circuit().tokens();
  // The names, formatted once: naming every token per input was most of this target's time.
  static const std::vector<std::string> names = [&] {
    std::vector<std::string> v;
    for (provnn::token_index t = 0; t < tokens.size(); ++t) v.push_back(tokens.name(t));
    return v;
  }();
  PROVNN_FUZZ_EXPECTED_ERRORS({
    if (const auto t = tokens.find(name); t && tokens.name(*t) != name)
      provnn::fuzz::property_failed("tokens: find(name) returned a token with another name");
  });
  if (!provnn::glob_match(name, name)) provnn::fuzz::property_failed("tokens: glob_match(s, s) is false");
  // Found by this target (fuzz/regressions/tokens/glob_star_literal_first, fixed in e30d7b0):
  // '*' facing a '*' in the text was consumed as a literal, so "*" failed to match "*g-*".
  if (!provnn::glob_match("*", pattern)) provnn::fuzz::property_failed("tokens: '*' does not match everything");
  PROVNN_FUZZ_EXPECTED_ERRORS({
    const auto found = tokens.match(pattern);
    std::size_t expected = 0;
    for (const auto& n : names) expected += provnn::glob_match(pattern, n);
    if (found.size() != expected) provnn::fuzz::property_failed("tokens: match() disagrees with glob_match");
  });
  return 0;
}
