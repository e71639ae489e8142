// The circuit as a Boost.Graph graph, zero-copy: graph_traits<provnn::circuit> and the free
// functions of the IncidenceGraph, AdjacencyGraph and VertexListGraph concepts, plus a
// vertex_index property map, so Boost's algorithms (topological_sort, breadth_first_search,
// depth_first_visit, write_graphviz, …) run on a circuit directly.
//
//   vertices  gate ids 0..size()-1 (vertex_index(g) = to_index(g))
//   edges     parent → child, one per child reference of a ⊕/⊗ gate (a repeated child is a
//             parallel edge); zero, one and token gates have no out-edges. An edge is
//             (source gate, slot), slot being its position in circuit::raw_children().
//
// Edges point from a gate to what it depends on, so a topological order of the graph lists
// parents first; Boost's topological_sort emits the reverse — children first — which is an
// order compatible with gate ids.
#pragma once

#include <boost/graph/graph_traits.hpp>
#include <boost/graph/properties.hpp>
#include <boost/iterator/iterator_facade.hpp>
#include <boost/property_map/property_map.hpp>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "circuits/circuit.hpp"

namespace provnn {

/// A child reference seen as a graph edge.
struct circuit_edge {
  gate_id source{0};
  std::uint32_t slot = 0;  ///< index into circuit::raw_children()
  friend bool operator==(const circuit_edge&, const circuit_edge&) = default;
};

namespace detail {

class gate_iterator : public boost::iterator_facade<gate_iterator, gate_id, boost::random_access_traversal_tag, gate_id> {
 public:
  gate_iterator() = default;
  explicit gate_iterator(std::uint32_t i) : i_(i) {}

 private:
  friend class boost::iterator_core_access;
  gate_id dereference() const { return gate_id{i_}; }
  bool equal(const gate_iterator& o) const { return i_ == o.i_; }
  void increment() { ++i_; }
  void decrement() { --i_; }
  void advance(std::ptrdiff_t n) { i_ = static_cast<std::uint32_t>(static_cast<std::ptrdiff_t>(i_) + n); }
  std::ptrdiff_t distance_to(const gate_iterator& o) const {
    return static_cast<std::ptrdiff_t>(o.i_) - static_cast<std::ptrdiff_t>(i_);
  }
  std::uint32_t i_ = 0;
};

class child_edge_iterator
    : public boost::iterator_facade<child_edge_iterator, circuit_edge, boost::random_access_traversal_tag, circuit_edge> {
 public:
  child_edge_iterator() = default;
  child_edge_iterator(gate_id source, std::uint32_t slot) : source_(source), slot_(slot) {}

 private:
  friend class boost::iterator_core_access;
  circuit_edge dereference() const { return {source_, slot_}; }
  bool equal(const child_edge_iterator& o) const { return slot_ == o.slot_ && source_ == o.source_; }
  void increment() { ++slot_; }
  void decrement() { --slot_; }
  void advance(std::ptrdiff_t n) { slot_ = static_cast<std::uint32_t>(static_cast<std::ptrdiff_t>(slot_) + n); }
  std::ptrdiff_t distance_to(const child_edge_iterator& o) const {
    return static_cast<std::ptrdiff_t>(o.slot_) - static_cast<std::ptrdiff_t>(slot_);
  }
  gate_id source_{0};
  std::uint32_t slot_ = 0;
};

}  // namespace detail

/// vertex_index: gate id → its number, for Boost's color and distance maps.
struct gate_index_map {
  using key_type = gate_id;
  using value_type = std::uint32_t;
  using reference = std::uint32_t;
  using category = boost::readable_property_map_tag;
};
inline std::uint32_t get(gate_index_map, gate_id g) noexcept { return to_index(g); }

// ---- VertexListGraph ------------------------------------------------------------------------
inline std::pair<detail::gate_iterator, detail::gate_iterator> vertices(const circuit& c) {
  return {detail::gate_iterator(0), detail::gate_iterator(static_cast<std::uint32_t>(c.size()))};
}
inline std::size_t num_vertices(const circuit& c) { return c.size(); }

// ---- IncidenceGraph -------------------------------------------------------------------------
inline std::pair<detail::child_edge_iterator, detail::child_edge_iterator> out_edges(gate_id g, const circuit& c) {
  const auto ch = c.children(g);
  const auto first = static_cast<std::uint32_t>(ch.data() - c.raw_children().data());
  if (ch.empty()) return {detail::child_edge_iterator(g, 0), detail::child_edge_iterator(g, 0)};
  return {detail::child_edge_iterator(g, first),
          detail::child_edge_iterator(g, first + static_cast<std::uint32_t>(ch.size()))};
}
inline std::uint32_t out_degree(gate_id g, const circuit& c) { return static_cast<std::uint32_t>(c.children(g).size()); }
inline gate_id source(const circuit_edge& e, const circuit&) { return e.source; }
inline gate_id target(const circuit_edge& e, const circuit& c) { return c.raw_children()[e.slot]; }

// ---- AdjacencyGraph -------------------------------------------------------------------------
inline std::pair<const gate_id*, const gate_id*> adjacent_vertices(gate_id g, const circuit& c) {
  const auto ch = c.children(g);
  return {ch.data(), ch.data() + ch.size()};
}

inline gate_index_map get(boost::vertex_index_t, const circuit&) { return {}; }
inline std::uint32_t get(boost::vertex_index_t, const circuit&, gate_id g) { return to_index(g); }

}  // namespace provnn

namespace boost {

template <>
struct graph_traits<provnn::circuit> {
  using vertex_descriptor = provnn::gate_id;
  using edge_descriptor = provnn::circuit_edge;
  using directed_category = directed_tag;
  using edge_parallel_category = allow_parallel_edge_tag;
  struct traversal_category : incidence_graph_tag, adjacency_graph_tag, vertex_list_graph_tag {};
  using vertex_iterator = provnn::detail::gate_iterator;
  using out_edge_iterator = provnn::detail::child_edge_iterator;
  using adjacency_iterator = const provnn::gate_id*;
  using in_edge_iterator = void;
  using edge_iterator = void;
  using degree_size_type = std::uint32_t;
  using vertices_size_type = std::size_t;
  using edges_size_type = std::size_t;
  static vertex_descriptor null_vertex() { return provnn::gate_id{0xFFFFFFFFu}; }
};

template <>
struct property_map<provnn::circuit, vertex_index_t> {
  using type = provnn::gate_index_map;
  using const_type = provnn::gate_index_map;
};

}  // namespace boost
