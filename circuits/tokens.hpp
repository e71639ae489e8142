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
#include "circuits/detail/offset_set.hpp"
#include "circuits/detail/pod_buffer.hpp"
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

  /// A block of tokens: every coordinate of a tensor of `shape` with one kind, variant, layer
  /// and term, made at once (a builder's parameter tensor). Its tokens take the next
  /// Π shape indices, in row-major order over the axes permuted by `order` (order[0] the
  /// outermost axis; empty: the natural order) — so a builder can make the tokens it reads
  /// together adjacent. A block token costs its value only (8 bytes): no coordinates are
  /// stored and nothing is hashed; find() computes it from the coordinates. Values start at 0
  /// (or at `values`).
  /// Throws provnn::error when the combination is not nameable, `order` is not a permutation
  /// of the axes, or a token of the block exists already.
  ///
  /// A *sparse* block holds only the coordinates listed in `present`: their storage offsets
  /// (row-major over the permuted axes), strictly increasing; its tokens take that order, and
  /// cost their value plus 4 bytes each, or a bitmap over the shape when that is smaller
  /// (12 bytes per 64 coordinates: detail::offset_set). A builder lists the parameters some
  /// active edge uses, so inactive ones cost no value and the used ones stay adjacent.
  ///
  /// `values`, when not empty, are the tokens' values in token order (one per token of the
  /// block, else provnn::error): set in the same step, where set_value() per token would first
  /// write zeros. They must not lie in this table's values() (which may move); they may lie
  /// at the front of value_room().
  token_index add_block(token_kind kind, token_variant variant, std::uint32_t layer,
                        std::span<const std::uint32_t> shape, std::span<const std::uint8_t> order = {},
                        std::uint32_t term = 0, std::span<const std::uint32_t> present = {},
                        std::span<const double> values = {});
  /// Room for the values of a block of up to `count` tokens, to come next: a builder may
  /// write them there and pass the front of it as add_block's or add_block_bits' `values`,
  /// which then takes them without a copy. Valid until the table next changes. Throws
  /// std::bad_alloc.
  std::span<double> value_room(std::size_t count) { return values_.room(count); }
  /// The values' room (capacity), and giving back what lies beyond max(n, size()) values,
  /// in place: a builder's value_room() for a block that took less is returned so.
  std::size_t value_capacity() const noexcept { return values_.capacity(); }
  void shrink_values_to(std::size_t n) noexcept { values_.shrink_to(n); }
  /// A sparse block whose held storage offsets are the set bits of `present_words` (bit o % 64
  /// of word o / 64, exactly ⌈shape's size / 64⌉ words, no bit at or past the shape's size,
  /// else provnn::error), otherwise as add_block: for a builder that knows whole rows of the
  /// block at once (a dense layer's upper units reached from every lower unit) and sets their
  /// bits a word at a time instead of listing every offset.
  token_index add_block_bits(token_kind kind, token_variant variant, std::uint32_t layer,
                             std::span<const std::uint32_t> shape, std::span<const std::uint8_t> order,
                             std::uint32_t term, std::span<const std::uint64_t> present_words,
                             std::span<const double> values = {});
  /// The index of the block token with coordinates `index` in the block starting at `first`
  /// (O(rank), O(log count) for a sparse block; no hashing), or nullopt when the index is
  /// outside the shape or a sparse block does not hold it. Precondition: `first` was
  /// returned by add_block and index has the block's rank.
  std::optional<token_index> block_token(token_index first, std::span<const std::uint32_t> index) const;

  /// The blocks, in token order (for the file format and reports).
  struct block_view {
    token_index first;
    std::uint32_t count;
    token_kind kind;
    token_variant variant;
    std::uint32_t layer, term;
    std::span<const std::uint32_t> shape;
    std::span<const std::uint8_t> order;
    const detail::offset_set& present;  ///< the held storage offsets; empty: every coordinate (dense)
  };
  std::size_t block_count() const noexcept { return blocks_.size(); }
  block_view block_at(std::size_t i) const {
    const auto& b = blocks_[i];
    return {b.first,   b.count, static_cast<token_kind>(b.kind), static_cast<token_variant>(b.variant), b.layer,
            b.term,    b.shape, b.order,                          b.present};
  }
  /// Whether token t belongs to a block.
  bool in_block(token_index t) const { return locate(t).block != nullptr; }
  /// Where token t is stored, for side tables that follow the table's storage (the circuit's
  /// token → gate index): a single token's slot (block == -1; slots are dense, 0 …
  /// single_count() − 1, in creation order) or block number `block` and the token's place in
  /// it (t − block_at(block).first). O(1) without blocks, O(log runs) with.
  struct storage_position {
    std::int32_t block = -1;
    std::uint32_t at = 0;
  };
  storage_position position(token_index t) const;
  /// Number of tokens outside blocks.
  std::size_t single_count() const noexcept { return kinds_.size(); }
  /// Number of stored coordinates (of single tokens; block tokens store none).
  std::size_t coordinate_count() const noexcept { return coords_.size(); }

  std::size_t size() const noexcept { return values_.size(); }
  token_kind kind(token_index t) const {
    const auto s = locate(t);
    return static_cast<token_kind>(s.block ? s.block->kind : kinds_[s.slot]);
  }
  token_variant variant(token_index t) const {
    const auto s = locate(t);
    return static_cast<token_variant>(s.block ? s.block->variant : variants_[s.slot]);
  }
  std::uint32_t layer(token_index t) const {
    const auto s = locate(t);
    return s.block ? s.block->layer : layers_[s.slot];
  }
  std::uint32_t term(token_index t) const {
    const auto s = locate(t);
    return s.block ? s.block->term : terms_[s.slot];
  }
  /// The coordinates of token t: a view of the table's storage, or of `buffer` (filled) for a
  /// block token. Valid until the next change of the table or of `buffer`.
  std::span<const std::uint32_t> index(token_index t, std::vector<std::uint32_t>& buffer) const;

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
  std::span<const double> values() const noexcept { return {values_.data(), values_.size()}; }

  /// Heap bytes held (for reports and the memory budget).
  std::size_t bytes() const noexcept;
  void reserve(std::size_t tokens, std::size_t coords);
  /// Room for `tokens` values in all, for blocks to come: add_block() copies no table while
  /// they fit. A hint, as reserve().
  void reserve_values(std::size_t tokens) { values_.reserve(tokens); }
  /// Gives back the values' spare room, in place (no copy, no memory needed).
  void trim_values() noexcept { values_.shrink_to_fit(); }
  /// Gives back room reserve() or growth left unused, where it exceeds an eighth of what is
  /// used (smaller slack is not worth a copy).
  void shrink_to_fit();
  /// Heap bytes of a table reserved for `tokens` tokens and `coords` coordinates (an upper
  /// bound of what reserve() allocates, for budgets).
  static std::size_t bytes_for(std::size_t tokens, std::size_t coords) noexcept;

 private:
  struct token_block;
  // add_block's checks of the name and shape, as a block with everything but its tokens set;
  // full is the shape's size.
  token_block new_block(token_kind kind, token_variant variant, std::uint32_t layer,
                        std::span<const std::uint32_t> shape, std::span<const std::uint8_t> order,
                        std::uint32_t term, std::uint64_t& full) const;
  // Adds b (its present set assigned, or empty for a dense block) with its values.
  token_index commit_block(token_block&& b, std::uint64_t full, std::span<const double> values);
  std::uint64_t key_hash(std::uint8_t kind, std::uint8_t variant, std::uint32_t layer, std::uint32_t term,
                         std::span<const std::uint32_t> index) const noexcept;

  struct token_block {
    token_index first = 0;
    std::uint32_t count = 0;
    std::uint8_t kind = 0, variant = 0;
    std::uint32_t layer = 0, term = 0;
    std::vector<std::uint32_t> shape;  // by axis
    std::vector<std::uint8_t> order;   // storage order of the axes, outermost first
    std::vector<std::uint32_t> stride; // by axis: the storage stride of that axis
    detail::offset_set present;         // sparse block: storage offsets of its tokens, increasing
    // The token at coordinates `index`, if inside the shape and (sparse) held by the block.
    std::optional<token_index> at(std::span<const std::uint32_t> index) const;
    // The storage offset of token t of the block.
    std::uint64_t offset_of(token_index t) const { return present.empty() ? t - first : present.at(t - first); }
  };
  // Where token t lives: a single token's slot in the per-token arrays, or its block.
  struct place {
    const token_block* block = nullptr;
    std::uint32_t slot = 0;
  };
  // Runs of consecutive token indices: singles (slot = base + offset) or one block.
  struct run {
    token_index first = 0;
    std::uint32_t base = 0;   // singles: slot of the run's first token
    std::int32_t block = -1;  // index into blocks_, or -1 for singles
  };
  place locate(token_index t) const {
    if (blocks_.empty()) [[likely]]
      return {nullptr, t};
    return locate_slow(t);
  }
  place locate_slow(token_index t) const;
  std::optional<token_index> find_in_blocks(std::uint8_t kind, std::uint8_t variant, std::uint32_t layer,
                                            std::span<const std::uint32_t> index, std::uint32_t term) const;

  // Per single token (indexed by slot):
  std::vector<std::uint8_t> kinds_, variants_;
  std::vector<std::uint32_t> layers_, terms_;
  std::vector<std::uint32_t> coord_offsets_{0};
  std::vector<std::uint32_t> coords_;
  detail::id_table by_key_;  // singles only; values are token indices
  // Per token:
  detail::pod_buffer<double> values_;  // (trimmed in place: the largest array of a build)
  std::vector<token_block> blocks_;
  std::vector<run> runs_;  // empty while there is no block (then slot = token index)
};

}  // namespace provnn
