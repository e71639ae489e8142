#include "circuits/file_format.hpp"

#include <fmt/format.h>

#include <array>
#include <bit>
#include <optional>
#include <cstring>
#include <fstream>
#include <system_error>
#include <type_traits>
#include <unordered_set>

#include <zlib.h>

#include "common/atomic_file.hpp"
#include "common/error.hpp"

namespace provnn {

namespace detail {

// Friend of circuit: fills its arrays from a validated file and rebuilds the indexes.
struct circuit_access {
  static void set_gates(circuit& c, std::vector<std::uint8_t> kinds, std::vector<std::uint32_t> offsets,
                        std::vector<gate_id> children, std::vector<gate_id> edge_gates,
                        std::vector<edge_context> contexts) {
    c.kinds_ = std::move(kinds);
    c.offsets_ = std::move(offsets);
    c.children_ = std::move(children);
    c.edge_gates_ = std::move(edge_gates);
    c.edge_contexts_ = std::move(contexts);
    c.forget_token_gates();
    c.by_structure_.clear();
    std::size_t e = 0, sc = 0;
    for (std::uint32_t g = 0; g < c.kinds_.size(); ++g) {
      const auto k = static_cast<gate_kind>(c.kinds_[g]);
      const bool is_edge = e < c.edge_gates_.size() && to_index(c.edge_gates_[e]) == g;
      if (is_edge) ++e;
      const bool is_scale = sc < c.scale_gates_.size() && to_index(c.scale_gates_[sc]) == g;
      if (is_scale) ++sc;
      if (k == gate_kind::token) {
        c.token_gate_slot(static_cast<token_index>(to_index(c.children_[c.offsets_[g]]))) = g;
        ++c.token_gates_;
      } else if ((k == gate_kind::plus || k == gate_kind::times) && !is_edge && !is_scale) {
        // Gates built with sharing off may repeat: the first one is found, as when building.
        std::span<const gate_id> ch(c.children_.data() + c.offsets_[g], c.children_.data() + c.offsets_[g + 1]);
        const auto h = c.gate_hash(c.kinds_[g], ch);
        const auto kind = c.kinds_[g];
        const auto found = c.by_structure_.find(h, [&](std::uint32_t o) {
          const auto n = c.offsets_[o + 1] - c.offsets_[o];
          return c.kinds_[o] == kind && n == ch.size() &&
                 std::memcmp(c.children_.data() + c.offsets_[o], ch.data(), n * sizeof(gate_id)) == 0;
        });
        if (found == id_table::empty) c.by_structure_.insert(h, g);
      }
    }
    // (after set_fused, which came first and named the fused gates)
    c.fused_same_.resize(c.fused_gates_.size());
    for (std::size_t i = 0; i < c.fused_gates_.size(); ++i) c.fused_same_[i] = c.same_children_as_previous(i);
  }
  // One structured gate's record (the gate exists already; the reader validated the record).
  static void add_structured(circuit& c, gate_id g, std::uint32_t stage, std::uint32_t lower) {
    c.structured_gates_.push_back(g);
    c.structured_stage_.push_back(stage);
    c.structured_lower_.push_back(lower);
  }
  // firsts: per gate a run's first token, or no_token for a listed gate (version 2 files
  // list every gate; the circuit's own rule decides how each list is kept: run, 16-bit
  // offsets or tokens); gate_offsets: the gates' child offsets (a run's length is its gate's).
  static void set_fused(circuit& c, std::vector<gate_id> gates, std::vector<fused_context> contexts,
                        std::vector<token_index> firsts, std::vector<std::uint32_t> param_offsets,
                        std::vector<token_index> params, const std::vector<std::uint32_t>& gate_offsets,
                        std::vector<gate_id> scale_gates, std::vector<std::uint32_t> scale_units) {
    c.fused_param_first_.clear();
    c.fused_params_.clear();
    c.fused_param_offsets_.assign(1, 0);
    c.fused_deltas_.clear();
    c.fused_delta_offsets_.assign(1, 0);
    c.fused_edges_ = 0;
    c.fused_param_first_.reserve(gates.size());
    c.fused_param_offsets_.reserve(gates.size() + 1);
    c.fused_delta_offsets_.reserve(gates.size() + 1);
    std::vector<token_index> run;
    for (std::size_t i = 0; i < gates.size(); ++i) {
      std::span<const token_index> ps(params.data() + param_offsets[i], params.data() + param_offsets[i + 1]);
      if (firsts[i] != no_token) {  // a run already (version 3): its length is the gate's
        const auto g = to_index(gates[i]);
        run.resize(gate_offsets[g + 1] - gate_offsets[g] - 1);
        for (std::size_t k = 0; k < run.size(); ++k) run[k] = static_cast<token_index>(firsts[i] + k);
        ps = run;
      }
      c.store_fused_parameters(ps, ps.size(), circuit::scan_parameters(ps), false);
    }
    c.fused_params_.shrink_to_fit();
    c.fused_deltas_.shrink_to_fit();
    c.fused_gates_ = std::move(gates);
    c.fused_contexts_ = std::move(contexts);
    c.scale_gates_ = std::move(scale_gates);
    c.scale_units_ = std::move(scale_units);
  }
};

}  // namespace detail

namespace {

constexpr std::array<unsigned char, 8> magic = {0x89, 'P', 'V', 'C', 0x0D, 0x0A, 0x1A, 0x0A};
// Version 3 fused records: a first token of 0xFFFFFFFE announces a base token and 16-bit
// offsets (no token has that index: tables hold at most 2^32 − 2).
constexpr std::uint32_t offsets_marker = 0xFFFFFFFEu;
constexpr std::size_t section_count = 9;  // version 4; version 1 has the first 7, versions 2 and 3 the first 8
constexpr std::size_t sections_of(std::uint32_t version) { return version == 1 ? 7 : version < 4 ? 8 : 9; }
constexpr std::size_t header_size_of(std::size_t sections) { return 24 + 8 * sections; }
constexpr std::array<const char*, section_count> section_names = {
    "tokens", "coords", "values", "gates", "edges", "roots", "metadata", "fused", "structured"};

// CRC-32 (ISO-HDLC, the polynomial of zlib, PNG and Boost's crc_32_type) by zlib, whose
// word-at-a-time implementation is several times faster than a byte-wise table: the
// checksum was 13 % of a build + save + load profile (docs/performance.md).
std::uint32_t crc32_of(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      ::crc32_z(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<z_size_t>(bytes.size())));
}

// ---- writing -------------------------------------------------------------------------------
struct writer {
  std::string out;
  void u8(std::uint8_t v) { out.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v & 0xFF));
    u8(static_cast<std::uint8_t>(v >> 8));
  }
  void u32(std::uint32_t v) {
    const char b[4] = {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF),
                       static_cast<char>((v >> 16) & 0xFF), static_cast<char>(v >> 24)};
    out.append(b, 4);
  }
  /// n values, each as its little-endian bytes, at once (a byte copy on a little-endian
  /// machine): the child array of a large circuit was 4 push_backs per id. Doubles go as
  /// f64() writes them, 16- and 32-bit values as u16() and u32().
  template <class T>
  void array(const T* p, std::size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (n == 0) return;  // (p may be null then)
    if constexpr (std::endian::native == std::endian::little) {
      out.append(reinterpret_cast<const char*>(p), sizeof(T) * n);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const auto bytes = std::bit_cast<std::array<char, sizeof(T)>>(p[i]);
        out.append(bytes.rbegin(), bytes.rend());
      }
    }
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void f64(double d) {
    std::uint64_t v;
    std::memcpy(&v, &d, 8);
    u64(v);
  }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out.append(s);
  }
};

// ---- reading -------------------------------------------------------------------------------
class reader {
 public:
  reader(std::string_view bytes, std::string_view source, const char* section)
      : b_(bytes), source_(source), section_(section) {}
  [[noreturn]] void fail(const std::string& what) const {
    throw parse_error(fmt::format("{}: damaged circuit file: section '{}' at byte {}: {}", source_, section_, pos_, what));
  }
  void need(std::uint64_t n) const {
    if (n > b_.size() - pos_) fail(fmt::format("needs {} more bytes, the section has {}", n, b_.size() - pos_));
  }
  std::uint8_t u8() {
    need(1);
    return static_cast<std::uint8_t>(b_[pos_++]);
  }
  std::uint16_t u16() {
    need(2);
    const auto v = static_cast<std::uint16_t>(static_cast<std::uint8_t>(b_[pos_]) |
                                              (static_cast<std::uint8_t>(b_[pos_ + 1]) << 8));
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    need(4);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<std::uint8_t>(b_[pos_ + i])} << (8 * i);
    pos_ += 4;
    return v;
  }
  /// n little-endian u32 into out[0..n) (one bounds check, a byte copy on a little-endian machine).
  template <class T>
  void u32s(T* out, std::size_t n) {
    static_assert(sizeof(T) == 4 && std::is_trivially_copyable_v<T>);
    need(4 * static_cast<std::uint64_t>(n));
    if (n == 0) return;  // (out may be null then, which memcpy does not allow even for 0 bytes)
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(static_cast<void*>(out), b_.data() + pos_, 4 * n);
      pos_ += 4 * n;
    } else {
      for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<T>(u32());
    }
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<std::uint8_t>(b_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return v;
  }
  double f64() {
    const auto v = u64();
    double d;
    std::memcpy(&d, &v, 8);
    return d;
  }
  std::string str() {
    const auto n = u32();
    need(n);
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  /// A record count, checked against the bytes left (each record at least `min_record` bytes)
  /// before anything is allocated for it.
  std::uint64_t count(std::uint64_t min_record) {
    const auto n = u64();
    if (min_record > 0 && n > (b_.size() - pos_) / min_record)
      fail(fmt::format("claims {} records of at least {} bytes, only {} bytes are left", n, min_record,
                       b_.size() - pos_));
    return n;
  }
  void skip_padding(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      if (u8() != 0) fail("non-zero padding");
  }
  void expect_end() const {
    if (pos_ != b_.size()) fail(fmt::format("{} unexpected bytes at the end of the section", b_.size() - pos_));
  }

 private:
  std::string_view b_;
  std::string_view source_;
  const char* section_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string serialize_circuit(const circuit& c) {
  const auto& tt = c.tokens();
  std::array<writer, section_count> s;
  // tokens, coords, values
  // Version 2 keeps token blocks as block records (section 8), their tokens as values only.
  const bool v2 = !c.fused_gates().empty() || !c.scale_gates().empty() || tt.block_count() != 0;
  std::size_t singles = tt.size();
  for (std::size_t b = 0; b < tt.block_count(); ++b) singles -= tt.block_at(b).count;
  s[0].u64(singles);
  std::vector<std::uint32_t> coords;
  s[2].array(tt.values().data(), tt.values().size());
  // The single tokens: the gaps between the blocks, which lie in token order (a per-token
  // lookup of its block was a binary search each).
  std::size_t next_block = 0;
  for (token_index t = 0;; ++t) {
    while (next_block < tt.block_count() && t == tt.block_at(next_block).first) t += tt.block_at(next_block++).count;
    if (t >= tt.size()) break;
    const auto index = tt.index(t, coords);
    s[0].u8(static_cast<std::uint8_t>(tt.kind(t)));
    s[0].u8(static_cast<std::uint8_t>(tt.variant(t)));
    s[0].u8(0);
    s[0].u8(0);
    s[0].u32(tt.layer(t));
    s[0].u32(tt.term(t));
    s[0].u32(static_cast<std::uint32_t>(index.size()));
    for (auto x : index) s[1].u32(x);
  }
  // gates
  const auto kinds = c.raw_kinds();
  const auto offsets = c.raw_offsets();
  const auto children = c.raw_children();
  s[3].out.reserve(8 + kinds.size() + 3 + 4 * (kinds.size() + children.size()));
  s[3].u64(kinds.size());
  s[3].out.append(reinterpret_cast<const char*>(kinds.data()), kinds.size());
  while (s[3].out.size() % 4 != 0) s[3].u8(0);
  for (std::size_t g = 0; g < kinds.size(); ++g) s[3].u32(offsets[g + 1] - offsets[g]);
  s[3].array(children.data(), children.size());
  // edges
  s[4].u64(c.edge_gates().size());
  for (std::size_t i = 0; i < c.edge_gates().size(); ++i) {
    const auto& e = c.edge_contexts()[i];
    s[4].u32(to_index(c.edge_gates()[i]));
    s[4].u32(e.layer);
    s[4].u32(e.lower);
    s[4].u32(e.upper);
    s[4].u32(e.term);
    s[4].u32(e.parameter);
  }
  // roots
  s[5].u64(c.roots().size());
  for (const auto& r : c.roots()) {
    s[5].u32(to_index(r.gate));
    s[5].u8(static_cast<std::uint8_t>(r.kind));
    s[5].u8(0), s[5].u8(0), s[5].u8(0);
    s[5].u32(r.layer);
    s[5].u32(r.index);
    s[5].u32(r.target);
    s[5].str(r.name);
  }
  // metadata
  s[6].u64(c.metadata().size());
  for (const auto& [k, v] : c.metadata()) {
    s[6].str(k);
    s[6].str(v);
  }
  // fused (versions 2 to 4: plain circuits stay version 1; without structured gates, 3)
  const bool v4 = !c.structured_gates().empty() || !c.conv_stages().empty();
  const std::uint32_t version = v4 ? 4 : v2 ? 3 : 1;
  if (version >= 2) {
    s[7].u64(tt.block_count());
    for (std::size_t i = 0; i < tt.block_count(); ++i) {
      const auto b = tt.block_at(i);
      s[7].u32(b.first);
      s[7].u32(b.count);
      s[7].u8(static_cast<std::uint8_t>(b.kind));
      s[7].u8(static_cast<std::uint8_t>(b.variant));
      s[7].u8(static_cast<std::uint8_t>(b.shape.size()));
      s[7].u8(b.present.empty() ? 0 : b.present.is_bitmap() ? 2 : 1);  // how the held offsets follow
      s[7].u32(b.layer);
      s[7].u32(b.term);
      for (auto x : b.shape) s[7].u32(x);
      for (auto x : b.order) s[7].u8(x);
      while (s[7].out.size() % 4 != 0) s[7].u8(0);
      if (b.present.is_bitmap())
        for (auto w : b.present.words()) s[7].u64(w);
      else
        b.present.for_each([&](std::uint64_t x) { s[7].u32(static_cast<std::uint32_t>(x)); });
    }
    s[7].u64(c.fused_gates().size());
    for (std::size_t i = 0; i < c.fused_gates().size(); ++i) {
      const auto& f = c.fused_contexts()[i];
      s[7].u32(to_index(c.fused_gates()[i]));
      s[7].u32(f.layer);
      s[7].u32(f.lower);
      s[7].u32(f.term);
      const auto ps = c.fused_parameters(i);
      if (ps.is_run()) {
        s[7].u32(ps.first());
      } else if (ps.is_offsets()) {
        s[7].u32(offsets_marker);
        s[7].u32(ps.base());
        // The stored offsets as they are (ps lists them as tokens, base + offset).
        s[7].array(c.raw_fused_parameter_deltas().data() + c.raw_fused_delta_offsets()[i], ps.size());
        if (ps.size() % 2 != 0) s[7].u16(0);
      } else {
        s[7].u32(no_token);
        for (auto t : ps) s[7].u32(t);
      }
    }
    s[7].u64(c.scale_gates().size());
    for (std::size_t i = 0; i < c.scale_gates().size(); ++i) {
      s[7].u32(to_index(c.scale_gates()[i]));
      s[7].u32(c.scale_units()[i]);
    }
  }
  // structured (version 4)
  if (version >= 4) {
    s[8].u64(c.conv_stages().size());
    for (const conv_stage& st : c.conv_stages()) {
      const conv_geometry& g = st.geometry;
      for (const std::uint32_t x : {st.layer, st.term, g.in_channels, g.in_h, g.in_w, g.out_channels, g.out_h, g.out_w,
                                    g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
                                    g.dilation_h, g.dilation_w, g.group, st.parameters})
        s[8].u32(x);
      for (std::size_t w = 0; w < st.present.size(); w += 64) {
        std::uint64_t word = 0;
        for (std::size_t b = 0; b < 64 && w + b < st.present.size(); ++b)
          word |= std::uint64_t{st.present[w + b] != 0} << b;
        s[8].u64(word);
      }
      s[8].array(reinterpret_cast<const std::uint32_t*>(st.scaled.data()), st.scaled.size());
    }
    s[8].u64(c.structured_gates().size());
    for (std::size_t i = 0; i < c.structured_gates().size(); ++i) {
      s[8].u32(to_index(c.structured_gates()[i]));
      s[8].u32(c.structured_stages()[i]);
      s[8].u32(c.structured_lowers()[i]);
    }
  }
  const std::size_t nsec = sections_of(version);

  writer h;
  std::size_t total = header_size_of(nsec) + 4;
  for (std::size_t i = 0; i < nsec; ++i) total += s[i].out.size();
  h.out.reserve(total);
  h.out.append(reinterpret_cast<const char*>(magic.data()), magic.size());
  h.u32(version);
  h.u32(0);
  h.u64(nsec);
  for (std::size_t i = 0; i < nsec; ++i) h.u64(s[i].out.size());
  for (std::size_t i = 0; i < nsec; ++i) h.out.append(s[i].out);
  h.u32(crc32_of(h.out));
  return std::move(h.out);
}

circuit deserialize_circuit(std::string_view bytes, std::string_view source) {
  auto fail = [&](const std::string& what) -> void {
    throw parse_error(fmt::format("{}: {}", source, what));
  };
  // Magic first: a foreign file deserves "not a circuit file", not a size complaint.
  if (bytes.size() < magic.size() || std::memcmp(bytes.data(), magic.data(), magic.size()) != 0)
    fail("not a provnn circuit file (the first bytes are not the .pvc magic number)");
  if (bytes.size() < 16)
    fail(fmt::format("truncated circuit file: {} bytes, the header alone needs {}", bytes.size(),
                     header_size_of(sections_of(1)) + 4));
  std::uint32_t version = 0;
  {
    reader v(bytes.substr(8, 4), source, "header");
    version = v.u32();
  }
  if (version > pvc_format_version)
    fail(fmt::format("circuit file format version {} is newer than this build of provnn reads (up to {}); "
                     "upgrade provnn or re-create the file with this version",
                     version, pvc_format_version));
  if (version == 0) fail("circuit file format version 0 does not exist: the file is damaged");
  const std::size_t nsec = sections_of(version);
  const std::size_t header_size = header_size_of(nsec);
  if (bytes.size() < header_size + 4)
    fail(fmt::format("truncated circuit file: {} bytes, the header alone needs {}", bytes.size(), header_size + 4));
  reader h(bytes.substr(0, header_size), source, "header");
  for (std::size_t i = 0; i < magic.size() + 4; ++i) h.u8();
  const auto flags = h.u32();
  if (flags != 0) fail(fmt::format("unknown flags {:#x} in the header (written by a newer provnn?)", flags));
  const auto nsections = h.u64();
  if (nsections != nsec)
    fail(fmt::format("the header lists {} sections, version {} has {}: the file is damaged", nsections, version,
                     nsec));
  std::array<std::uint64_t, section_count> sizes{};
  std::uint64_t sum = 0;
  const std::uint64_t room = bytes.size() - header_size - 4;
  for (std::size_t i = 0; i < nsec; ++i) {
    sizes[i] = h.u64();
    if (sizes[i] > room || sum + sizes[i] > room)
      fail(fmt::format("truncated or damaged circuit file: section '{}' claims {} bytes, only {} of {} are left",
                       section_names[i], sizes[i], room - std::min(sum, room), bytes.size()));
    sum += sizes[i];
  }
  if (sum != room)
    fail(fmt::format("damaged circuit file: the sections hold {} bytes but the file has room for {}", sum, room));
  const auto body = bytes.substr(0, bytes.size() - 4);
  reader tail(bytes.substr(bytes.size() - 4), source, "checksum");
  const auto stored = tail.u32();
  const auto computed = crc32_of(body);
  if (stored != computed)
    fail(fmt::format("damaged circuit file: checksum mismatch (stored {:08x}, computed {:08x}); the file was "
                     "corrupted or truncated — re-create it",
                     stored, computed));

  std::array<std::string_view, section_count> sec;
  std::size_t at = header_size;
  for (std::size_t i = 0; i < nsec; ++i) {
    sec[i] = bytes.substr(at, sizes[i]);
    at += sizes[i];
  }

  circuit c;
  auto& tt = c.tokens();
  // token blocks (version 2: at the start of section 8), read before the tokens they sit among
  struct block_record {
    std::uint32_t first, count;
    std::uint8_t kind, variant;
    std::uint32_t layer, term;
    std::vector<std::uint32_t> shape;
    std::vector<std::uint8_t> order;
    std::vector<std::uint32_t> present;
  };
  std::vector<block_record> blocks;
  std::optional<reader> rf;
  if (version >= 2) {
    rf.emplace(sec[7], source, "fused");
    const auto nb = rf->count(20);
    std::uint64_t in_blocks = 0;
    for (std::uint64_t i = 0; i < nb; ++i) {
      block_record b;
      b.first = rf->u32(), b.count = rf->u32();
      b.kind = rf->u8(), b.variant = rf->u8();
      const auto rank = rf->u8();
      const auto sparse = rf->u8();
      if (sparse > (version >= 3 ? 2 : 1))
        rf->fail(fmt::format("token block {} has an unknown sparse flag {} (version {})", i, sparse, version));
      b.layer = rf->u32(), b.term = rf->u32();
      std::uint64_t product = 1;
      for (std::uint8_t d = 0; d < rank; ++d) {
        b.shape.push_back(rf->u32());
        product *= b.shape.back();
        if (product > 0xFFFFFFFEull) rf->fail(fmt::format("token block {}: more tokens than 32-bit indices allow", i));
      }
      for (std::uint8_t d = 0; d < rank; ++d) b.order.push_back(rf->u8());
      rf->skip_padding((4 - rank % 4) % 4);
      // Every token, of a block or not, has its 8-byte value in section 3: checked here,
      // before anything is sized by a block's count (a bitmap's words bound it only by 64×).
      in_blocks += b.count;
      if (8 * in_blocks > sizes[2])
        rf->fail(fmt::format("token blocks up to block {} claim {} tokens, the values section holds {}", i,
                             in_blocks, sizes[2] / 8));
      if (sparse) {
        if (b.count > product)
          rf->fail(fmt::format("sparse token block {} claims {} tokens but its shape holds {}", i, b.count, product));
        if (b.count == 0)  // add_block would read an empty list as every coordinate (dense)
          rf->fail(fmt::format("sparse token block {} holds no tokens", i));
        if (sparse == 1) {
          rf->need(4 * std::uint64_t{b.count});  // before allocating what the count claims
          b.present.resize(b.count);
          for (auto& x : b.present) x = rf->u32();  // add_block checks range and order
        } else {
          const std::uint64_t words = (product + 63) / 64;
          rf->need(8 * words);
          b.present.reserve(b.count);
          for (std::uint64_t w = 0; w < words; ++w) {
            const std::uint64_t x = rf->u64();
            if (w + 1 == words && product % 64 != 0 && (x >> (product % 64)) != 0)
              rf->fail(fmt::format("token block {}: its bitmap holds offsets past its shape ({})", i, product));
            for (std::uint64_t y = x; y != 0; y &= y - 1) {
              if (b.present.size() == b.count)
                rf->fail(fmt::format("token block {}: its bitmap holds more than its {} tokens", i, b.count));
              b.present.push_back(static_cast<std::uint32_t>(w * 64 + static_cast<std::uint64_t>(std::countr_zero(y))));
            }
          }
          if (b.present.size() != b.count)
            rf->fail(fmt::format("token block {}: its bitmap holds {} offsets, the block claims {}", i,
                                 b.present.size(), b.count));
        }
      } else if (product != b.count) {
        rf->fail(fmt::format("token block {} claims {} tokens but its shape holds {}", i, b.count, product));
      }
      if (b.kind >= token_kind_count || b.variant >= token_variant_count)
        rf->fail(fmt::format("token block {} has unknown kind {} or variant {}", i, b.kind, b.variant));
      if (!blocks.empty() && std::uint64_t{blocks.back().first} + blocks.back().count > b.first)
        rf->fail(fmt::format("token block {} (first token {}) overlaps the block before it", i, b.first));
      blocks.push_back(std::move(b));
    }
  }
  // tokens + coords
  {
    reader r(sec[0], source, "tokens");
    reader rc(sec[1], source, "coords");
    const auto n = r.count(16);
    std::uint64_t total = n;
    for (const auto& b : blocks) total += b.count;
    if (total > 0xFFFFFFFEull) r.fail("more tokens than 32-bit indices allow");
    // The values section holds one f64 per token: checked before any block is allocated.
    if (sizes[2] != 8 * total)
      r.fail(fmt::format("{} single tokens and {} in blocks, but the values section holds {} bytes (8 per token)", n,
                         total - n, sizes[2]));
    tt.reserve(total, sizes[1] / 4);
    std::vector<std::uint32_t> coords;
    std::size_t next_block = 0;
    auto place_blocks = [&] {  // the blocks that start where the tokens so far end
      while (next_block < blocks.size() && blocks[next_block].first == tt.size()) {
        const auto& b = blocks[next_block];
        try {
          tt.add_block(static_cast<token_kind>(b.kind), static_cast<token_variant>(b.variant), b.layer, b.shape,
                       b.order, b.term, b.present);
        } catch (const error& e) {
          r.fail(fmt::format("token block {}: {}", next_block, e.what()));
        }
        ++next_block;
      }
    };
    for (std::uint64_t t = 0; t < n; ++t) {
      place_blocks();
      const auto kind = r.u8(), variant = r.u8();
      r.skip_padding(2);
      const auto layer = r.u32(), term = r.u32(), ncoords = r.u32();
      if (kind >= token_kind_count || variant >= token_variant_count)
        r.fail(fmt::format("token {} has unknown kind {} or variant {}", t, kind, variant));
      coords.clear();
      for (std::uint32_t i = 0; i < ncoords; ++i) coords.push_back(rc.u32());
      token_index got;
      try {
        got = tt.intern(static_cast<token_kind>(kind), static_cast<token_variant>(variant), layer, coords, term);
      } catch (const error& e) {
        r.fail(fmt::format("token {}: {}", t, e.what()));
      }
      if (got != tt.size() - 1) r.fail(fmt::format("single token {} repeats token {} ('{}')", t, got, tt.name(got)));
    }
    place_blocks();
    if (next_block != blocks.size())
      r.fail(fmt::format("token block {} starts at token {}, which is not where the tokens before it end",
                         next_block, blocks[next_block].first));
    r.expect_end();
    rc.expect_end();
  }
  // values
  {
    reader r(sec[2], source, "values");
    if (sizes[2] != 8 * tt.size())
      r.fail(fmt::format("{} bytes for {} tokens (8 per token expected)", sizes[2], tt.size()));
    for (token_index t = 0; t < tt.size(); ++t) tt.set_value(t, r.f64());
    r.expect_end();
  }
  // gates
  std::vector<std::uint8_t> kinds;
  std::vector<std::uint32_t> offsets;
  std::vector<gate_id> children;
  {
    reader r(sec[3], source, "gates");
    const auto n = r.count(5);  // a kind byte and a slot count at least
    if (n < 2) r.fail("fewer than the two constant gates");
    if (n > 0xFFFFFFFEull) r.fail("more gates than 32-bit ids allow");
    kinds.resize(n);
    for (auto& k : kinds) k = r.u8();
    r.skip_padding((4 - (n % 4)) % 4);
    offsets.resize(n + 1);
    offsets[0] = 0;
    std::uint64_t total = 0;
    for (std::uint64_t g = 0; g < n; ++g) {
      total += r.u32();
      if (total > sizes[3] / 4) r.fail(fmt::format("gate {}: child counts exceed the section", g));
      offsets[g + 1] = static_cast<std::uint32_t>(total);
    }
    children.resize(total);
    r.u32s(children.data(), children.size());
    r.expect_end();
    std::vector<std::uint8_t> token_seen(tt.size(), 0);
    for (std::uint32_t g = 0; g < n; ++g) {
      const auto slots = offsets[g + 1] - offsets[g];
      switch (kinds[g]) {
        case static_cast<std::uint8_t>(gate_kind::zero):
        case static_cast<std::uint8_t>(gate_kind::one):
          if (slots != 0) r.fail(fmt::format("constant gate {} has {} children", g, slots));
          break;
        case static_cast<std::uint8_t>(gate_kind::token): {
          if (slots != 1) r.fail(fmt::format("token gate {} has {} slots (1 expected)", g, slots));
          const auto t = to_index(children[offsets[g]]);
          if (t >= tt.size()) r.fail(fmt::format("token gate {} names token {}, there are {}", g, t, tt.size()));
          if (token_seen[t]++) r.fail(fmt::format("token {} ('{}') has two gates", t, tt.name(t)));
          break;
        }
        case static_cast<std::uint8_t>(gate_kind::structured):
          if (version < 4) r.fail(fmt::format("gate {} is structured, which version {} files cannot hold", g, version));
          if (slots != 1) r.fail(fmt::format("structured gate {} has {} children (φ alone expected)", g, slots));
          for (std::uint32_t i = offsets[g]; i < offsets[g + 1]; ++i)
            if (to_index(children[i]) >= g)
              r.fail(fmt::format("gate {} has child {}: children must come before their parents", g,
                                 to_index(children[i])));
          break;
        case static_cast<std::uint8_t>(gate_kind::fused):
          if (version < 2) r.fail(fmt::format("gate {} is fused, which version {} files cannot hold", g, version));
          if (slots < 2) r.fail(fmt::format("fused gate {} has {} children (φ and at least one edge expected)", g, slots));
          [[fallthrough]];
        case static_cast<std::uint8_t>(gate_kind::plus):
        case static_cast<std::uint8_t>(gate_kind::times):
          for (std::uint32_t i = offsets[g]; i < offsets[g + 1]; ++i)
            if (to_index(children[i]) >= g)
              r.fail(fmt::format("gate {} has child {}: children must come before their parents", g,
                                 to_index(children[i])));
          break;
        default:
          r.fail(fmt::format("gate {} has kind {}, unknown to this build (written by a newer provnn?)", g, kinds[g]));
      }
    }
    if (kinds[0] != static_cast<std::uint8_t>(gate_kind::zero) || kinds[1] != static_cast<std::uint8_t>(gate_kind::one))
      r.fail("gates 0 and 1 must be the constants zero and one");
  }
  // edges
  std::vector<gate_id> edge_gates;
  std::vector<edge_context> contexts;
  {
    reader r(sec[4], source, "edges");
    const auto n = r.count(24);
    edge_gates.reserve(n);
    contexts.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto g = r.u32();
      edge_context e;
      e.layer = r.u32(), e.lower = r.u32(), e.upper = r.u32(), e.term = r.u32(), e.parameter = r.u32();
      if (g >= kinds.size() || kinds[g] != static_cast<std::uint8_t>(gate_kind::times))
        r.fail(fmt::format("edge {} marks gate {}, which is not a ⊗ gate", i, g));
      if (!edge_gates.empty() && to_index(edge_gates.back()) >= g)
        r.fail(fmt::format("edge {} (gate {}) is out of order", i, g));
      if (e.parameter != no_token && e.parameter >= tt.size())
        r.fail(fmt::format("edge {} names parameter token {}, there are {}", i, e.parameter, tt.size()));
      edge_gates.push_back(gate_id{g});
      contexts.push_back(e);
    }
    r.expect_end();
  }
  // fused gates and scale gates (version 2)
  std::vector<gate_id> fused_gates, scale_gates;
  std::vector<fused_context> fused_contexts;
  std::vector<std::uint32_t> param_offsets{0}, scale_units;
  std::vector<token_index> params, param_firsts;
  {
    std::size_t fused_in_gates = 0, fused_edges = 0;
    for (std::size_t g = 0; g < kinds.size(); ++g)
      if (kinds[g] == static_cast<std::uint8_t>(gate_kind::fused)) {
        ++fused_in_gates;
        // (A damaged fused gate without its φ slot is refused below; it adds nothing here.)
        if (offsets[g + 1] > offsets[g]) fused_edges += offsets[g + 1] - offsets[g] - 1;
      }
    // Room for every edge's token at once, made when the first gate that lists its tokens
    // (not a run) is met (a fused gate has its φ and one child per edge; at most the child
    // count, checked against the file's size): growing by doubling copied and faulted in up
    // to twice as much.
    const auto reserve_params = [&] {
      if (params.capacity() < fused_edges) params.reserve(fused_edges);
    };
    if (version >= 2) {
      reader& r = *rf;  // after the token blocks
      const auto n = r.count(16);
      if (n != fused_in_gates)
        r.fail(fmt::format("{} fused records for {} fused gates", n, fused_in_gates));
      for (std::uint64_t i = 0; i < n; ++i) {
        const auto g = r.u32();
        fused_context f;
        f.layer = r.u32(), f.lower = r.u32(), f.term = r.u32();
        if (g >= kinds.size() || kinds[g] != static_cast<std::uint8_t>(gate_kind::fused))
          r.fail(fmt::format("fused record {} names gate {}, which is not a fused gate", i, g));
        if (!fused_gates.empty() && to_index(fused_gates.back()) >= g)
          r.fail(fmt::format("fused record {} (gate {}) is out of order", i, g));
        const auto np = offsets[g + 1] - offsets[g] - 1;
        if (version >= 3) {
          const auto first = r.u32();
          if (first == offsets_marker) {  // a base token, then 16-bit offsets from it
            const auto base = r.u32();
            r.need(2 * std::uint64_t{np});
            reserve_params();
            for (std::uint32_t p = 0; p < np; ++p) {
              const std::uint64_t t = std::uint64_t{base} + r.u16();
              if (t >= tt.size())
                r.fail(fmt::format("fused gate {} names parameter token {} (base {}), there are {}", g, t, base,
                                   tt.size()));
              params.push_back(static_cast<token_index>(t));
            }
            r.skip_padding(np % 2 == 0 ? 0 : 2);
            fused_gates.push_back(gate_id{g});
            fused_contexts.push_back(f);
            param_firsts.push_back(no_token);
            param_offsets.push_back(static_cast<std::uint32_t>(params.size()));
            continue;
          }
          if (first != no_token) {  // a run: first, first + 1, …
            if (std::uint64_t{first} + np > tt.size())
              r.fail(fmt::format("fused gate {} names parameter tokens {}…{}, there are {}", g, first,
                                 std::uint64_t{first} + np - 1, tt.size()));
            fused_gates.push_back(gate_id{g});
            fused_contexts.push_back(f);
            param_firsts.push_back(first);
            param_offsets.push_back(static_cast<std::uint32_t>(params.size()));
            continue;
          }
        }
        reserve_params();
        for (std::uint32_t p = 0; p < np; ++p) {
          const auto t = r.u32();
          if (t >= tt.size()) r.fail(fmt::format("fused gate {} names parameter token {}, there are {}", g, t, tt.size()));
          params.push_back(t);
        }
        fused_gates.push_back(gate_id{g});
        fused_contexts.push_back(f);
        param_firsts.push_back(no_token);
        param_offsets.push_back(static_cast<std::uint32_t>(params.size()));
      }
      const auto ns = r.count(8);
      for (std::uint64_t i = 0; i < ns; ++i) {
        const auto g = r.u32(), unit = r.u32();
        if (g >= kinds.size() || kinds[g] != static_cast<std::uint8_t>(gate_kind::times) ||
            offsets[g + 1] - offsets[g] != 2)
          r.fail(fmt::format("scale record {} names gate {}, which is not a two-child ⊗ gate", i, g));
        if (!scale_gates.empty() && to_index(scale_gates.back()) >= g)
          r.fail(fmt::format("scale record {} (gate {}) is out of order", i, g));
        if (std::binary_search(edge_gates.begin(), edge_gates.end(), gate_id{g}))
          r.fail(fmt::format("scale record {} names gate {}, which is an edge gate", i, g));
        scale_gates.push_back(gate_id{g});
        scale_units.push_back(unit);
      }
      r.expect_end();
    }
  }
  detail::circuit_access::set_fused(c, std::move(fused_gates), std::move(fused_contexts), std::move(param_firsts),
                                    std::move(param_offsets), std::move(params), offsets, std::move(scale_gates),
                                    std::move(scale_units));
  std::size_t structured_in_gates = 0;
  for (const auto k : kinds) structured_in_gates += k == static_cast<std::uint8_t>(gate_kind::structured);
  detail::circuit_access::set_gates(c, std::move(kinds), std::move(offsets), std::move(children), std::move(edge_gates),
                                    std::move(contexts));
  // conv stages and structured gates (version 4)
  if (version >= 4) {
    reader r(sec[8], source, "structured");
    const auto ns = r.count(72);
    for (std::uint64_t i = 0; i < ns; ++i) {
      conv_stage st;
      conv_geometry& g = st.geometry;
      st.layer = r.u32(), st.term = r.u32();
      for (std::uint32_t* x : {&g.in_channels, &g.in_h, &g.in_w, &g.out_channels, &g.out_h, &g.out_w, &g.kernel_h,
                               &g.kernel_w, &g.stride_h, &g.stride_w, &g.pad_top, &g.pad_left, &g.dilation_h,
                               &g.dilation_w, &g.group})
        *x = r.u32();
      st.parameters = r.u32();
      // Sizes checked before anything is allocated by them (each product of u32s, bounded).
      const auto bounded = [&](std::initializer_list<std::uint64_t> xs, const char* what) {
        std::uint64_t p = 1;
        for (const auto x : xs) {
          p *= x;
          if (p > 0xFFFFFFFFull) r.fail(fmt::format("conv stage {}: more {} than 32-bit indices allow", i, what));
        }
        return p;
      };
      if (g.group == 0 || g.in_channels % g.group || g.out_channels % g.group)
        r.fail(fmt::format("conv stage {}: {} input and {} output channels are not divisible by {} groups", i,
                           g.in_channels, g.out_channels, g.group));
      const std::uint64_t weights = bounded({g.out_channels, g.in_channels / g.group, g.kernel_h, g.kernel_w}, "weights");
      const std::uint64_t outputs = bounded({g.out_channels, g.out_h, g.out_w}, "output units");
      bounded({g.in_channels, g.in_h, g.in_w}, "input units");
      const std::uint64_t words = (weights + 63) / 64;
      r.need(8 * words + 4 * outputs);
      st.present.resize(weights);
      for (std::uint64_t w = 0; w < words; ++w) {
        const std::uint64_t x = r.u64();
        if (w + 1 == words && weights % 64 != 0 && (x >> (weights % 64)) != 0)
          r.fail(fmt::format("conv stage {}: its presence bitmap holds weights past its {}", i, weights));
        for (std::uint64_t b = 0; b < 64 && w * 64 + b < weights; ++b) st.present[w * 64 + b] = (x >> b) & 1;
      }
      st.scaled.resize(outputs);
      r.u32s(reinterpret_cast<std::uint32_t*>(st.scaled.data()), st.scaled.size());
      try {
        c.add_conv_stage(std::move(st));
      } catch (const error& e) {
        r.fail(fmt::format("conv stage {}: {}", i, e.what()));
      }
    }
    const auto n = r.count(12);
    if (n != structured_in_gates) r.fail(fmt::format("{} structured records for {} structured gates", n, structured_in_gates));
    // A stage's scale gates must come before every structured gate that reads them.
    std::vector<std::uint32_t> last_scaled(c.conv_stages().size(), 0);
    for (std::size_t i = 0; i < c.conv_stages().size(); ++i)
      for (const gate_id x : c.conv_stages()[i].scaled) last_scaled[i] = std::max(last_scaled[i], to_index(x));
    std::uint32_t previous = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto g = r.u32(), stage = r.u32(), lower = r.u32();
      if (g >= c.size() || c.kind(gate_id{g}) != gate_kind::structured)
        r.fail(fmt::format("structured record {} names gate {}, which is not a structured gate", i, g));
      if (i > 0 && previous >= g) r.fail(fmt::format("structured record {} (gate {}) is out of order", i, g));
      previous = g;
      if (stage >= c.conv_stages().size())
        r.fail(fmt::format("structured gate {} names conv stage {}, there are {}", g, stage, c.conv_stages().size()));
      if (last_scaled[stage] >= g)
        r.fail(fmt::format("structured gate {} reads gate {} of conv stage {}: children must come before their parents",
                           g, last_scaled[stage], stage));
      if (lower >= c.conv_stages()[stage].geometry.inputs())
        r.fail(fmt::format("structured gate {} names lower unit {}, conv stage {} has {}", g, lower, stage,
                           c.conv_stages()[stage].geometry.inputs()));
      detail::circuit_access::add_structured(c, gate_id{g}, stage, lower);
    }
    r.expect_end();
  }
  // roots
  {
    reader r(sec[5], source, "roots");
    const auto n = r.count(24);
    std::unordered_set<std::string> names;
    for (std::uint64_t i = 0; i < n; ++i) {
      root rt;
      const auto g = r.u32();
      const auto kind = r.u8();
      r.skip_padding(3);
      rt.layer = r.u32(), rt.index = r.u32(), rt.target = r.u32();
      rt.name = r.str();
      if (g >= c.size()) r.fail(fmt::format("root {} ('{}') names gate {}, there are {}", i, rt.name, g, c.size()));
      if (kind >= root_kind_count) r.fail(fmt::format("root {} ('{}') has unknown kind {}", i, rt.name, kind));
      if (!names.insert(rt.name).second) r.fail(fmt::format("root name '{}' appears twice", rt.name));
      rt.gate = gate_id{g};
      rt.kind = static_cast<root_kind>(kind);
      c.add_root(std::move(rt));
    }
    r.expect_end();
  }
  // metadata
  {
    reader r(sec[6], source, "metadata");
    const auto n = r.count(8);
    for (std::uint64_t i = 0; i < n; ++i) {
      auto k = r.str();
      auto v = r.str();
      if (!c.metadata().emplace(k, std::move(v)).second) r.fail(fmt::format("metadata key '{}' appears twice", k));
    }
    r.expect_end();
  }
  return c;
}

void save_circuit(const circuit& c, const std::filesystem::path& path) {
  write_file_atomically(path, serialize_circuit(c));
}

circuit load_circuit(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw io_error(fmt::format("{}: cannot read the circuit file: {}", path.string(), ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(fmt::format("{}: cannot open the circuit file", path.string()));
  // The size comes from the file system, not from the file's content, so this allocation is
  // bounded by what is on disk.
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size)) || in.gcount() != static_cast<std::streamsize>(size))
    throw io_error(fmt::format("{}: reading the circuit file failed after {} of {} bytes", path.string(), in.gcount(), size));
  return deserialize_circuit(bytes, path.string());
}

}  // namespace provnn
