// provnn info C.pvc [--json]: what a circuit file holds.
#include <array>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "circuits/file_format.hpp"
#include "cli/commands.hpp"

namespace provnn::cli {

void add_info_command(CLI::App& app) {
  struct options {
    std::string file;
    bool json = false;
  };
  auto o = std::make_shared<options>();
  auto* cmd = app.add_subcommand("info", "model, input, target, rules and sizes of a saved circuit");
  cmd->add_option("circuit", o->file, "circuit file (.pvc)")->required();
  cmd->add_flag("--json", o->json, "print as JSON");
  cmd->callback([o] {
    const circuit c = load_circuit(o->file);
    std::array<std::size_t, gate_kind_count> gates{};
    for (auto k : c.raw_kinds()) gates[k]++;
    std::array<std::size_t, token_kind_count> tokens{};
    for (token_index t = 0; t < c.tokens().size(); ++t) tokens[static_cast<std::size_t>(c.tokens().kind(t))]++;
    std::array<std::size_t, root_kind_count> roots{};
    for (const auto& r : c.roots()) roots[static_cast<std::size_t>(r.kind)]++;

    nlohmann::ordered_json j;
    j["file"] = o->file;
    j["metadata"] = c.metadata();
    nlohmann::ordered_json g;
    g["total"] = c.size();
    for (std::size_t k = 0; k < gate_kind_count; ++k) g[std::string(to_string(static_cast<gate_kind>(k)))] = gates[k];
    g["edge"] = c.edge_gates().size();
    g["fused_edges"] = c.fused_edge_count();
    g["scale"] = c.scale_gates().size();
    g["structured_edges"] = c.structured_edge_count();
    g["conv_stages"] = c.conv_stages().size();
    g["child_references"] = c.child_count();
    j["gates"] = g;
    nlohmann::ordered_json t;
    t["total"] = c.tokens().size();
    for (std::size_t k = 0; k < token_kind_count; ++k) t[std::string(to_string(static_cast<token_kind>(k)))] = tokens[k];
    j["tokens"] = t;
    nlohmann::ordered_json r;
    for (std::size_t k = 0; k < root_kind_count; ++k) r[std::string(to_string(static_cast<root_kind>(k)))] = roots[k];
    j["roots"] = r;
    j["bytes_memory"] = c.bytes() + c.tokens().bytes();
    j["bytes_file"] = std::filesystem::file_size(o->file);
    if (o->json) {
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("circuit {}\n", o->file);
    for (const auto& [key, value] : c.metadata()) fmt::print("  {:<14} {}\n", key, value);
    fmt::print("  gates          {} ({} ⊕, {} ⊗ of which {} edge gates, {} token gates), {} child references\n",
               c.size(), gates[static_cast<std::size_t>(gate_kind::plus)], gates[static_cast<std::size_t>(gate_kind::times)],
               c.edge_gates().size(), gates[static_cast<std::size_t>(gate_kind::token)], c.child_count());
    if (!c.fused_gates().empty())
      fmt::print("  fused          {} fused gates holding {} edges (8 bytes each), {} scale gates\n",
                 c.fused_gates().size(), c.fused_edge_count(), c.scale_gates().size());
    if (!c.structured_gates().empty())
      fmt::print("  structured     {} structured gates over {} conv stages, standing for {} edges\n",
                 c.structured_gates().size(), c.conv_stages().size(), c.structured_edge_count());
    std::string tk;
    for (std::size_t k = 0; k < token_kind_count; ++k)
      if (tokens[k]) tk += fmt::format("{}{} {}", tk.empty() ? "" : ", ", tokens[k], to_string(static_cast<token_kind>(k)));
    fmt::print("  tokens         {} ({})\n", c.tokens().size(), tk);
    fmt::print("  roots          {} features, {} biases\n", roots[static_cast<std::size_t>(root_kind::feature)],
               roots[static_cast<std::size_t>(root_kind::bias)]);
    fmt::print("  bytes          {} in memory, {} on disk\n", c.bytes() + c.tokens().bytes(),
               std::filesystem::file_size(o->file));
  });
}

}  // namespace provnn::cli
