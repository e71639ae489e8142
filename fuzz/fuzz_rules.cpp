// libFuzzer target: engine::parse_rule, parse_composite and add_rule_option.
//   "C:" TEXT  -> parse_composite(TEXT)
//   "O:" TEXT  -> add_rule_option on the default composite and on a preset composite
//   TEXT       -> parse_rule(TEXT); an accepted rule must round-trip through to_string
#include <string>

#include "engine/rules.hpp"
#include "fuzz/fuzz_common.hpp"

namespace rules = provnn::engine;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = provnn::fuzz::as_text(data, size);
  if (text.starts_with("C:")) {
    PROVNN_FUZZ_EXPECTED_ERRORS({
      auto c = rules::parse_composite(text.substr(2));
      (void)rules::to_string(c);
    });
  } else if (text.starts_with("O:")) {
    rules::composite plain;
    PROVNN_FUZZ_EXPECTED_ERRORS(rules::add_rule_option(plain, text.substr(2)));
    (void)rules::to_string(plain);
    PROVNN_FUZZ_EXPECTED_ERRORS({
      auto preset = rules::parse_composite("epsilon-plus");
      rules::add_rule_option(preset, text.substr(2));
      (void)rules::to_string(preset);
    });
  } else {
    PROVNN_FUZZ_EXPECTED_ERRORS({
      const auto r = rules::parse_rule(text);
      if (r == r) {  // NaN parameters compare unequal to themselves; nothing to round-trip then
        const std::string canonical = rules::to_string(r);
        if (canonical.find('<') == std::string::npos && !(rules::parse_rule(canonical) == r))
          provnn::fuzz::property_failed("rule: parse_rule(to_string(r)) != r");
      }
    });
  }
  return 0;
}
