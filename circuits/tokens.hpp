// The token table of a circuit: the leaves (input features, activations, parameters, biases,
// unit normalisers, targets, constants), each interned once, with a stable readable name and
// its natural real value ν_ℝ (DESIGN §3).
//
// Names (ASCII only, one grammar, parsed back by find(name)):
//
//   name    := prefix [layer] suffix '[' [coord {',' coord}] ']' ['#' term]
//   prefix  := 'x' input | 'l' input lower bound | 'h' input upper bound | 'a' activation
//            | 'W' parameter | 'b' bias | 'n' normaliser | 'r' target | 'c' constant
//   layer   := decimal       present exactly for a, W, b, n (the linear layer's number)
//   suffix  := '' plain | '+' positive part | '-' negative part | 'g+' w+γw⁺ | 'g-' w+γw⁻
//            | '^2' square | '^0' the constant 1 standing for this token (flat rule)
//   term    := decimal       present exactly for n (the rule's term m)
//
// Examples: x[0,3,4]  x+[0,3,4]  l[0,3,4]  W1[3,4]  W1+[3,4]  W1g-[3,4]  W1^2[3,4]  b1[3]
//           a2[7]  n1[3]#0  r[7]  c[0].
//
// Glob patterns (match()): '*' matches any run of characters (also empty), '?' exactly one;
// every other character, '[' ']' ',' '+' included, matches itself — there are no character
// classes, so `W1[3,*]` means "row 3 of W1" and needs no escaping.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/detail/id_table.hpp"
#include "semirings/semiring.hpp"

namespace provnn {

enum class token_kind : std::uint8_t { input, activation, parameter, bias, normaliser, target, constant };
inline constexpr std::uint8_t token_kind_count = 7;

/// The modifier applied to the underlying quantity (φ_m, ψ_m of DESIGN §2).
enum class token_variant : std::uint8_t {
  plain,      ///< x, w
  pos,        ///< x⁺ = max(x,0), w⁺
  neg,        ///< x⁻ = min(x,0), w⁻
  low,        ///< l: z^B lower bound (inputs only)
  high,       ///< h: z^B upper bound (inputs only)
  gamma_pos,  ///< w + γw⁺
  gamma_neg,  ///< w + γw⁻
  square,     ///< w²
  one,        ///< the constant 1 standing for this quantity (flat rule), deletable like any token
};
inline constexpr std::uint8_t token_variant_count = 9;

std::string_view to_string(token_kind k) noexcept;
std::string_view to_string(token_variant v) noexcept;

/// True when the kind's names carry a layer number (a, W, b, n).
constexpr bool has_layer(token_kind k) noexcept {
  return k == token_kind::activation || k == token_kind::parameter || k == token_kind::bias ||
         k == token_kind::normaliser;
}

/// Glob match of `text` against `pattern` ('*' any run, '?' one character, all else literal).
/// O(|pattern|·|text|) worst case, linear in practice.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

/// Interned tokens, structure of arrays. Indices are dense, 0..size()-1, in creation order,
/// and never change (tokens are never removed).
class token_table {
 public:
  /// The token with these coordinates, created (with natural value 0) if absent.
  /// Amortised O(|index|). Throws provnn::error if the combination is not nameable
  /// (low/high on a non-input kind, a term on a non-normaliser, a layer on a kind without).
  token_index intern(token_kind kind, token_variant variant, std::uint32_t layer,
                     std::span<const std::uint32_t> index, std::uint32_t term = 0);
  token_index intern(token_kind kind, token_variant variant, std::uint32_t layer,
                     std::initializer_list<std::uint32_t> index, std::uint32_t term = 0) {
    return intern(kind, variant, layer, std::span<const std::uint32_t>(index.begin(), index.size()), term);
  }

  /// The existing token with these coordinates, if any. O(|index|).
  std::optional<token_index> find(token_kind kind, token_variant variant, std::uint32_t layer,
                                  std::span<const std::uint32_t> index, std::uint32_t term = 0) const;
  /// The token whose name() is exactly `name`, if any (the name is parsed, not searched).
  std::optional<token_index> find(std::string_view name) const;
  /// Like find(name) but throws provnn::error naming the token when it does not exist.
  token_index at(std::string_view name) const;
  /// Every token whose name matches the glob pattern, in index order. O(size()·|name|).
  std::vector<token_index> match(std::string_view pattern) const;

  std::size_t size() const noexcept { return kinds_.size(); }
  token_kind kind(token_index t) const { return static_cast<token_kind>(kinds_[t]); }
  token_variant variant(token_index t) const { return static_cast<token_variant>(variants_[t]); }
  std::uint32_t layer(token_index t) const { return layers_[t]; }
  std::uint32_t term(token_index t) const { return terms_[t]; }
  std::span<const std::uint32_t> index(token_index t) const {
    return {coords_.data() + coord_offsets_[t], coords_.data() + coord_offsets_[t + 1]};
  }

  /// The stable readable name (see the grammar above). O(|index|).
  std::string name(token_index t) const;
  void append_name(token_index t, std::string& out) const;
  /// A token_namer for semiring formatting.
  token_namer namer() const {
    return [this](token_index t) { return name(t); };
  }

  /// The natural real valuation ν_ℝ, one double per token.
  double value(token_index t) const { return values_[t]; }
  void set_value(token_index t, double v) { values_[t] = v; }
  std::span<const double> values() const noexcept { return values_; }

  /// Heap bytes held (for reports and the memory budget).
  std::size_t bytes() const noexcept;
  void reserve(std::size_t tokens, std::size_t coords);
  /// Heap bytes of a table reserved for `tokens` tokens and `coords` coordinates (an upper
  /// bound of what reserve() allocates, for budgets).
  static std::size_t bytes_for(std::size_t tokens, std::size_t coords) noexcept;

 private:
  std::uint64_t key_hash(std::uint8_t kind, std::uint8_t variant, std::uint32_t layer, std::uint32_t term,
                         std::span<const std::uint32_t> index) const noexcept;

  std::vector<std::uint8_t> kinds_, variants_;
  std::vector<std::uint32_t> layers_, terms_;
  std::vector<std::uint32_t> coord_offsets_{0};
  std::vector<std::uint32_t> coords_;
  std::vector<double> values_;
  detail::id_table by_key_;
};

}  // namespace provnn
