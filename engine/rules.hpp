// LRP rules and composites (DESIGN §2): what rule each linear layer uses, as values.
//
// A `rule` is a small regular value: a kind and its parameters. The command-line spelling is
//
//   zero | epsilon[:E] | gamma[:G] | zplus | alphabeta[:A,B] | zbox:L,H | flat | wsquare
//
// with E = 1e-6, G = 0.25, (A,B) = (2,1) by default, A − B = 1 required (Zennit's check).
// `zero` is LRP-0: the ε rule with ε = 0. Every other rule divides by stab(z) = z + 1e-6·s(z).
// zbox bounds are numbers, or paths to .npy files of per-feature bounds: the parser stays
// pure (it only records the path) and `resolve_bounds` loads them through a callback.
//
// A `composite` maps linear layers (dense and convolution layers, counted from 0 in network
// order) to rules: a default, the rules of a preset, then user overrides by `first`, by index
// or by ONNX node name (`--rule [LAYER=]RULE`, later overrides win). `resolve` turns it into
// one rule per linear layer of a given network.
//
// Presets follow Zennit's composites (zennit/composites.py, read through the docs/code search):
//   epsilon-plus          EpsilonPlus: ZPlus on convolutions, Epsilon(1e-6) on dense layers.
//   epsilon-alpha2-beta1  EpsilonAlpha2Beta1: AlphaBeta(2,1) on convolutions, Epsilon on dense.
//   epsilon-plus-flat     EpsilonPlusFlat: Flat on the first linear layer (dense or conv), then
//                         ZPlus on convolutions, Epsilon on dense.
//   epsilon-gamma-box:L,H EpsilonGammaBox(low, high): ZBox on the first layer when it is a
//                         convolution, Gamma(0.25) on convolutions, Epsilon on dense.
// Zennit's SpecialFirstLayerMapComposite gives the first-layer rule to the first module that
// matches its type list, so for EpsilonGammaBox it is the first *convolution* even if a dense
// layer comes before it. provnn gives it to the first linear layer only when that layer is a
// convolution (as the issue states); the two agree on every network where no convolution
// follows a dense layer, which is every network a chain importer produces in practice.
// In Zennit, activations get Pass (relevance passes unchanged) and average pools get Norm
// (the ε rule with the fixed stabiliser 1e-6); lrp() does the same for every composite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/network.hpp"

namespace provnn::engine {

enum class rule_kind : std::uint8_t { zero, epsilon, gamma, zplus, alphabeta, zbox, flat, wsquare };

/// Name of a rule kind as spelled on the command line ("zero", "epsilon", …).
std::string_view to_string(rule_kind k) noexcept;

/// One z^B bound: a scalar, or per-feature values (flat, C order, the shape of the layer's
/// input) that come from a .npy file named by `path` once `resolve_bounds` has loaded them.
struct zbox_bound {
  double scalar = 0.0;
  std::string path;            ///< non-empty: per-feature bound read from this .npy file
  std::vector<double> values;  ///< per-feature values; empty for a scalar bound or before loading

  bool per_feature() const noexcept { return !path.empty() || !values.empty(); }
  /// True when the bound can be used: a scalar, or per-feature values already loaded.
  bool loaded() const noexcept { return path.empty() || !values.empty(); }
  /// Bound of feature j (values[j] when per feature). Precondition: loaded(), j in range.
  double at(std::size_t j) const noexcept { return values.empty() ? scalar : values[j]; }

  friend bool operator==(const zbox_bound&, const zbox_bound&) = default;
};

/// An LRP rule for one linear layer.
struct rule {
  rule_kind kind = rule_kind::epsilon;
  /// ε of the epsilon rule (0 for `zero`); for every other rule the stabiliser (1e-6).
  double epsilon = 1e-6;
  double gamma = 0.25;              ///< gamma rule only
  double alpha = 2.0, beta = 1.0;   ///< alphabeta only
  zbox_bound low, high;             ///< zbox only

  friend bool operator==(const rule&, const rule&) = default;
};

/// Factories with the documented defaults. They validate their parameters.
/// Throws parse_error: ε or γ negative or not finite; α or β negative, not finite, or
/// α − β ≠ 1 (to 1e-9); a scalar zbox bound not finite or low > high.
namespace rules {
rule zero();
rule epsilon(double eps = 1e-6);
rule gamma(double g = 0.25);
rule zplus();
rule alphabeta(double alpha = 2.0, double beta = 1.0);
rule zbox(zbox_bound low, zbox_bound high);
rule zbox(double low, double high);
rule flat();
rule wsquare();
}  // namespace rules

/// Parses a rule in its command-line spelling (see the top of this file). Leading and
/// trailing blanks are ignored. A zbox bound that is not a number must be a path ending in
/// ".npy" (and contain no comma). O(length).
/// Throws parse_error naming the text and listing the valid forms.
rule parse_rule(std::string_view text);

/// Canonical spelling; parse_rule(to_string(r)) == r for rules whose bounds are scalars or
/// paths (per-feature values given without a path print as "<N values>").
std::string to_string(const rule& r);

/// Loads a per-feature bound from a path: returns the flat values (C order).
using bound_loader = std::function<std::vector<double>(const std::string& path)>;

/// Loads every per-feature zbox bound that names a path and is not loaded yet.
/// Throws whatever `load` throws; provnn::error when it returns an empty array.
void resolve_bounds(rule& r, const bound_loader& load);
void resolve_bounds(std::vector<rule>& rs, const bound_loader& load);

enum class preset : std::uint8_t { none, epsilon_plus, epsilon_gamma_box, epsilon_alpha2_beta1, epsilon_plus_flat };

/// A rule chosen for a layer given by the user: `first`, a 0-based index among the linear
/// layers, or an ONNX node name.
struct rule_override {
  std::string layer;
  rule r;
  friend bool operator==(const rule_override&, const rule_override&) = default;
};

/// Rules per linear layer, before a network is known. Precedence (highest first): the last
/// matching override, the first-layer rule, the conv/dense rule, the default rule.
struct composite {
  preset kind = preset::none;
  rule default_rule = rules::epsilon();
  std::optional<rule> conv_rule, dense_rule;
  std::optional<rule> first_rule;
  bool first_rule_conv_only = false;  ///< EpsilonGammaBox: z^B only if the first layer is a conv
  std::vector<rule_override> overrides;

  friend bool operator==(const composite&, const composite&) = default;
};

/// Parses a preset name: `epsilon-plus`, `epsilon-gamma-box:L,H` (bounds as in zbox),
/// `epsilon-alpha2-beta1`, `epsilon-plus-flat`. Throws parse_error listing the presets.
composite parse_composite(std::string_view text);

/// Applies one `--rule [LAYER=]RULE` option: without LAYER it sets the default rule,
/// otherwise it appends an override. The text is split at its last '=' (rules never
/// contain one; node names may). Throws parse_error (bad rule, empty layer, or a default
/// rule for a preset composite, which would never apply).
void add_rule_option(composite& c, std::string_view text);

/// Human-readable summary, e.g. "epsilon-plus; 0=zbox:0,1".
std::string to_string(const composite& c);

/// One rule per linear layer of `net`, in network order. O(layers × overrides).
/// Throws parse_error when an override names no linear layer (unknown name, index out of
/// range, a node that is not dense/conv, `first` on a network without linear layers); the
/// message names the override and lists the linear layers.
std::vector<rule> resolve(const composite& c, const network& net);

}  // namespace provnn::engine
