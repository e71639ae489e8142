// The provenance circuit: an append-only arena of ⊕/⊗ gates over the tokens of a token table
// (DESIGN §3, §5; the id and invalidation rules are in docs/circuits.md).
//
// Storage is structure-of-arrays so that later gate kinds (fused, structured — issue 5) add
// arrays instead of widening every gate:
//   kinds_     one byte per gate
//   offsets_   CSR row pointers, size()+1 entries
//   children_  one flat array of child ids; a token gate keeps its token index in its single
//              slot (children(g) is empty for it, token_of(g) reads the slot)
//   edges_     the (sparse, optional) edge-gate markers with their contexts, sorted by id
// Every child id is smaller than its parent's id, so id order is a topological order and
// every pass is one forward (or backward) loop over ids.
//
// Gates 0 and 1 are always the constants zero and one.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/detail/id_table.hpp"
#include "circuits/tokens.hpp"

namespace provnn {

enum class gate_id : std::uint32_t {};

constexpr std::uint32_t to_index(gate_id g) noexcept { return static_cast<std::uint32_t>(g); }
constexpr gate_id zero_gate{0};
constexpr gate_id one_gate{1};

/// Gate kinds. Values 7..15 are reserved for further structured kinds; the file format
/// stores the byte as is and refuses kinds it does not know.
///   fused  F = φ ⊗ ⊕_i (ψ_i ⊗ S_i): children() are [φ, S_1, …, S_n] (gates), the ψ_i are
///          tokens read straight from the valuation (fused_parameters(): a run of consecutive
///          tokens is stored as its first, a narrow range as 16-bit offsets), and every S_i is a
///          scale gate n_k^m ⊗ R_k (a ⊗ gate marked with its upper unit k, scaled_unit()).
///          It stands for ⊕_i E_i ⊗ R_{k_i} with the edge gates E_i = φ ⊗ ψ_i ⊗ n_{k_i}^m of one
///          lower unit and term (DESIGN §5): 4 bytes per edge (6 when its
///          parameters are not consecutive tokens) instead of three gates.
///   structured  a convolution's fused gate whose edges are implied by the stage's geometry
///          (DESIGN §5): children() are [φ] only; the edges ψ_i ⊗ S_i of lower unit j are
///          those of conv_stage::edges_of(j) — nothing stored per edge. It stands for the
///          fused gate φ ⊗ ⊕_i (ψ_i ⊗ S_i) with the same edges in the same order.
enum class gate_kind : std::uint8_t { zero = 0, one = 1, token = 2, plus = 3, times = 4, fused = 5, structured = 6 };
inline constexpr std::uint8_t gate_kind_count = 7;
std::string_view to_string(gate_kind k) noexcept;

inline constexpr token_index no_token = 0xFFFFFFFFu;
inline constexpr std::uint32_t no_target = 0xFFFFFFFFu;

/// Where an edge gate E_jk^m sits in the network: linear layer `layer`, lower unit j (flat
/// index into the layer's input), upper unit k (flat index into its output), rule term m,
/// and the parameter token ψ_m(w_jk) it uses (no_token for edges without a parameter, e.g.
/// max-pool routing).
struct edge_context {
  std::uint32_t layer = 0;
  std::uint32_t lower = 0;
  std::uint32_t upper = 0;
  std::uint32_t term = 0;
  token_index parameter = no_token;
  friend bool operator==(const edge_context&, const edge_context&) = default;
};

/// Where a fused gate sits: linear layer `layer`, lower unit j (flat), rule term m. The upper
/// unit of each of its edges is the scaled_unit() of the matching scale gate, the parameter
/// its fused_parameters() entry.
struct fused_context {
  std::uint32_t layer = 0;
  std::uint32_t lower = 0;
  std::uint32_t term = 0;
  friend bool operator==(const fused_context&, const fused_context&) = default;
};

/// The geometry of a convolution stage over one NCHW image (batch 1): the input (C, H, W),
/// the output (OC, OH, OW), kernel, stride, top/left padding, dilation and group count.
struct conv_geometry {
  std::uint32_t in_channels = 0, in_h = 0, in_w = 0;
  std::uint32_t out_channels = 0, out_h = 0, out_w = 0;
  std::uint32_t kernel_h = 0, kernel_w = 0;
  std::uint32_t stride_h = 1, stride_w = 1;
  std::uint32_t pad_top = 0, pad_left = 0;
  std::uint32_t dilation_h = 1, dilation_w = 1;
  std::uint32_t group = 1;
  std::size_t inputs() const noexcept { return std::size_t{in_channels} * in_h * in_w; }
  std::size_t outputs() const noexcept { return std::size_t{out_channels} * out_h * out_w; }
  /// Weights: out_channels × in_channels/group × kernel_h × kernel_w.
  std::size_t weights() const noexcept {
    return group ? std::size_t{out_channels} * (in_channels / group) * kernel_h * kernel_w : 0;
  }
  friend bool operator==(const conv_geometry&, const conv_geometry&) = default;
};

/// One convolution stage's edges, for one explanation and one rule term m (DESIGN §5): the
/// tables from which every structured gate of the stage reads its edges. Edge j → k with
/// weight p = ((oc·icg + icl)·kh + ky)·kw + kx (icg = in_channels/group; the tensor's own
/// layout) exists when the geometry connects them (input (ci, iy, ix) with iy = oy·sh + ky·dh
/// − pad_top, ix likewise, ci = group(oc)·icg + icl), `present[p]` is 1 and `scaled[k]` is a
/// gate. O(units + parameters) memory, whatever the number of edges.
struct conv_stage {
  std::uint32_t layer = 0;  ///< the linear stage (as fused_context::layer)
  std::uint32_t term = 0;   ///< the rule term m
  conv_geometry geometry;
  token_index parameters = no_token;  ///< ψ_m(w_p) is the token parameters + p
  std::vector<std::uint8_t> present;  ///< per weight p: 1 when its edges exist (ψ_m(w_p) ≠ 0 when built)
  std::vector<gate_id> scaled;        ///< per upper unit k = (oc·OH + oy)·OW + ox: its scale gate S_k^m, or zero_gate

  /// Calls f(k, p) for each edge of lower unit j (flat (ci, iy, ix)): ascending output channel,
  /// kernel row, kernel column — the order of a fused gate's edges (build_circuit). O(edges
  /// of j's receptive field).
  template <class F>
  void edges_of(std::size_t j, F&& f) const {
    const conv_geometry& g = geometry;
    const std::size_t icg = g.in_channels / g.group, ocg = g.out_channels / g.group;
    const std::size_t ci = j / (std::size_t{g.in_h} * g.in_w), iy = j / g.in_w % g.in_h, ix = j % g.in_w;
    const std::size_t grp = ci / icg, icl = ci % icg;
    for (std::size_t oc = grp * ocg; oc < (grp + 1) * ocg; ++oc)
      for (std::size_t ky = 0; ky < g.kernel_h; ++ky) {
        const std::size_t ty = iy + g.pad_top, dy = ky * g.dilation_h;
        if (ty < dy || (ty - dy) % g.stride_h) continue;
        const std::size_t oy = (ty - dy) / g.stride_h;
        if (oy >= g.out_h) continue;
        for (std::size_t kx = 0; kx < g.kernel_w; ++kx) {
          const std::size_t tx = ix + g.pad_left, dx = kx * g.dilation_w;
          if (tx < dx || (tx - dx) % g.stride_w) continue;
          const std::size_t ox = (tx - dx) / g.stride_w;
          if (ox >= g.out_w) continue;
          const std::size_t k = (oc * g.out_h + oy) * g.out_w + ox, p = ((oc * icg + icl) * g.kernel_h + ky) * g.kernel_w + kx;
          if (present[p] && scaled[k] != gate_id{0}) f(k, p);
        }
      }
  }
};

/// The parameter tokens of one fused gate, in edge order, stored in one of three ways: a run
/// first, first + 1, … (its first token only: a dense layer's block gives every gate one),
/// 16-bit offsets from a base token (a convolution's shared weights, whose block is stored
/// input-channel-major so that one gate's tokens lie within out_channels × kernel), or
/// 32-bit tokens (anything wider). Indexable and iterable like a span of token_index.
class fused_parameter_list {
 public:
  fused_parameter_list(const token_index* list, const std::uint16_t* deltas, token_index first,
                       std::size_t n) noexcept
      : list_(list), deltas_(deltas), first_(first), n_(n) {}
  std::size_t size() const noexcept { return n_; }
  bool empty() const noexcept { return n_ == 0; }
  token_index operator[](std::size_t i) const noexcept {
    return list_ ? list_[i] : static_cast<token_index>(first_ + (deltas_ ? deltas_[i] : i));
  }
  /// Whether the tokens are the run first(), first() + 1, …
  bool is_run() const noexcept { return !list_ && !deltas_; }
  /// Whether they are kept as 16-bit offsets from a base token.
  bool is_offsets() const noexcept { return deltas_ != nullptr; }
  token_index first() const noexcept { return (*this)[0]; }
  /// The token the 16-bit offsets count from (is_offsets()), the run's first (is_run()).
  token_index base() const noexcept { return first_; }
  class iterator {
   public:
    using value_type = token_index;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const token_index* list, const std::uint16_t* deltas, token_index first, std::size_t i)
        : list_(list), deltas_(deltas), first_(first), i_(i) {}
    token_index operator*() const {
      return list_ ? list_[i_] : static_cast<token_index>(first_ + (deltas_ ? deltas_[i_] : i_));
    }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      auto t = *this;
      ++i_;
      return t;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.i_ == b.i_; }

   private:
    // By value, not a pointer to the list: an iterator outlives a temporary list
    // (c.fused_parameters(i).begin()); it stays valid while the circuit is unchanged.
    const token_index* list_ = nullptr;
    const std::uint16_t* deltas_ = nullptr;
    token_index first_ = 0;
    std::size_t i_ = 0;
  };
  iterator begin() const { return {list_, deltas_, first_, 0}; }
  iterator end() const { return {list_, deltas_, first_, n_}; }

 private:
  const token_index* list_;
  const std::uint16_t* deltas_;
  token_index first_;
  std::size_t n_;
};

/// What a named root stands for.
enum class root_kind : std::uint8_t {
  feature,  ///< relevance of input feature `index` (flat)
  bias,     ///< relevance absorbed by bias `index` of linear layer `layer`
  other,    ///< anything else a builder wants to name
};
inline constexpr std::uint8_t root_kind_count = 3;
std::string_view to_string(root_kind k) noexcept;

/// A named output of the circuit. Names are unique within a circuit; the builder's
/// convention is `R(x[0,3,4])`, `R(b1[3])`, with `|r[7]` appended when several targets share
/// the circuit (`R(x[0,3,4]|r[7])`).
struct root {
  std::string name;
  gate_id gate = zero_gate;
  root_kind kind = root_kind::other;
  std::uint32_t layer = 0;
  std::uint32_t index = 0;
  std::uint32_t target = no_target;
  friend bool operator==(const root&, const root&) = default;
};

/// Resource limits of one circuit's arena. Gate ids are 32-bit, so max_gates is at most
/// 2^32 − 2 whatever is asked. max_bytes bounds the heap the arena holds (bytes() plus the
/// token table) *including* the transient peak of a growth: an array about to grow is
/// checked with its old and its new buffer both counted, before anything is allocated.
/// Hitting either limit throws limit_error naming it; the circuit stays valid (every gate
/// appended so far is intact) and can still be read or destroyed.
struct circuit_limits {
  std::size_t max_gates = 0xFFFFFFFEu;
  std::size_t max_bytes = static_cast<std::size_t>(-1);
};

namespace detail {
struct circuit_access;
}

class circuit {
 public:
  /// An empty circuit: the constant gates zero (id 0) and one (id 1), no tokens.
  circuit();

  token_table& tokens() noexcept { return tokens_; }
  const token_table& tokens() const noexcept { return tokens_; }

  // ---- building (append-only) -------------------------------------------------------------

  /// The gate of token t (one per token, created on first use). Amortised O(1).
  /// Precondition: t < tokens().size().
  gate_id token(token_index t);

  /// n-ary ⊕. Zero children are dropped (x ⊕ 0 = x); no child left gives zero_gate, one
  /// child gives that child. Otherwise the children are sorted (⊕ is commutative) and an
  /// existing gate with the same child multiset is returned (structural hashing).
  /// O(n log n). Precondition: every child id < size().
  gate_id plus(std::span<const gate_id> children);
  gate_id plus(std::initializer_list<gate_id> children) { return plus(std::span(children.begin(), children.size())); }

  /// n-ary ⊗. Any zero child gives zero_gate (x ⊗ 0 = 0); one children are dropped
  /// (x ⊗ 1 = x); then as plus(). Valid in every semiring, so no evaluation can tell.
  gate_id times(std::span<const gate_id> children);
  gate_id times(std::initializer_list<gate_id> children) { return times(std::span(children.begin(), children.size())); }

  /// An edge gate E_jk^m = ⊗ factors, marked with its context: always a fresh gate, never
  /// shared and never simplified, because an edge annotation Θ values it by its own real
  /// coefficient whatever its factors are. O(n).
  gate_id edge(std::span<const gate_id> factors, const edge_context& context);
  gate_id edge(std::initializer_list<gate_id> factors, const edge_context& context) {
    return edge(std::span(factors.begin(), factors.size()), context);
  }

  /// A scale gate S = R ⊗ n (n: the normaliser token gate n_k^m of upper unit k, R: that
  /// unit's relevance), a ⊗ gate never shared, marked with k for fused gates' edge contexts.
  gate_id scale(gate_id relevance, gate_id normaliser, std::uint32_t upper);
  /// A fused gate φ ⊗ ⊕_i (ψ_i ⊗ S_i) (see gate_kind::fused): `parameters` are token indices
  /// (every edge has one: parameter-less edges, e.g. average pools, stay plain edge gates),
  /// `scaled` scale gates, one per edge. Never shared. Throws provnn::error when the spans differ in size or are empty or a
  /// parameter token does not exist; expand_fused() refuses scaled entries that are not
  /// scale gates. O(n).
  gate_id fused(gate_id phi, std::span<const token_index> parameters, std::span<const gate_id> scaled,
                const fused_context& context);
  /// fused() whose parameters are the run first, first + 1, …, first + n − 1 (n =
  /// scaled.size()): the same gate, without a list to write and scan — a dense layer's gates
  /// over its parameter block (build_circuit). Throws as fused() does. O(n).
  gate_id fused_run(gate_id phi, token_index first, std::span<const gate_id> scaled, const fused_context& context);

  /// Adds the tables of a convolution stage for structured gates (see conv_stage), and
  /// returns its number. Throws provnn::error naming what is wrong when the geometry is
  /// inconsistent (a zero size, stride or dilation, channels not divisible by the group
  /// count), the tables' sizes do not match it, the parameter tokens do not exist or a scaled
  /// entry is not an existing gate. O(units + parameters).
  std::uint32_t add_conv_stage(conv_stage stage);
  /// A structured gate φ ⊗ ⊕_i (ψ_i ⊗ S_i) for lower unit `lower` of conv stage `stage`: its
  /// edges are the stage's conv_stage::edges_of(lower). Never shared. Throws provnn::error
  /// when the stage or the unit does not exist. O(1).
  gate_id structured(gate_id phi, std::uint32_t stage, std::uint32_t lower);

  /// Structural hashing on (default) or off. Off trades memory for build speed; the
  /// simplifications of plus()/times() stay on. Gates built while it was off are never
  /// found by later look-ups.
  void set_sharing(bool on) noexcept { sharing_ = on; }
  bool sharing() const noexcept { return sharing_; }

  /// Limits checked by every later append and reserve (default: none but the 32-bit ids).
  void set_limits(const circuit_limits& l) noexcept;
  const circuit_limits& limits() const noexcept { return limits_; }
  /// Whether `extra_bytes` more (e.g. a token table a builder is about to reserve) keep the
  /// arena's heap, token table included, within max_bytes.
  bool fits_memory(std::size_t extra_bytes) const noexcept;

  /// Names gate g as a root. Throws provnn::error when the name is already taken.
  void add_root(root r);
  /// Room for n roots in all (a hint: a builder naming one root per input feature).
  void reserve_roots(std::size_t n);
  /// Room for `gates` gates and `child_refs` child references without reallocation (fresh
  /// pages are expensive: a builder that knows its sizes should call this first). A hint:
  /// it asks for at most max_gates gates and reserves nothing when the room would take the
  /// arena above max_bytes (the arrays then grow on demand, each growth checked). An array
  /// that must grow grows by half its capacity at least, as std::vector does (so that hints
  /// given stage by stage do not reallocate every time), when max_bytes holds that spare room
  /// twice over; else to the hint exactly.
  void reserve(std::size_t gates, std::size_t child_refs);
  /// Gives back room that reserve() hints or growth left unused, where it exceeds an eighth
  /// of what an array uses (the token table's too): a builder calls it when done. Skipped
  /// for an array whose copy would not fit max_bytes. O(bytes held).
  void shrink_to_fit();
  /// Room for `fused_gates` more fused gates whose parameters that are not runs hold `edges`
  /// more entries (16-bit offsets): a hint like reserve().
  void reserve_fused(std::size_t fused_gates, std::size_t edges);

  // ---- reading ------------------------------------------------------------------------------

  std::size_t size() const noexcept { return kinds_.size(); }
  gate_kind kind(gate_id g) const { return static_cast<gate_kind>(kinds_[to_index(g)]); }
  /// Children of a ⊕/⊗ gate (empty for zero, one and token gates).
  std::span<const gate_id> children(gate_id g) const {
    const auto i = to_index(g);
    if (kinds_[i] == static_cast<std::uint8_t>(gate_kind::token)) return {};
    return {children_.data() + offsets_[i], children_.data() + offsets_[i + 1]};
  }
  /// The token of a token gate. Precondition: kind(g) == gate_kind::token.
  token_index token_of(gate_id g) const { return static_cast<token_index>(children_[offsets_[to_index(g)]]); }
  /// The gate of token t if it was created, else nullopt.
  std::optional<gate_id> find_token_gate(token_index t) const;

  /// Number of child references of ⊕/⊗ gates (the "edges" of the DAG).
  std::size_t child_count() const noexcept { return children_.size() - token_gates_; }

  /// Edge gates in increasing id order, and their contexts (same order).
  std::span<const gate_id> edge_gates() const noexcept { return edge_gates_; }
  std::span<const edge_context> edge_contexts() const noexcept { return edge_contexts_; }
  /// Position of g in edge_gates(), or nullopt when g is not an edge gate. O(log edges).
  std::optional<std::size_t> edge_index(gate_id g) const;

  /// Fused gates in increasing id order, their contexts (same order), and the parameter
  /// tokens of fused gate number i (fused_gates()[i]), one per scaled child.
  std::span<const gate_id> fused_gates() const noexcept { return fused_gates_; }
  std::span<const fused_context> fused_contexts() const noexcept { return fused_contexts_; }
  fused_parameter_list fused_parameters(std::size_t i) const {
    const std::size_t n = offsets_[to_index(fused_gates_[i]) + 1] - offsets_[to_index(fused_gates_[i])] - 1;
    if (fused_param_first_[i] == no_token) return {fused_params_.data() + fused_param_offsets_[i], nullptr, no_token, n};
    if (fused_delta_offsets_[i + 1] != fused_delta_offsets_[i])
      return {nullptr, fused_deltas_.data() + fused_delta_offsets_[i], fused_param_first_[i], n};
    return {nullptr, nullptr, fused_param_first_[i], n};
  }
  /// The raw parameter arrays, for evaluation: per fused gate its base token — the first of
  /// its run, or the base of its 16-bit offsets raw_fused_parameter_deltas()[delta_offsets[i]
  /// …] when that range is not empty — or no_token when its tokens are listed at
  /// raw_fused_parameters()[offsets[i] …] (both offset arrays: size fused + 1).
  std::span<const token_index> raw_fused_parameter_firsts() const noexcept { return fused_param_first_; }
  std::span<const token_index> raw_fused_parameters() const noexcept { return fused_params_; }
  std::span<const std::uint32_t> raw_fused_parameter_offsets() const noexcept { return fused_param_offsets_; }
  std::span<const std::uint16_t> raw_fused_parameter_deltas() const noexcept { return fused_deltas_; }
  std::span<const std::uint32_t> raw_fused_delta_offsets() const noexcept { return fused_delta_offsets_; }
  /// The conv stages (add_conv_stage), and the structured gates in increasing id order with
  /// their stage numbers and lower units (same order).
  std::span<const conv_stage> conv_stages() const noexcept { return conv_stages_; }
  std::span<const gate_id> structured_gates() const noexcept { return structured_gates_; }
  std::span<const std::uint32_t> structured_stages() const noexcept { return structured_stage_; }
  std::span<const std::uint32_t> structured_lowers() const noexcept { return structured_lower_; }
  /// Number of edges the structured gates stand for. O(edges): they are enumerated.
  std::size_t structured_edge_count() const;
  /// Scale gates in increasing id order and their upper units.
  std::span<const gate_id> scale_gates() const noexcept { return scale_gates_; }
  std::span<const std::uint32_t> scale_units() const noexcept { return scale_units_; }
  /// The upper unit of scale gate g, or nullopt when g is not one. O(log scale gates).
  std::optional<std::uint32_t> scaled_unit(gate_id g) const;
  /// Number of edges the fused gates stand for (their scaled children).
  std::size_t fused_edge_count() const noexcept { return fused_edges_; }
  /// Per fused gate: 1 when its scaled children are those of the fused gate before it, else
  /// 0. A dense layer's lower units usually share them (every one lists the active units of
  /// the layer above); evaluation then reads their values once for all. Kept up to date by
  /// fused() and the file reader, not stored in files.
  std::span<const std::uint8_t> fused_same_children() const noexcept { return fused_same_; }

  std::span<const root> roots() const noexcept { return roots_; }
  /// The root with this exact name, or nullptr. O(|name|).
  const root* find_root(std::string_view name) const;

  /// Free-form provenance of the circuit (model, input, target, rules, …), sorted by key.
  std::map<std::string, std::string>& metadata() noexcept { return metadata_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// The raw CSR arrays, for passes that stream over them (evaluation, serialisation).
  /// For token gates the single slot holds the token index, not a gate id.
  std::span<const std::uint8_t> raw_kinds() const noexcept { return kinds_; }
  std::span<const std::uint32_t> raw_offsets() const noexcept { return offsets_; }
  std::span<const gate_id> raw_children() const noexcept { return children_; }

  /// Heap bytes held by gates, edges, roots and the hash table (tokens excluded).
  std::size_t bytes() const noexcept;

 private:
  friend struct detail::circuit_access;
  gate_id intern(gate_kind kind, std::vector<gate_id>& children);
  // Appends a gate whose children are `children` then `more`. `more` may lie in children_
  // (it is copied first); `children` (at most a few ids) must not.
  gate_id append(gate_kind kind, std::span<const gate_id> children, std::span<const gate_id> more = {});
  // Whether ps (not empty) is a run first, first + 1, …, and its lowest and highest token.
  struct parameter_scan {
    bool run;
    token_index lo, hi;
  };
  static parameter_scan scan_parameters(std::span<const token_index> ps) noexcept;
  // Appends one fused gate's parameter entry (run, offsets or list; sc = scan_parameters(ps))
  // and its offsets; for a run, ps may hold its first token only (`edges` is the gate's count).
  void store_fused_parameters(std::span<const token_index> ps, std::size_t edges, const parameter_scan& sc,
                              bool check_memory);
  // fused() and fused_run() once the parameters are scanned (ps as for store_fused_parameters).
  gate_id add_fused(gate_id phi, std::span<const token_index> ps, const parameter_scan& sc,
                    std::span<const gate_id> scaled, const fused_context& context);
  void unstore_fused_parameters();
  std::uint64_t gate_hash(std::uint8_t kind, std::span<const gate_id> children) const noexcept;
  void check_growth(std::size_t new_children);
  void require_memory(std::size_t extra_bytes, std::string_view what) const;

  token_table tokens_;
  std::vector<std::uint8_t> kinds_;
  std::vector<std::uint32_t> offsets_{0};
  std::vector<gate_id> children_;
  // Token → gate id (or id_table::empty), following the token table's storage: one entry
  // per single token, and per block an array made when its first token gets a gate — so the
  // parameter blocks of a fused circuit, whose tokens never become gates, cost nothing here.
  std::vector<std::uint32_t> single_gate_;
  std::vector<std::vector<std::uint32_t>> block_gate_;
  std::size_t token_gates_ = 0;
  std::uint32_t& token_gate_slot(token_index t);
  void forget_token_gates();
  std::vector<gate_id> edge_gates_;
  std::vector<edge_context> edge_contexts_;
  std::vector<gate_id> fused_gates_;
  std::vector<fused_context> fused_contexts_;
  std::vector<std::uint32_t> fused_param_offsets_{0};
  std::vector<token_index> fused_param_first_;  // per fused gate: its run's first / offsets' base, or no_token
  std::vector<token_index> fused_params_;        // the listed gates' tokens
  std::vector<std::uint32_t> fused_delta_offsets_{0};
  std::vector<std::uint16_t> fused_deltas_;      // the offset gates' tokens − their base
  std::size_t fused_edges_ = 0;
  std::vector<std::uint8_t> fused_same_;  // see fused_same_children()
  bool same_children_as_previous(std::size_t i) const noexcept;
  std::vector<gate_id> scale_gates_;
  std::vector<std::uint32_t> scale_units_;
  std::vector<conv_stage> conv_stages_;
  std::vector<gate_id> structured_gates_;
  std::vector<std::uint32_t> structured_stage_, structured_lower_;
  std::vector<root> roots_;
  /// Root name → index in roots_: add_root's uniqueness check and find_root in O(1) (a linear
  /// scan made adding n roots O(n²): 5 % of a lenet5 build with its 784 feature roots). An
  /// id_table over roots_ (the names are not copied): ≈ 24 bytes per root where a map of
  /// strings took ≈ 80.
  detail::id_table root_index_;
  static std::uint64_t root_hash(std::string_view name) noexcept;
  std::map<std::string, std::string> metadata_;
  detail::id_table by_structure_;
  std::vector<gate_id> scratch_;
  bool sharing_ = true;
  circuit_limits limits_;
};

/// Counts for reports (`provnn info`): gates by kind, edge gates, child references, tokens
/// by kind, heap bytes. O(gates + tokens).
struct circuit_stats {
  std::size_t gates = 0;
  std::size_t gates_by_kind[gate_kind_count] = {};
  std::size_t edge_gates = 0;
  std::size_t child_references = 0;
  std::size_t tokens = 0;
  std::size_t tokens_by_kind[token_kind_count] = {};
  std::size_t roots = 0;
  std::size_t bytes = 0;  ///< gates, edges, roots and tokens
};
circuit_stats stats(const circuit& c);

}  // namespace provnn
