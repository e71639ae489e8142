// provnn semirings [--json]: every semiring a circuit can be evaluated in.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "semirings/registry.hpp"
#include "semirings/semiring.hpp"

namespace provnn::cli {

void add_semirings_command(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("semirings", "list the semirings, their properties and the question each answers");
  cmd->add_flag("--json", *json, "print as a JSON list");
  cmd->callback([json] {
    const auto all = list_semirings();
    if (*json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& s : all) {
        nlohmann::json e;
        e["name"] = s.name;
        e["properties"] = property_names(s.properties);
        e["question"] = s.question;
        j.push_back(e);
      }
      fmt::print("{}\n", j.dump(2));
      return;
    }
    std::size_t width = 0;
    for (const auto& s : all) width = std::max(width, s.name.size());
    for (const auto& s : all) {
      fmt::print("{:<{}}  {}\n{:<{}}  [{}]\n", s.name, width, s.question, "", width, property_names(s.properties));
    }
  });
}

}  // namespace provnn::cli
