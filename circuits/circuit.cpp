#include "circuits/circuit.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <type_traits>

#include "common/error.hpp"

namespace provnn {
namespace {
constexpr std::string_view gate_kind_names[gate_kind_count] = {"zero", "one", "token", "plus", "times", "fused",
                                                                      "structured"};
constexpr std::string_view root_kind_names[root_kind_count] = {"feature", "bias", "other"};
}  // namespace

std::string_view to_string(gate_kind k) noexcept {
  const auto i = static_cast<std::uint8_t>(k);
  return i < gate_kind_count ? gate_kind_names[i] : "?";
}
std::string_view to_string(root_kind k) noexcept {
  const auto i = static_cast<std::uint8_t>(k);
  return i < root_kind_count ? root_kind_names[i] : "?";
}

circuit::circuit() {
  append(gate_kind::zero, {});
  append(gate_kind::one, {});
}

std::uint64_t circuit::gate_hash(std::uint8_t kind, std::span<const gate_id> children) const noexcept {
  std::uint64_t h = detail::mix64(0x51ed27ull + kind);
  for (auto c : children) h = detail::hash_combine(h, to_index(c));
  return detail::hash_combine(h, children.size());
}

static std::string format_bytes(std::size_t b) {
  if (b >= (std::size_t{1} << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (std::size_t{1} << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  if (b >= (std::size_t{1} << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(b) / (1 << 10));
  return fmt::format("{} bytes", b);
}

void circuit::set_limits(const circuit_limits& l) noexcept {
  limits_ = l;
  limits_.max_gates = std::min<std::size_t>(l.max_gates, 0xFFFFFFFEu);
}

bool circuit::fits_memory(std::size_t extra_bytes) const noexcept {
  return limits_.max_bytes == static_cast<std::size_t>(-1) ||
         bytes() + tokens_.bytes() + extra_bytes <= limits_.max_bytes;
}

void circuit::require_memory(std::size_t extra_peak, std::string_view what) const {
  if (fits_memory(extra_peak)) return;
  const std::size_t held = bytes() + tokens_.bytes();
  throw limit_error(fmt::format("circuit: {} would take the arena to {} ({} held now, {} gates), above the memory "
                                "limit max_memory = {}",
                                what, format_bytes(held + extra_peak), format_bytes(held), size(),
                                format_bytes(limits_.max_bytes)));
}

// Called only when an array of the arena is about to grow (rare): the new buffer is
// counted on top of everything held, since the old one lives until the copy is done.
void circuit::check_growth(std::size_t new_children) {
  std::size_t extra = 0;
  if (kinds_.size() == kinds_.capacity()) extra += std::max<std::size_t>(1, 2 * kinds_.capacity());
  if (offsets_.size() == offsets_.capacity()) extra += 4 * std::max<std::size_t>(1, 2 * offsets_.capacity());
  if (children_.size() + new_children > children_.capacity())
    extra += 4 * std::max(children_.size() + new_children, 2 * children_.capacity());
  require_memory(extra, "growing the gate arrays");
}

gate_id circuit::append(gate_kind kind, std::span<const gate_id> children, std::span<const gate_id> more) {
  if (size() >= limits_.max_gates) {
    if (limits_.max_gates == 0xFFFFFFFEu)
      throw limit_error("circuit: more than 2^32-2 gates (32-bit gate ids); build a smaller cone or split the input");
    throw limit_error(fmt::format("circuit: the gate limit max_gates = {} is reached", limits_.max_gates));
  }
  const std::less<const gate_id*> before;
  if (!more.empty() && !before(more.data(), children_.data()) && before(more.data(), children_.data() + children_.size())) {
    const std::vector<gate_id> copy(more.begin(), more.end());  // `more` lies in children_, which may move
    return append(kind, children, copy);
  }
  const std::size_t n = children.size() + more.size();
  if (children_.size() + n > 0xFFFFFFFFull) throw limit_error("circuit: more than 2^32-1 child references; split the input");
  if (kinds_.size() == kinds_.capacity() || offsets_.size() == offsets_.capacity() ||
      children_.size() + n > children_.capacity())
    check_growth(n);
  // One growth, the one check_growth() counted (a push_back then an insert could grow twice).
  if (children_.size() + n > children_.capacity())
    children_.reserve(std::max(children_.size() + n, 2 * children_.capacity()));
  const auto g = static_cast<gate_id>(size());
  kinds_.push_back(static_cast<std::uint8_t>(kind));
  for (auto ch : children) children_.push_back(ch);  // a few ids: cheaper than insert's memmove call
  children_.insert(children_.end(), more.begin(), more.end());  // (a fused gate's edges: many)
  offsets_.push_back(static_cast<std::uint32_t>(children_.size()));
  return g;
}

std::uint32_t& circuit::token_gate_slot(token_index t) {
  const auto pos = tokens_.position(t);
  std::vector<std::uint32_t>* v = &single_gate_;
  std::size_t want = tokens_.single_count();  // singles come in order: room for all made so far
  if (pos.block >= 0) {
    const auto b = static_cast<std::size_t>(pos.block);
    if (block_gate_.size() <= b) {
      require_memory(sizeof(std::vector<std::uint32_t>) * (b + 1), "growing the token-gate index");
      block_gate_.resize(b + 1);
    }
    v = &block_gate_[b];
    want = tokens_.block_at(b).count;
  }
  if (v->size() <= pos.at) {
    const std::size_t n = std::max<std::size_t>(want, std::size_t{pos.at} + 1);
    if (n > v->capacity()) {
      require_memory(4 * std::max(n, v->capacity() + v->capacity() / 2), "growing the token-gate index");
      v->reserve(std::max(n, v->capacity() + v->capacity() / 2));
    }
    v->resize(n, detail::id_table::empty);
  }
  return (*v)[pos.at];
}

void circuit::forget_token_gates() {
  single_gate_.clear();
  block_gate_.clear();
  token_gates_ = 0;
}

gate_id circuit::token(token_index t) {
  PROVNN_ASSERT(t < tokens_.size());
  auto* slot = &token_gate_slot(t);
  if (*slot != detail::id_table::empty) return static_cast<gate_id>(*slot);
  const gate_id tg{t};
  const auto g = append(gate_kind::token, std::span(&tg, 1));
  slot = &token_gate_slot(t);  // append() does not touch the index, but keep it obviously valid
  *slot = to_index(g);
  ++token_gates_;
  return g;
}

std::optional<gate_id> circuit::find_token_gate(token_index t) const {
  if (t >= tokens_.size()) return std::nullopt;
  const auto pos = tokens_.position(t);
  const std::vector<std::uint32_t>* v = &single_gate_;
  if (pos.block >= 0) {
    if (static_cast<std::size_t>(pos.block) >= block_gate_.size()) return std::nullopt;
    v = &block_gate_[static_cast<std::size_t>(pos.block)];
  }
  if (pos.at >= v->size() || (*v)[pos.at] == detail::id_table::empty) return std::nullopt;
  return static_cast<gate_id>((*v)[pos.at]);
}

gate_id circuit::intern(gate_kind kind, std::vector<gate_id>& cs) {
  std::sort(cs.begin(), cs.end());
  const auto k = static_cast<std::uint8_t>(kind);
  if (!sharing_) return append(kind, cs);
  const auto h = gate_hash(k, cs);
  const auto found = by_structure_.find(h, [&](std::uint32_t g) {
    if (kinds_[g] != k) return false;
    const auto n = offsets_[g + 1] - offsets_[g];
    return n == cs.size() && std::memcmp(children_.data() + offsets_[g], cs.data(), n * sizeof(gate_id)) == 0;
  });
  if (found != detail::id_table::empty) return static_cast<gate_id>(found);
  if (by_structure_.next_insert_grows())
    require_memory(2 * std::max<std::size_t>(by_structure_.bytes(), detail::id_table::bytes_for(0)),
                   "growing the structural-hashing table");
  const auto g = append(kind, cs);
  by_structure_.insert(h, to_index(g));
  return g;
}

gate_id circuit::plus(std::span<const gate_id> children) {
  scratch_.clear();
  for (auto c : children) {
    PROVNN_ASSERT(to_index(c) < size());
    if (c != zero_gate) scratch_.push_back(c);
  }
  if (scratch_.empty()) return zero_gate;
  if (scratch_.size() == 1) return scratch_[0];
  return intern(gate_kind::plus, scratch_);
}

gate_id circuit::times(std::span<const gate_id> children) {
  scratch_.clear();
  for (auto c : children) {
    PROVNN_ASSERT(to_index(c) < size());
    if (c == zero_gate) return zero_gate;
    if (c != one_gate) scratch_.push_back(c);
  }
  if (scratch_.empty()) return one_gate;
  if (scratch_.size() == 1) return scratch_[0];
  return intern(gate_kind::times, scratch_);
}

gate_id circuit::edge(std::span<const gate_id> factors, const edge_context& context) {
  for (auto c : factors) PROVNN_ASSERT(to_index(c) < size());
  if (edge_gates_.size() == edge_gates_.capacity())
    require_memory((4 + sizeof(edge_context)) * std::max<std::size_t>(1, 2 * edge_gates_.capacity()),
                   "growing the edge-gate arrays");
  const auto g = append(gate_kind::times, factors);
  edge_gates_.push_back(g);
  edge_contexts_.push_back(context);
  return g;
}

gate_id circuit::scale(gate_id relevance, gate_id normaliser, std::uint32_t upper) {
  PROVNN_ASSERT(to_index(relevance) < size() && to_index(normaliser) < size());
  if (scale_gates_.size() == scale_gates_.capacity())
    require_memory(8 * std::max<std::size_t>(1, 2 * scale_gates_.capacity()), "growing the scale-gate arrays");
  const gate_id ch[2] = {std::min(relevance, normaliser), std::max(relevance, normaliser)};
  const auto g = append(gate_kind::times, ch);
  scale_gates_.push_back(g);
  scale_units_.push_back(upper);
  return g;
}

gate_id circuit::fused(gate_id phi, std::span<const token_index> parameters, std::span<const gate_id> scaled,
                       const fused_context& context) {
  if (parameters.size() != scaled.size() || scaled.empty())
    throw error(fmt::format("circuit::fused: {} parameters for {} scaled children (equal and nonzero expected)",
                            parameters.size(), scaled.size()));
  return add_fused(phi, parameters, scan_parameters(parameters), scaled, context);  // (one pass for both uses)
}

gate_id circuit::fused_run(gate_id phi, token_index first, std::span<const gate_id> scaled,
                           const fused_context& context) {
  if (scaled.empty()) throw error("circuit::fused_run: no scaled children (at least one expected)");
  if (first >= tokens_.size() || scaled.size() - 1 > tokens_.size() - 1 - first)
    throw error(fmt::format("circuit::fused_run: parameter tokens {} … {} do not exist ({} tokens)", first,
                            std::uint64_t{first} + scaled.size() - 1, tokens_.size()));
  const auto last = static_cast<token_index>(first + (scaled.size() - 1));
  return add_fused(phi, std::span(&first, 1), parameter_scan{true, first, last}, scaled, context);
}

gate_id circuit::add_fused(gate_id phi, std::span<const token_index> ps, const parameter_scan& scan,
                           std::span<const gate_id> scaled, const fused_context& context) {
  PROVNN_ASSERT(to_index(phi) < size());
  if (scan.hi >= tokens_.size())
    throw error(fmt::format("circuit::fused: parameter token {} does not exist ({} tokens)", scan.hi, tokens_.size()));
  // The value F = φ ⊗ ⊕ ψ_i ⊗ S_i is defined for any earlier gates S_i; only expand_fused()
  // needs them to be scale gates, and checks it (a search per edge here would cost ~10 ns).
  // (as one max, which vectorises: an assertion per child branched per edge, 13 % of an MLP's build)
  std::uint32_t highest = 0;
  for (auto s : scaled) highest = std::max<std::uint32_t>(highest, to_index(s));
  PROVNN_ASSERT(highest < size());
  if (fused_gates_.size() == fused_gates_.capacity() || fused_param_first_.size() == fused_param_first_.capacity() ||
      fused_contexts_.size() == fused_contexts_.capacity() || fused_same_.size() == fused_same_.capacity())
    require_memory((4 + 4 + 4 + 1 + sizeof(fused_context)) * std::max<std::size_t>(1, 2 * fused_gates_.capacity()),
                   "growing the fused-gate arrays");
  // Room first, so that nothing after append() can fail and leave the arrays out of step.
  auto room = [](auto& v) {
    if (v.size() == v.capacity()) v.reserve(std::max<std::size_t>(16, 2 * v.capacity()));
  };
  room(fused_gates_);
  room(fused_contexts_);
  room(fused_same_);
  // children: φ then the scaled gates
  store_fused_parameters(ps, scaled.size(), scan, true);
  gate_id g;
  try {
    g = append(gate_kind::fused, std::span(&phi, 1), scaled);
  } catch (...) {
    unstore_fused_parameters();
    fused_edges_ -= scaled.size();
    throw;
  }
  fused_gates_.push_back(g);
  fused_contexts_.push_back(context);
  fused_same_.push_back(same_children_as_previous(fused_gates_.size() - 1));
  return g;
}

std::uint32_t circuit::add_conv_stage(conv_stage st) {
  const conv_geometry& g = st.geometry;
  auto fail = [&](const std::string& what) {
    throw error(fmt::format("circuit::add_conv_stage (stage {}, term {}): {}", st.layer, st.term, what));
  };
  if (!g.in_channels || !g.in_h || !g.in_w || !g.out_channels || !g.out_h || !g.out_w || !g.kernel_h || !g.kernel_w)
    fail("a zero size in the geometry");
  if (!g.stride_h || !g.stride_w || !g.dilation_h || !g.dilation_w) fail("a zero stride or dilation");
  if (!g.group || g.in_channels % g.group || g.out_channels % g.group)
    fail(fmt::format("{} input and {} output channels are not divisible by {} groups", g.in_channels, g.out_channels,
                     g.group));
  // In 128 bits: inputs(), outputs() and weights() wrap in 64 for huge (damaged) sizes.
  using u128 = unsigned __int128;
  const u128 inputs = u128{g.in_channels} * g.in_h * g.in_w, outputs = u128{g.out_channels} * g.out_h * g.out_w;
  const u128 weights = u128{g.out_channels} * (g.in_channels / g.group) * g.kernel_h * g.kernel_w;
  if (inputs > 0xFFFFFFFFu || outputs > 0xFFFFFFFFu || weights > 0xFFFFFFFFu) fail("more than 2^32 units or weights");
  // What any convolution satisfies (the bottom/right padding, not stored, is ≥ 0): the
  // kernel's extent fits in 32 bits, and the input is no larger than the outputs' strides and
  // one kernel extent cover. So every offset stays small, and a damaged geometry cannot claim
  // input units out of proportion to the outputs and weights it stores.
  const u128 extent_h = u128{g.kernel_h - 1} * g.dilation_h, extent_w = u128{g.kernel_w - 1} * g.dilation_w;
  if (extent_h > 0xFFFFFFFFu || extent_w > 0xFFFFFFFFu)
    fail(fmt::format("a {}x{} kernel with dilation {}x{} spans more than 2^32 inputs", g.kernel_h, g.kernel_w,
                     g.dilation_h, g.dilation_w));
  if (g.in_h > u128{g.out_h} * g.stride_h + extent_h || g.in_w > u128{g.out_w} * g.stride_w + extent_w)
    fail(fmt::format("an input of {}x{} cannot give {}x{} outputs with a {}x{} kernel, stride {}x{} and dilation {}x{}",
                     g.in_h, g.in_w, g.out_h, g.out_w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.dilation_h,
                     g.dilation_w));
  if (st.present.size() != g.weights())
    fail(fmt::format("{} presence flags for {} weights", st.present.size(), g.weights()));
  if (st.scaled.size() != g.outputs())
    fail(fmt::format("{} scaled entries for {} output units", st.scaled.size(), g.outputs()));
  if (st.parameters == no_token || std::size_t{st.parameters} + g.weights() > tokens_.size())
    fail(fmt::format("parameter tokens {}..+{} do not exist ({} tokens)", st.parameters, g.weights(), tokens_.size()));
  for (std::size_t k = 0; k < st.scaled.size(); ++k)
    if (to_index(st.scaled[k]) >= size())
      fail(fmt::format("scaled entry {} names gate {}, which does not exist ({} gates)", k, to_index(st.scaled[k]),
                       size()));
  if (conv_stages_.size() >= 0xFFFFFFFEu) throw limit_error("circuit: more than 2^32-2 conv stages");
  require_memory(sizeof(conv_stage) * (conv_stages_.size() == conv_stages_.capacity() ? 2 * conv_stages_.size() + 1 : 0),
                 "growing the conv-stage array");
  conv_stages_.push_back(std::move(st));
  return static_cast<std::uint32_t>(conv_stages_.size() - 1);
}

gate_id circuit::structured(gate_id phi, std::uint32_t stage, std::uint32_t lower) {
  if (stage >= conv_stages_.size())
    throw error(fmt::format("circuit::structured: conv stage {} does not exist ({} stages)", stage, conv_stages_.size()));
  if (lower >= conv_stages_[stage].geometry.inputs())
    throw error(fmt::format("circuit::structured: lower unit {} is out of range: conv stage {} has {} input units",
                            lower, stage, conv_stages_[stage].geometry.inputs()));
  PROVNN_ASSERT(to_index(phi) < size());
  if (structured_gates_.size() == structured_gates_.capacity())
    require_memory(12 * std::max<std::size_t>(1, 2 * structured_gates_.capacity()), "growing the structured-gate arrays");
  auto room = [](auto& v) {
    if (v.size() == v.capacity()) v.reserve(std::max<std::size_t>(16, 2 * v.capacity()));
  };
  room(structured_gates_);
  room(structured_stage_);
  room(structured_lower_);
  const gate_id g = append(gate_kind::structured, std::span(&phi, 1));
  structured_gates_.push_back(g);
  structured_stage_.push_back(stage);
  structured_lower_.push_back(lower);
  return g;
}

std::size_t circuit::structured_edge_count() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < structured_gates_.size(); ++i)
    conv_stages_[structured_stage_[i]].edges_of(structured_lower_[i], [&n](std::size_t, std::size_t) { ++n; });
  return n;
}

bool circuit::same_children_as_previous(std::size_t i) const noexcept {
  if (i == 0) return false;
  const auto a = children(fused_gates_[i]), b = children(fused_gates_[i - 1]);
  // (memcmp, not std::equal over the gate enum, which compared an element at a time: 7 % of
  // an MLP's build, where every fused gate of a layer has the same scaled children)
  return a.size() == b.size() && std::memcmp(a.data() + 1, b.data() + 1, (a.size() - 1) * sizeof(gate_id)) == 0;
}

circuit::parameter_scan circuit::scan_parameters(std::span<const token_index> ps) noexcept {
  parameter_scan s{true, ps[0], ps[0]};
  for (std::size_t i = 1; i < ps.size(); ++i) {
    s.run &= ps[i] == ps[0] + i;  // (no early exit: the loop vectorises)
    s.lo = std::min(s.lo, ps[i]);
    s.hi = std::max(s.hi, ps[i]);
  }
  return s;
}

void circuit::store_fused_parameters(std::span<const token_index> ps, std::size_t edges, const parameter_scan& sc,
                                     bool check_memory) {
  // A run of consecutive tokens (every gate of a dense layer, whose parameter block is
  // j-major) is stored as its first token; a range narrower than 2^16 as 16-bit offsets
  // from its lowest token (a convolution's, whose block is input-channel-major); else the
  // tokens themselves.
  const bool run = sc.run;
  const token_index lo = sc.lo, hi = sc.hi;
  const bool narrow = !run && hi - lo <= 0xFFFFu;
  if (check_memory) {
    if (narrow && fused_deltas_.size() + ps.size() > fused_deltas_.capacity())
      require_memory(2 * std::max(fused_deltas_.size() + ps.size(), 2 * fused_deltas_.capacity()),
                     "growing the fused-parameter offsets");
    if (!run && !narrow && fused_params_.size() + ps.size() > fused_params_.capacity())
      require_memory(4 * std::max(fused_params_.size() + ps.size(), 2 * fused_params_.capacity()),
                     "growing the fused-parameter array");
    if (fused_param_offsets_.size() == fused_param_offsets_.capacity() ||
        fused_delta_offsets_.size() == fused_delta_offsets_.capacity())
      require_memory(8 * std::max<std::size_t>(1, 2 * fused_param_offsets_.capacity()),
                     "growing the fused-parameter offsets");
  }
  if (run) {
    fused_param_first_.push_back(ps[0]);
  } else if (narrow) {
    fused_param_first_.push_back(lo);
    // Grow once, as the check above assumed (a push_back per entry could double repeatedly).
    if (fused_deltas_.size() + ps.size() > fused_deltas_.capacity())
      fused_deltas_.reserve(std::max(fused_deltas_.size() + ps.size(), 2 * fused_deltas_.capacity()));
    for (auto t : ps) fused_deltas_.push_back(static_cast<std::uint16_t>(t - lo));
  } else {
    fused_param_first_.push_back(no_token);
    fused_params_.insert(fused_params_.end(), ps.begin(), ps.end());
  }
  fused_param_offsets_.push_back(static_cast<std::uint32_t>(fused_params_.size()));
  fused_delta_offsets_.push_back(static_cast<std::uint32_t>(fused_deltas_.size()));
  fused_edges_ += edges;
}

void circuit::unstore_fused_parameters() {
  fused_param_first_.pop_back();
  fused_param_offsets_.pop_back();
  fused_delta_offsets_.pop_back();
  fused_params_.resize(fused_param_offsets_.back());
  fused_deltas_.resize(fused_delta_offsets_.back());
}

std::optional<std::uint32_t> circuit::scaled_unit(gate_id g) const {
  auto it = std::lower_bound(scale_gates_.begin(), scale_gates_.end(), g);
  if (it == scale_gates_.end() || *it != g) return std::nullopt;
  return scale_units_[static_cast<std::size_t>(it - scale_gates_.begin())];
}

std::optional<std::size_t> circuit::edge_index(gate_id g) const {
  auto it = std::lower_bound(edge_gates_.begin(), edge_gates_.end(), g);
  if (it == edge_gates_.end() || *it != g) return std::nullopt;
  return static_cast<std::size_t>(it - edge_gates_.begin());
}

std::uint64_t circuit::root_hash(std::string_view name) noexcept {
  return detail::mix64(std::hash<std::string_view>{}(name));
}

void circuit::reserve_roots(std::size_t n) {
  roots_.reserve(n);
  root_index_.reserve(n);
}

void circuit::add_root(root r) {
  PROVNN_ASSERT(to_index(r.gate) < size());
  const auto h = root_hash(r.name);  // (once, for the look-up and the insert)
  if (root_index_.find(h, [&](std::uint32_t i) { return roots_[i].name == r.name; }) != detail::id_table::empty)
    throw error(fmt::format("circuit: a root named '{}' exists already; root names must be unique", r.name));
  if (roots_.size() >= 0xFFFFFFFEu) throw limit_error("circuit: more than 2^32-2 roots");
  roots_.push_back(std::move(r));
  try {
    root_index_.insert(h, static_cast<std::uint32_t>(roots_.size() - 1));
  } catch (...) {
    roots_.pop_back();
    throw;
  }
}

const root* circuit::find_root(std::string_view name) const {
  const auto id = root_index_.find(root_hash(name), [&](std::uint32_t i) { return roots_[i].name == name; });
  return id == detail::id_table::empty ? nullptr : &roots_[id];
}

namespace {

// The room reserve() and reserve_fused() take for an array: grown as std::vector grows (by
// half at least) rather than to the exact hint. A builder reserves per stage, and exact growth
// reallocated — and faulted in — the whole arena at every stage (vgg-small's children: 303 MB
// of fresh buffers for a 54 MB array).
std::size_t grown(std::size_t want, std::size_t cap) { return want > cap ? std::max(want, cap + cap / 2) : want; }

// Picks the room for two arrays: the grown sizes (a2, b2) when the budget holds their spare
// room twice over (so that it does not crowd out what a builder allocates next, near the
// limit), else the hints (a, b) when they fit; false when not even those fit (nothing is
// reserved then). bytes_for(a, b) is what reserving a and b would allocate.
template <class Bytes>
bool room_to_reserve(const circuit& c, std::size_t& a, std::size_t a2, std::size_t& b, std::size_t b2, Bytes bytes_for) {
  const std::size_t exact = bytes_for(a, b), more = bytes_for(a2, b2);
  if (c.fits_memory(more + (more - exact))) {
    a = a2;
    b = b2;
    return true;
  }
  return c.fits_memory(exact);
}

}  // namespace

void circuit::reserve(std::size_t gates, std::size_t child_refs) {
  // A hint, so never a reason to fail: ask at most what the limits allow. Past the gate
  // limit, appends throw anyway; room above the memory limit is not reserved at all (the
  // arrays then grow as needed, each growth checked).
  gates = std::min(gates, limits_.max_gates);
  const auto bytes_for = [this](std::size_t g, std::size_t c) {
    std::size_t extra = 0;
    if (g > kinds_.capacity()) extra += g + 4 * (g + 1);
    if (c > children_.capacity()) extra += 4 * c;
    if (sharing_ && detail::id_table::bytes_for(g / 2) > by_structure_.bytes()) extra += detail::id_table::bytes_for(g / 2);
    return extra;
  };
  if (!room_to_reserve(*this, gates, std::min(grown(gates, kinds_.capacity()), limits_.max_gates), child_refs,
                       grown(child_refs, children_.capacity()), bytes_for))
    return;
  kinds_.reserve(gates);
  offsets_.reserve(gates + 1);
  children_.reserve(child_refs);
  // About half the gates of an LRP circuit are shared ⊕/⊗ gates; a builder with sharing off
  // (build_circuit) finds nothing to share, and the table would be dead weight.
  if (sharing_) by_structure_.reserve(gates / 2);
}

void circuit::reserve_fused(std::size_t fused_gates, std::size_t edges) {
  fused_gates += fused_gates_.size();
  edges += fused_deltas_.size();
  const auto bytes_for = [this](std::size_t g, std::size_t e) {
    std::size_t extra = 0;
    if (g > fused_gates_.capacity()) extra += (17 + sizeof(fused_context)) * g;
    if (e > fused_deltas_.capacity()) extra += 2 * e;
    return extra;
  };
  if (!room_to_reserve(*this, fused_gates, grown(fused_gates, fused_gates_.capacity()), edges,
                       grown(edges, fused_deltas_.capacity()), bytes_for))
    return;
  fused_gates_.reserve(fused_gates);
  fused_contexts_.reserve(fused_gates);
  fused_same_.reserve(fused_gates);
  fused_param_offsets_.reserve(fused_gates + 1);
  fused_delta_offsets_.reserve(fused_gates + 1);
  fused_param_first_.reserve(fused_gates);
  fused_deltas_.reserve(edges);
}

void circuit::shrink_to_fit() {
  auto shrink = [this](auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    if (v.capacity() - v.size() > v.size() / 8 && fits_memory(sizeof(T) * v.size())) v.shrink_to_fit();
  };
  shrink(kinds_);
  shrink(offsets_);
  shrink(children_);
  shrink(single_gate_);
  shrink(edge_gates_);
  shrink(edge_contexts_);
  shrink(fused_gates_);
  shrink(fused_contexts_);
  shrink(fused_same_);
  shrink(fused_param_offsets_);
  shrink(fused_param_first_);
  shrink(fused_params_);
  shrink(fused_delta_offsets_);
  shrink(fused_deltas_);
  shrink(scale_gates_);
  shrink(scale_units_);
  shrink(structured_gates_);
  shrink(structured_stage_);
  shrink(structured_lower_);
  shrink(roots_);
  if (fits_memory(by_structure_.bytes() / 2)) by_structure_.shrink_to_fit();  // the new table is at most half
  tokens_.trim_values();  // in place, needing no memory: outside the guard below
  if (fits_memory(tokens_.bytes())) tokens_.shrink_to_fit();
}

std::size_t circuit::bytes() const noexcept {
  std::size_t b = kinds_.capacity() + 4 * offsets_.capacity() + 4 * children_.capacity() + 4 * single_gate_.capacity() +
                  4 * edge_gates_.capacity() + sizeof(edge_context) * edge_contexts_.capacity() + by_structure_.bytes() +
                  4 * fused_gates_.capacity() + sizeof(fused_context) * fused_contexts_.capacity() +
                  fused_same_.capacity() +
                  4 * fused_param_offsets_.capacity() + 4 * fused_param_first_.capacity() + 4 * fused_params_.capacity() +
                  4 * fused_delta_offsets_.capacity() + 2 * fused_deltas_.capacity() + 4 * scale_gates_.capacity() +
                  4 * scale_units_.capacity();
  b += 12 * structured_gates_.capacity() + sizeof(conv_stage) * conv_stages_.capacity();
  for (const auto& st : conv_stages_) b += st.present.capacity() + 4 * st.scaled.capacity();
  b += sizeof(std::vector<std::uint32_t>) * block_gate_.capacity();
  for (const auto& v : block_gate_) b += 4 * v.capacity();
  b += sizeof(root) * roots_.capacity() + root_index_.bytes();
  for (const auto& r : roots_)
    if (r.name.capacity() > 15) b += r.name.capacity() + 1;  // a name past the inline buffer
  return b;
}

circuit_stats stats(const circuit& c) {
  circuit_stats s;
  s.gates = c.size();
  for (auto k : c.raw_kinds()) ++s.gates_by_kind[k < gate_kind_count ? k : 0];
  s.edge_gates = c.edge_gates().size();
  s.child_references = c.child_count();
  s.tokens = c.tokens().size();
  for (token_index t = 0; t < c.tokens().size(); ++t) ++s.tokens_by_kind[static_cast<std::uint8_t>(c.tokens().kind(t))];
  s.roots = c.roots().size();
  s.bytes = c.bytes() + c.tokens().bytes();
  return s;
}

}  // namespace provnn
