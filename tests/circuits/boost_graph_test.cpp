#include "circuits/boost_graph.hpp"

#include <doctest/doctest.h>

#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/depth_first_search.hpp>
#include <boost/graph/graph_concepts.hpp>
#include <boost/graph/topological_sort.hpp>
#include <functional>
#include <iterator>
#include <random>
#include <vector>

#include "layered.hpp"

using namespace provnn;

BOOST_CONCEPT_ASSERT((boost::IncidenceGraphConcept<circuit>));
BOOST_CONCEPT_ASSERT((boost::VertexListGraphConcept<circuit>));
BOOST_CONCEPT_ASSERT((boost::AdjacencyGraphConcept<circuit>));
BOOST_CONCEPT_ASSERT((boost::ReadablePropertyMapConcept<gate_index_map, gate_id>));

namespace {
// Reference reachability, written directly against circuit::children().
std::vector<bool> reachable_from(const circuit& c, gate_id root) {
  std::vector<bool> seen(c.size(), false);
  std::function<void(gate_id)> visit = [&](gate_id g) {
    if (seen[to_index(g)]) return;
    seen[to_index(g)] = true;
    for (auto ch : c.children(g)) visit(ch);
  };
  visit(root);
  return seen;
}
}  // namespace

TEST_CASE("the circuit is a Boost graph: vertices, out-edges, adjacency") {
  circuit c;
  const auto t = c.tokens().intern(token_kind::input, token_variant::plain, 0, {0});
  const auto u = c.tokens().intern(token_kind::input, token_variant::plain, 0, {1});
  const auto x = c.token(t), y = c.token(u);
  const auto p = c.plus({x, y, y});
  CHECK(num_vertices(c) == 5);
  auto [vb, ve] = vertices(c);
  CHECK(std::distance(vb, ve) == 5);
  CHECK(*(vb + 4) == p);
  CHECK(out_degree(p, c) == 3);
  CHECK(out_degree(x, c) == 0);  // a token gate's slot is not an edge
  std::vector<gate_id> targets;
  auto [eb, ee] = out_edges(p, c);
  for (auto it = eb; it != ee; ++it) {
    CHECK(source(*it, c) == p);
    targets.push_back(target(*it, c));
  }
  CHECK(targets == std::vector<gate_id>{x, y, y});  // a repeated child is a parallel edge
  auto [ab, ae] = adjacent_vertices(p, c);
  CHECK(std::vector<gate_id>(ab, ae) == targets);
  CHECK(get(get(boost::vertex_index, c), p) == 4u);
}

TEST_CASE("Boost's topological_sort and breadth_first_search run on a built circuit") {
  std::mt19937 rng(5);
  auto net = provnn::testing::random_layered(rng, {4, 3, 3, 2}, 0.7, 0.3);
  const circuit& c = net.c;

  std::vector<gate_id> order;
  boost::topological_sort(c, std::back_inserter(order));  // throws not_a_dag on a cycle
  REQUIRE(order.size() == c.size());
  std::vector<std::size_t> pos(c.size());
  for (std::size_t i = 0; i < order.size(); ++i) pos[to_index(order[i])] = i;
  std::size_t edges = 0;
  for (std::uint32_t g = 0; g < c.size(); ++g)
    for (auto ch : c.children(gate_id{g})) {
      CHECK(pos[to_index(ch)] < pos[g]);  // Boost emits dependencies first
      ++edges;
    }
  CHECK(edges == c.child_count());

  for (auto root : net.feature_roots) {
    std::vector<boost::default_color_type> color(c.size(), boost::white_color);
    auto color_map = boost::make_iterator_property_map(color.begin(), get(boost::vertex_index, c));
    boost::breadth_first_search(c, root, boost::visitor(boost::default_bfs_visitor()).color_map(color_map));
    const auto expected = reachable_from(c, root);
    std::size_t reached = 0;
    for (std::uint32_t g = 0; g < c.size(); ++g) {
      CHECK((color[g] != boost::white_color) == expected[g]);
      reached += expected[g];
    }
    CHECK(reached > 1);

    std::vector<boost::default_color_type> color2(c.size(), boost::white_color);
    auto color_map2 = boost::make_iterator_property_map(color2.begin(), get(boost::vertex_index, c));
    boost::depth_first_visit(c, root, boost::default_dfs_visitor(), color_map2);
    for (std::uint32_t g = 0; g < c.size(); ++g) CHECK((color2[g] != boost::white_color) == expected[g]);
  }
}
