#include "semirings/registry.hpp"

namespace provnn {

namespace {
template <class... S>
std::vector<semiring_info> infos(type_list<S...>) {
  return {semiring_info{detail::display_name<S>(), S::properties, std::string(S::question)}...};
}
}  // namespace

std::vector<semiring_info> list_semirings() { return infos(all_semirings{}); }

std::string property_names(std::uint32_t p) {
  static constexpr std::pair<semiring_property, std::string_view> names[] = {
      {commutative, "commutative"}, {plus_idempotent, "⊕-idempotent"}, {times_idempotent, "⊗-idempotent"},
      {absorptive, "absorptive"},   {path, "path"},                     {approximate, "approximate"}};
  std::string out;
  for (const auto& [flag, name] : names)
    if (p & flag) {
      if (!out.empty()) out += ", ";
      out += name;
    }
  return out;
}

std::string valid_semiring_names() {
  std::string out;
  for (const auto& i : list_semirings()) {
    if (!out.empty()) out += ", ";
    out += i.name;
  }
  return out;
}

bool is_valid_semiring(std::string_view spec, const token_resolver& resolve) {
  try {
    with_semiring(spec, resolve, [](const auto&) {});
    return true;
  } catch (const parse_error&) {
    return false;
  }
}

namespace detail {
void throw_unknown_semiring(std::string_view spec) {
  throw parse_error(fmt::format("unknown semiring '{}'; valid semirings: {}", spec, valid_semiring_names()));
}
void throw_bad_semiring_parameter(std::string_view message) {
  throw parse_error(fmt::format("{}; valid semirings: {}", message, valid_semiring_names()));
}
}  // namespace detail

}  // namespace provnn
