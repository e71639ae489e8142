#include "circuits/tokens.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/error.hpp"

namespace provnn {
namespace {

constexpr std::string_view kind_names[token_kind_count] = {"input",      "activation", "parameter", "bias",
                                                           "normaliser", "target",     "constant"};
constexpr std::string_view variant_names[token_variant_count] = {
    "plain", "pos", "neg", "low", "high", "gamma_pos", "gamma_neg", "square", "one"};
constexpr std::string_view suffixes[token_variant_count] = {"", "+", "-", "", "", "g+", "g-", "^2", "^0"};

char prefix(token_kind k, token_variant v) noexcept {
  switch (k) {
    case token_kind::input: return v == token_variant::low ? 'l' : v == token_variant::high ? 'h' : 'x';
    case token_kind::activation: return 'a';
    case token_kind::parameter: return 'W';
    case token_kind::bias: return 'b';
    case token_kind::normaliser: return 'n';
    case token_kind::target: return 'r';
    case token_kind::constant: return 'c';
  }
  return '?';
}

void check_nameable(token_kind kind, token_variant variant, std::uint32_t layer, std::uint32_t term) {
  if (static_cast<std::uint8_t>(kind) >= token_kind_count || static_cast<std::uint8_t>(variant) >= token_variant_count)
    throw error(fmt::format("token: unknown kind {} or variant {}", static_cast<int>(kind), static_cast<int>(variant)));
  if ((variant == token_variant::low || variant == token_variant::high) && kind != token_kind::input)
    throw error(fmt::format("token: variant '{}' exists only for input features, not for kind '{}'",
                            to_string(variant), to_string(kind)));
  if (!has_layer(kind) && layer != 0)
    throw error(fmt::format("token: kind '{}' has no layer number (got layer {})", to_string(kind), layer));
  if (kind != token_kind::normaliser && term != 0)
    throw error(fmt::format("token: only normalisers carry a term number (kind '{}', term {})", to_string(kind), term));
}

// Parses a decimal uint32 at s[pos...]; advances pos. False if absent or overflowing.
bool parse_u32(std::string_view s, std::size_t& pos, std::uint32_t& out) {
  const std::size_t start = pos;
  std::uint64_t v = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    v = v * 10 + static_cast<std::uint64_t>(s[pos] - '0');
    if (v > 0xFFFFFFFFull) return false;
    ++pos;
  }
  out = static_cast<std::uint32_t>(v);
  // Canonical decimal only: "01" is not a spelling of 1, so that find(name) and glob
  // patterns agree on which names exist (found by fuzz_tokens: find("r[01]") gave r[1]).
  if (pos - start > 1 && s[start] == '0') return false;
  return pos > start;
}

}  // namespace

std::string_view to_string(token_kind k) noexcept {
  const auto i = static_cast<std::uint8_t>(k);
  return i < token_kind_count ? kind_names[i] : "?";
}
std::string_view to_string(token_variant v) noexcept {
  const auto i = static_cast<std::uint8_t>(v);
  return i < token_variant_count ? variant_names[i] : "?";
}

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Greedy with back-tracking to the last '*': linear unless many stars compete.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    // A '*' in the pattern is always a wildcard, even where the text has a '*' too.
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::uint64_t token_table::key_hash(std::uint8_t kind, std::uint8_t variant, std::uint32_t layer, std::uint32_t term,
                                    std::span<const std::uint32_t> index) const noexcept {
  std::uint64_t h = detail::mix64((std::uint64_t{kind} << 8 | variant) ^ (std::uint64_t{layer} << 16) ^
                                  (std::uint64_t{term} << 40));
  for (auto c : index) h = detail::hash_combine(h, c);
  return detail::hash_combine(h, index.size());
}

std::optional<token_index> token_table::find(token_kind kind, token_variant variant, std::uint32_t layer,
                                             std::span<const std::uint32_t> index, std::uint32_t term) const {
  const auto k = static_cast<std::uint8_t>(kind), v = static_cast<std::uint8_t>(variant);
  const auto id = by_key_.find(key_hash(k, v, layer, term, index), [&](std::uint32_t t) {
    const auto slot = locate(t).slot;
    if (kinds_[slot] != k || variants_[slot] != v || layers_[slot] != layer || terms_[slot] != term) return false;
    const std::span<const std::uint32_t> other(coords_.data() + coord_offsets_[slot],
                                               coords_.data() + coord_offsets_[slot + 1]);
    return other.size() == index.size() && std::equal(other.begin(), other.end(), index.begin());
  });
  if (id != detail::id_table::empty) return id;
  if (blocks_.empty()) return std::nullopt;
  return find_in_blocks(k, v, layer, index, term);
}

std::optional<token_index> token_table::find_in_blocks(std::uint8_t kind, std::uint8_t variant, std::uint32_t layer,
                                                       std::span<const std::uint32_t> index,
                                                       std::uint32_t term) const {
  for (const auto& b : blocks_) {
    // add_block keeps (kind, variant, layer, term, rank) unique among blocks: one candidate.
    if (b.kind == kind && b.variant == variant && b.layer == layer && b.term == term && b.shape.size() == index.size())
      return b.at(index);
  }
  return std::nullopt;
}

std::optional<token_index> token_table::token_block::at(std::span<const std::uint32_t> index) const {
  std::uint64_t off = 0;
  for (std::size_t d = 0; d < index.size(); ++d) {
    if (index[d] >= shape[d]) return std::nullopt;
    off += std::uint64_t{index[d]} * stride[d];
  }
  if (present.empty()) return static_cast<token_index>(first + off);
  const auto q = present.find(off);
  if (!q) return std::nullopt;
  return static_cast<token_index>(first + *q);
}

token_table::place token_table::locate_slow(token_index t) const {
  PROVNN_ASSERT(t < size());
  auto it = std::upper_bound(runs_.begin(), runs_.end(), t, [](token_index x, const run& r) { return x < r.first; });
  PROVNN_ASSERT(it != runs_.begin());
  --it;
  if (it->block >= 0) return {&blocks_[static_cast<std::size_t>(it->block)], 0};
  return {nullptr, it->base + (t - it->first)};
}

token_table::storage_position token_table::position(token_index t) const {
  PROVNN_ASSERT(t < size());
  if (blocks_.empty()) return {-1, t};
  auto it = std::upper_bound(runs_.begin(), runs_.end(), t, [](token_index x, const run& r) { return x < r.first; });
  PROVNN_ASSERT(it != runs_.begin());
  --it;
  if (it->block >= 0) return {it->block, t - it->first};
  return {-1, it->base + (t - it->first)};
}

token_table::token_block token_table::new_block(token_kind kind, token_variant variant, std::uint32_t layer,
                                                std::span<const std::uint32_t> shape,
                                                std::span<const std::uint8_t> order, std::uint32_t term,
                                                std::uint64_t& full) const {
  check_nameable(kind, variant, layer, term);
  const std::size_t rank = shape.size();
  std::vector<std::uint8_t> ord(order.begin(), order.end());
  if (ord.empty())
    for (std::size_t d = 0; d < rank; ++d) ord.push_back(static_cast<std::uint8_t>(d));
  {
    std::vector<std::uint8_t> seen(rank, 0);
    bool ok = ord.size() == rank;
    for (auto d : ord) ok = ok && d < rank && !seen[d]++;
    if (!ok) throw error(fmt::format("token block: order has {} entries, not a permutation of the {} axes", ord.size(), rank));
  }
  full = 1;
  for (auto n : shape) {
    full *= n;
    if (full > 0xFFFFFFFEull)  // also keeps the 64-bit product from wrapping
      throw limit_error(fmt::format("token block: a shape of more than 2^32-2 coordinates ({} axes)", shape.size()));
  }
  token_block b;
  b.kind = static_cast<std::uint8_t>(kind);
  b.variant = static_cast<std::uint8_t>(variant);
  b.layer = layer;
  b.term = term;
  b.shape.assign(shape.begin(), shape.end());
  b.order = std::move(ord);
  b.stride.assign(rank, 0);
  std::uint64_t stride = 1;
  for (std::size_t i = rank; i-- > 0;) {
    b.stride[b.order[i]] = static_cast<std::uint32_t>(stride);
    stride *= shape[b.order[i]];
  }
  return b;
}

token_index token_table::commit_block(token_block&& b, std::uint64_t full, std::span<const double> values) {
  const std::uint64_t count = b.present.empty() ? full : b.present.size();
  if (size() + count >= 0xFFFFFFFEull) throw limit_error("token table: more than 2^32-2 tokens; split the circuit");
  if (!values.empty() && values.size() != count)
    throw error(fmt::format("token block: {} values for its {} tokens", values.size(), count));
  const std::size_t rank = b.shape.size();
  // No token of the block may exist already (names stay unique): no single and no block with
  // the same kind, variant, layer, term and rank. O(singles) once per block.
  for (const auto& o : blocks_)
    if (o.kind == b.kind && o.variant == b.variant && o.layer == b.layer && o.term == b.term && o.shape.size() == rank)
      throw error(fmt::format("token block: tokens {}{}[…] exist already as a block",
                              to_string(static_cast<token_kind>(b.kind)), b.layer));
  for (std::size_t slot = 0; slot < kinds_.size(); ++slot)
    if (kinds_[slot] == b.kind && variants_[slot] == b.variant && layers_[slot] == b.layer && terms_[slot] == b.term &&
        coord_offsets_[slot + 1] - coord_offsets_[slot] == rank)
      throw error(fmt::format("token block: a token of kind '{}', variant '{}', layer {} with {} coordinates exists "
                              "already",
                              to_string(static_cast<token_kind>(b.kind)),
                              to_string(static_cast<token_variant>(b.variant)), b.layer, rank));
  b.first = static_cast<token_index>(size());
  b.count = static_cast<std::uint32_t>(count);
  if (runs_.empty()) runs_.push_back({0, 0, -1});  // the singles so far (possibly none)
  runs_.push_back({b.first, 0, static_cast<std::int32_t>(blocks_.size())});
  blocks_.push_back(std::move(b));
  // Room for the block plus a little for the singles that follow (units, normalisers), and at
  // least half the capacity again: a builder adds several blocks per stage, and exact room
  // copied the whole table at each (a third of vgg-small's build). Not resize()'s doubling:
  // a block may be most of the table. shrink_to_fit() trims what is left over.
  const std::size_t need = values_.size() + count;
  if (need > values_.capacity())
    values_.reserve(std::max(need + std::max<std::size_t>(1024, need / 16), values_.capacity() + values_.capacity() / 2));
  if (values.empty())
    values_.append(count, 0.0);
  else
    values_.append(values);
  return blocks_.back().first;
}

token_index token_table::add_block(token_kind kind, token_variant variant, std::uint32_t layer,
                                   std::span<const std::uint32_t> shape, std::span<const std::uint8_t> order,
                                   std::uint32_t term, std::span<const std::uint32_t> present,
                                   std::span<const double> values) {
  std::uint64_t full = 0;
  token_block b = new_block(kind, variant, layer, shape, order, term, full);
  for (std::size_t i = 0; i < present.size(); ++i)
    if (present[i] >= full || (i > 0 && present[i] <= present[i - 1]))
      throw error(fmt::format("token block: present offset {} at position {} is out of range (the shape holds {}) or "
                              "not increasing",
                              present[i], i, full));
  b.present.assign(present, full);
  return commit_block(std::move(b), full, values);
}

token_index token_table::add_block_bits(token_kind kind, token_variant variant, std::uint32_t layer,
                                        std::span<const std::uint32_t> shape, std::span<const std::uint8_t> order,
                                        std::uint32_t term, std::span<const std::uint64_t> present_words,
                                        std::span<const double> values) {
  std::uint64_t full = 0;
  token_block b = new_block(kind, variant, layer, shape, order, term, full);
  const std::uint64_t words = (full + 63) / 64;
  if (present_words.size() != words)
    throw error(fmt::format("token block: {} presence words for a shape of {} coordinates ({} expected)",
                            present_words.size(), full, words));
  if (full % 64 && (present_words.back() >> (full % 64)) != 0)
    throw error(fmt::format("token block: a presence bit at or past offset {}, the shape's size", full));
  b.present.assign_words(present_words, full);
  if (b.present.empty()) throw error("token block: no presence bit set (a sparse block holds at least one token)");
  return commit_block(std::move(b), full, values);
}

std::optional<token_index> token_table::block_token(token_index first, std::span<const std::uint32_t> index) const {
  auto it = std::lower_bound(blocks_.begin(), blocks_.end(), first,
                             [](const token_block& b, token_index x) { return b.first < x; });
  PROVNN_ASSERT(it != blocks_.end() && it->first == first && index.size() == it->shape.size());
  return it->at(index);
}

std::span<const std::uint32_t> token_table::index(token_index t, std::vector<std::uint32_t>& buffer) const {
  const auto s = locate(t);
  if (!s.block) return {coords_.data() + coord_offsets_[s.slot], coords_.data() + coord_offsets_[s.slot + 1]};
  const auto& b = *s.block;
  const std::uint64_t off = b.offset_of(t);
  buffer.resize(b.shape.size());
  for (std::size_t d = 0; d < b.shape.size(); ++d) buffer[d] = (off / b.stride[d]) % b.shape[d];
  return buffer;
}

token_index token_table::intern(token_kind kind, token_variant variant, std::uint32_t layer,
                                std::span<const std::uint32_t> index, std::uint32_t term) {
  if (auto t = find(kind, variant, layer, index, term)) return *t;
  check_nameable(kind, variant, layer, term);
  if (size() >= 0xFFFFFFFEu) throw limit_error("token table: more than 2^32-2 tokens; split the circuit");
  const auto t = static_cast<token_index>(size());
  const auto slot = static_cast<std::uint32_t>(kinds_.size());
  if (!runs_.empty() && runs_.back().block >= 0) runs_.push_back({t, slot, -1});
  kinds_.push_back(static_cast<std::uint8_t>(kind));
  variants_.push_back(static_cast<std::uint8_t>(variant));
  layers_.push_back(layer);
  terms_.push_back(term);
  for (auto x : index) coords_.push_back(x);
  coord_offsets_.push_back(static_cast<std::uint32_t>(coords_.size()));
  values_.push_back(0.0);
  by_key_.insert(key_hash(static_cast<std::uint8_t>(kind), static_cast<std::uint8_t>(variant), layer, term, index), t);
  return t;
}

void token_table::append_name(token_index t, std::string& out) const {
  const auto k = kind(t);
  const auto v = variant(t);
  out += prefix(k, v);
  if (has_layer(k)) fmt::format_to(std::back_inserter(out), "{}", layer(t));
  out += suffixes[static_cast<std::uint8_t>(v)];
  out += '[';
  bool first = true;
  std::vector<std::uint32_t> buf;
  for (auto c : index(t, buf)) {
    if (!first) out += ',';
    first = false;
    fmt::format_to(std::back_inserter(out), "{}", c);
  }
  out += ']';
  if (k == token_kind::normaliser) fmt::format_to(std::back_inserter(out), "#{}", term(t));
}

std::string token_table::name(token_index t) const {
  std::string s;
  append_name(t, s);
  return s;
}

std::optional<token_index> token_table::find(std::string_view s) const {
  if (s.empty()) return std::nullopt;
  token_kind kind;
  token_variant variant = token_variant::plain;
  switch (s[0]) {
    case 'x': kind = token_kind::input; break;
    case 'l': kind = token_kind::input, variant = token_variant::low; break;
    case 'h': kind = token_kind::input, variant = token_variant::high; break;
    case 'a': kind = token_kind::activation; break;
    case 'W': kind = token_kind::parameter; break;
    case 'b': kind = token_kind::bias; break;
    case 'n': kind = token_kind::normaliser; break;
    case 'r': kind = token_kind::target; break;
    case 'c': kind = token_kind::constant; break;
    default: return std::nullopt;
  }
  std::size_t pos = 1;
  std::uint32_t layer = 0, term = 0;
  if (has_layer(kind) && !parse_u32(s, pos, layer)) return std::nullopt;
  if (variant == token_variant::plain) {
    const auto bracket = s.find('[', pos);
    if (bracket == std::string_view::npos) return std::nullopt;
    const auto suffix = s.substr(pos, bracket - pos);
    bool found = false;
    for (std::uint8_t i = 0; i < token_variant_count; ++i)
      if (i != static_cast<std::uint8_t>(token_variant::low) && i != static_cast<std::uint8_t>(token_variant::high) &&
          suffixes[i] == suffix) {
        variant = static_cast<token_variant>(i);
        found = true;
        break;
      }
    if (!found) return std::nullopt;
    pos = bracket;
  }
  if (pos >= s.size() || s[pos] != '[') return std::nullopt;
  ++pos;
  std::vector<std::uint32_t> index;
  if (pos < s.size() && s[pos] == ']') {
    ++pos;
  } else {
    for (;;) {
      std::uint32_t c;
      if (!parse_u32(s, pos, c)) return std::nullopt;
      index.push_back(c);
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == ']') {
        ++pos;
        break;
      }
      return std::nullopt;
    }
  }
  if (kind == token_kind::normaliser) {
    if (pos >= s.size() || s[pos] != '#') return std::nullopt;
    ++pos;
    if (!parse_u32(s, pos, term)) return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  return find(kind, variant, layer, index, term);
}

token_index token_table::at(std::string_view name) const {
  if (auto t = find(name)) return *t;
  throw error(fmt::format("token '{}' does not exist in this circuit (names look like x[0,3,4], W1[3,4], "
                          "b1[3], a2[7], n1[3]#0, r[7]; use a glob pattern such as 'W1[3,*]' to list candidates)",
                          name));
}

std::vector<token_index> token_table::match(std::string_view pattern) const {
  std::vector<token_index> out;
  std::string buf;
  for (token_index t = 0; t < size(); ++t) {
    buf.clear();
    append_name(t, buf);
    if (glob_match(pattern, buf)) out.push_back(t);
  }
  return out;
}

std::size_t token_table::bytes() const noexcept {
  std::size_t b = kinds_.capacity() + variants_.capacity() + 4 * (layers_.capacity() + terms_.capacity()) +
                  4 * (coord_offsets_.capacity() + coords_.capacity()) + 8 * values_.capacity() + by_key_.bytes() +
                  sizeof(run) * runs_.capacity() + sizeof(token_block) * blocks_.capacity();
  for (const auto& x : blocks_) b += 9 * x.shape.capacity() + x.present.bytes();
  return b;
}

std::size_t token_table::bytes_for(std::size_t tokens, std::size_t coords) noexcept {
  return tokens * (1 + 1 + 4 + 4 + 4 + 8) + 4 + 4 * coords + detail::id_table::bytes_for(tokens);
}

namespace {
template <class V>
void shrink_if_slack(V& v) {
  if (v.capacity() - v.size() > v.size() / 8) v.shrink_to_fit();
}
}  // namespace

void token_table::shrink_to_fit() {
  shrink_if_slack(kinds_);
  shrink_if_slack(variants_);
  shrink_if_slack(layers_);
  shrink_if_slack(terms_);
  shrink_if_slack(coord_offsets_);
  shrink_if_slack(coords_);
  values_.shrink_to_fit();  // in place (detail::pod_buffer): no slack worth keeping
  by_key_.shrink_to_fit();
}

void token_table::reserve(std::size_t tokens, std::size_t coords) {
  // `tokens` counts every token; block tokens need room in values_ only.
  const std::size_t in_blocks = size() - kinds_.size();
  const std::size_t singles = tokens > in_blocks ? tokens - in_blocks : 0;
  kinds_.reserve(singles);
  variants_.reserve(singles);
  layers_.reserve(singles);
  terms_.reserve(singles);
  coord_offsets_.reserve(singles + 1);
  coords_.reserve(coords);
  values_.reserve(tokens);
  by_key_.reserve(singles);
}

}  // namespace provnn
