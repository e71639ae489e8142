#include "circuits/circuit.hpp"

#include <doctest/doctest.h>

#include <vector>

#include "circuits/file_format.hpp"
#include "common/error.hpp"

using namespace provnn;

namespace {
struct fixture {
  circuit c;
  gate_id x, y, z;
  fixture() {
    auto& tt = c.tokens();
    x = c.token(tt.intern(token_kind::input, token_variant::plain, 0, {0}));
    y = c.token(tt.intern(token_kind::input, token_variant::plain, 0, {1}));
    z = c.token(tt.intern(token_kind::input, token_variant::plain, 0, {2}));
  }
};
}  // namespace

TEST_CASE("a new circuit holds the constants zero and one") {
  circuit c;
  CHECK(c.size() == 2);
  CHECK(c.kind(zero_gate) == gate_kind::zero);
  CHECK(c.kind(one_gate) == gate_kind::one);
  CHECK(c.children(zero_gate).empty());
  CHECK(c.child_count() == 0);
}

TEST_CASE("token gates: one per token, reading back the token") {
  fixture f;
  CHECK(f.c.size() == 5);
  CHECK(f.c.token(1) == f.y);
  CHECK(f.c.size() == 5);
  CHECK(f.c.kind(f.y) == gate_kind::token);
  CHECK(f.c.token_of(f.y) == 1);
  CHECK(f.c.children(f.y).empty());
  CHECK(f.c.find_token_gate(2) == f.z);
  f.c.tokens().intern(token_kind::input, token_variant::plain, 0, {9});
  CHECK_FALSE(f.c.find_token_gate(3).has_value());
}

TEST_CASE("token gates of singles and of block tokens, and blocks without gates cost the index nothing") {
  circuit c;
  auto& tt = c.tokens();
  const auto a = tt.intern(token_kind::input, token_variant::plain, 0, {0});
  const std::uint32_t shape[] = {1000, 1000};
  const auto first = tt.add_block(token_kind::parameter, token_variant::plain, 1, shape);
  const auto b = tt.intern(token_kind::activation, token_variant::plain, 1, {5});
  const auto before = c.bytes();
  const auto ga = c.token(a), gb = c.token(b);
  // Two single tokens indexed: a few bytes, not 4 per token of the million-token block.
  CHECK(c.bytes() - before < 4096);
  CHECK(c.find_token_gate(a) == ga);
  CHECK(c.find_token_gate(b) == gb);
  CHECK_FALSE(c.find_token_gate(first + 7).has_value());
  // A block token can still become a gate (the plain layout's parameters do), found again.
  const auto gw = c.token(first + 999'999);
  CHECK(c.token(first + 999'999) == gw);
  CHECK(c.token_of(gw) == first + 999'999);
  CHECK(c.find_token_gate(first + 999'999) == gw);
  CHECK_FALSE(c.find_token_gate(first + 999'998).has_value());
  CHECK(c.find_token_gate(b) == gb);
  CHECK(c.token(a) == ga);
  CHECK(c.child_count() == 0);
  // Loading rebuilds the index: the same gates are found, and token() makes no duplicate.
  const auto back = deserialize_circuit(serialize_circuit(c), "<test>");
  CHECK(back.find_token_gate(first + 999'999) == gw);
  CHECK(back.find_token_gate(b) == gb);
  CHECK_FALSE(back.find_token_gate(first).has_value());
  auto copy = back;
  CHECK(copy.token(a) == ga);
  CHECK(copy.size() == c.size());
}

TEST_CASE("structural hashing shares identical gates, child order does not matter") {
  fixture f;
  auto& c = f.c;
  const auto a = c.plus({f.x, f.y, f.z});
  const auto before = c.size();
  CHECK(c.plus({f.z, f.x, f.y}) == a);
  CHECK(c.plus({f.y, f.z, f.x}) == a);
  CHECK(c.size() == before);
  CHECK(c.times({f.x, f.y, f.z}) != a);  // different kind
  const auto m = c.times({f.y, f.x});
  CHECK(c.times({f.x, f.y}) == m);
  // A multiset: repeated children count.
  const auto xx = c.plus({f.x, f.x});
  CHECK(xx != f.x);
  CHECK(c.plus({f.x, f.x}) == xx);
  CHECK(c.plus({f.x, f.x, f.x}) != xx);
  CHECK(c.children(xx).size() == 2);
  // Shared sub-circuits compose: the same expression built twice is one gate.
  auto build = [&] { return c.plus({c.times({f.x, f.y}), c.times({f.y, f.z})}); };
  const auto e1 = build();
  const auto n = c.size();
  CHECK(build() == e1);
  CHECK(c.size() == n);
  // Children come before parents.
  for (std::uint32_t g = 0; g < c.size(); ++g)
    for (auto ch : c.children(gate_id{g})) CHECK(to_index(ch) < g);
}

TEST_CASE("simplifications valid in every semiring") {
  fixture f;
  auto& c = f.c;
  CHECK(c.plus({}) == zero_gate);
  CHECK(c.times({}) == one_gate);
  CHECK(c.plus({f.x}) == f.x);
  CHECK(c.plus({f.x, zero_gate}) == f.x);
  CHECK(c.plus({zero_gate, zero_gate}) == zero_gate);
  CHECK(c.times({f.x, one_gate}) == f.x);
  CHECK(c.times({f.x, zero_gate, f.y}) == zero_gate);
  CHECK(c.times({one_gate, one_gate}) == one_gate);
  CHECK(c.plus({f.x, zero_gate, f.y}) == c.plus({f.y, f.x}));
  // x ⊕ 1 is not simplified (not idempotent in general), nor x ⊗ x.
  CHECK(c.kind(c.plus({f.x, one_gate})) == gate_kind::plus);
  CHECK(c.kind(c.times({f.x, f.x})) == gate_kind::times);
  CHECK(c.size() == 8);  // 2 constants, 3 tokens, x⊕y, x⊕1, x⊗x
}

TEST_CASE("edge gates are never shared nor simplified, and keep their context") {
  fixture f;
  auto& c = f.c;
  const edge_context ctx1{1, 0, 3, 0, 1}, ctx2{1, 1, 3, 0, 1};
  const auto e1 = c.edge({f.x, f.y}, ctx1);
  const auto e2 = c.edge({f.x, f.y}, ctx2);
  const auto e3 = c.edge({one_gate}, ctx2);
  CHECK(e1 != e2);
  CHECK(c.kind(e3) == gate_kind::times);
  CHECK(c.children(e3).size() == 1);
  CHECK(c.times({f.x, f.y}) != e1);  // a plain product is a different gate
  REQUIRE(c.edge_gates().size() == 3);
  CHECK(c.edge_gates()[1] == e2);
  CHECK(c.edge_contexts()[0] == ctx1);
  CHECK(c.edge_index(e2) == 1u);
  CHECK_FALSE(c.edge_index(f.x).has_value());
}

TEST_CASE("sharing can be switched off, and simplifications stay") {
  fixture f;
  f.c.set_sharing(false);
  const auto a = f.c.plus({f.x, f.y});
  CHECK(f.c.plus({f.x, f.y}) != a);
  CHECK(f.c.plus({f.x, zero_gate}) == f.x);
}

TEST_CASE("roots and metadata") {
  fixture f;
  auto& c = f.c;
  const auto g = c.plus({f.x, f.y});
  c.add_root({"R(x[0])", g, root_kind::feature, 0, 0, no_target});
  c.add_root({"R(b1[3])", f.z, root_kind::bias, 1, 3, 7});
  CHECK(c.roots().size() == 2);
  REQUIRE(c.find_root("R(b1[3])") != nullptr);
  CHECK(c.find_root("R(b1[3])")->target == 7);
  CHECK(c.find_root("R(x[0])")->gate == g);
  CHECK(c.find_root("nope") == nullptr);
  CHECK_THROWS_WITH_AS(c.add_root({"R(x[0])", f.x}), doctest::Contains("'R(x[0])' exists already"), provnn::error);
  c.metadata()["model"] = "digits.onnx";
  c.metadata()["rule"] = "epsilon:0.25";
  CHECK(c.metadata().begin()->first == "model");
  CHECK(c.bytes() > 0);
}

TEST_CASE("stats count gates, edges and tokens by kind") {
  fixture f;
  auto& c = f.c;
  const auto w = c.token(c.tokens().intern(token_kind::parameter, token_variant::plain, 1, {0, 0}));
  const auto e = c.edge({f.x, w}, {1, 0, 0, 0, c.token_of(w)});
  c.plus({c.times({e, f.y}), f.z});
  const auto s = stats(c);
  CHECK(s.gates == c.size());
  CHECK(s.gates_by_kind[static_cast<int>(gate_kind::token)] == 4);
  CHECK(s.gates_by_kind[static_cast<int>(gate_kind::times)] == 2);
  CHECK(s.gates_by_kind[static_cast<int>(gate_kind::plus)] == 1);
  CHECK(s.gates_by_kind[static_cast<int>(gate_kind::zero)] == 1);
  CHECK(s.edge_gates == 1);
  CHECK(s.child_references == 2 + 2 + 2);
  CHECK(s.tokens_by_kind[static_cast<int>(token_kind::input)] == 3);
  CHECK(s.tokens_by_kind[static_cast<int>(token_kind::parameter)] == 1);
  CHECK(s.bytes > 0);
}

TEST_CASE("limits: the gate limit stops appends with limit_error and leaves a valid circuit") {
  circuit c;
  const auto x = c.tokens().intern(token_kind::input, token_variant::plain, 0, std::vector<std::uint32_t>{0});
  const auto y = c.tokens().intern(token_kind::input, token_variant::plain, 0, std::vector<std::uint32_t>{1});
  c.set_limits({.max_gates = 5});
  const gate_id gx = c.token(x), gy = c.token(y);  // gates 2, 3
  const gate_id s = c.plus({gx, gy});             // gate 4: the fifth
  CHECK(c.size() == 5);
  try {
    (void)c.times({gx, gy});
    FAIL("no limit_error");
  } catch (const limit_error& e) {
    CHECK(std::string(e.what()).find("max_gates = 5") != std::string::npos);
  }
  CHECK(c.size() == 5);
  CHECK(c.plus({gy, gx}) == s);  // shared gates still found: no new gate needed
  c.reserve(1000, 1000);          // a hint: clamped to the limit, never an error
  CHECK_THROWS_AS((void)c.times({gx, gy}), limit_error);
  // The ids cap the limit whatever is asked.
  c.set_limits({.max_gates = std::size_t{1} << 40});
  CHECK(c.limits().max_gates == 0xFFFFFFFEu);
}

TEST_CASE("limits: the memory limit is checked before an array grows, so held bytes never exceed it") {
  circuit c;
  const auto x = c.tokens().intern(token_kind::input, token_variant::plain, 0, std::vector<std::uint32_t>{0});
  const gate_id gx = c.token(x);
  const std::size_t budget = 256 * 1024;
  c.set_limits({.max_bytes = budget});
  CHECK(c.fits_memory(0));
  CHECK(c.fits_memory(budget - c.bytes() - c.tokens().bytes()));  // exactly the room left
  CHECK_FALSE(c.fits_memory(budget - c.bytes() - c.tokens().bytes() + 1));
  // reserve() is a hint: room above the budget is not reserved (and is no error).
  const std::size_t before = c.bytes();
  c.reserve(1'000'000, 1'000'000);
  CHECK(c.bytes() == before);
  // Appending edge gates until the limit: the throw comes before the growth that would
  // cross the budget, and the circuit holds all the gates it accepted.
  std::size_t made = 0;
  try {
    for (std::uint32_t i = 0; i < 10'000'000; ++i) {
      (void)c.edge({gx, gx}, edge_context{0, i, 0, 0, no_token});
      ++made;
      REQUIRE(c.bytes() + c.tokens().bytes() <= budget);
    }
    FAIL("no limit_error");
  } catch (const limit_error& e) {
    CHECK(std::string(e.what()).find("max_memory = 256.0 KiB") != std::string::npos);
  }
  CHECK(made > 1000);  // the budget was used, not refused at the first gate
  CHECK(c.bytes() + c.tokens().bytes() <= budget);
  CHECK(c.edge_gates().size() == made);
  CHECK(c.size() == 3 + made);
}

TEST_CASE("reserve: a growing hint grows by half at least where the budget holds that room twice, else exactly") {
  // bytes() counts capacities: 1 byte per gate kind, 4 per gate offset (gates + 1), 4 per
  // child reference. Sharing off: no hash table enters the count.
  const auto arena = [](const circuit& c) { return c.bytes(); };
  {
    circuit c;
    c.set_sharing(false);
    c.reserve(10'000, 40'000);
    const std::size_t b1 = arena(c);
    c.reserve(10'001, 40'001);  // just past the capacity: by half, not by one
    CHECK(arena(c) - b1 == 5'000 + 4 * 5'000 + 4 * 20'000);
    const std::size_t b2 = arena(c);
    c.reserve(14'000, 50'000);  // within the new capacity: nothing
    CHECK(arena(c) == b2);
    c.reserve(30'000, 61'000);  // gates: the hint, larger than half again; references: by half
    CHECK(arena(c) - b2 == (30'000 - 15'000) + 4 * (30'000 - 15'000) + 4 * (90'000 - 60'000));
  }
  {
    circuit c;
    c.set_sharing(false);
    c.reserve(10'000, 40'000);
    const std::size_t b1 = arena(c);
    const std::size_t exact = 1 + 4 + 4 * 1;  // one more gate and reference: new buffers of
    const std::size_t new_exact = 10'001 + 4 * 10'002 + 4 * 40'001;  // these sizes are counted
    const std::size_t new_grown = 15'000 + 4 * 15'001 + 4 * 60'000;
    // A budget that holds the grown buffers once but not their spare room twice: exact.
    c.set_limits({.max_bytes = b1 + c.tokens().bytes() + new_grown + (new_grown - new_exact) - 1});
    c.reserve(10'001, 40'001);
    CHECK(arena(c) - b1 == exact);
    // No room even for the exact buffers: nothing reserved, and no error.
    const std::size_t b2 = arena(c);
    c.set_limits({.max_bytes = b2 + c.tokens().bytes() + 10});
    c.reserve(10'002, 40'002);
    CHECK(arena(c) == b2);
    // Room for the spare twice over: by half.
    c.set_limits({});
    c.reserve(10'002, 40'002);
    CHECK(arena(c) - b2 == (15'001 - 10'001) + 4 * (15'001 - 10'001) + 4 * (60'001 - 40'001));
  }
}

TEST_CASE("shrink_to_fit gives back reserved room, and gates, sharing and token look-ups still work") {
  circuit c;
  c.reserve(100'000, 400'000);
  c.tokens().reserve(50'000, 200'000);
  std::vector<gate_id> xs;
  for (std::uint32_t i = 0; i < 100; ++i)
    xs.push_back(c.token(c.tokens().intern(token_kind::input, token_variant::plain, 0, {i})));
  const auto p = c.plus({xs[3], xs[4]});
  const auto t = c.times({xs[5], xs[6], xs[7]});
  const auto before = c.bytes() + c.tokens().bytes();
  REQUIRE(before > 2'000'000);  // the reservations: ≥ 100 000 gates × 5 bytes + 400 000 refs × 4
  c.shrink_to_fit();
  const auto after = c.bytes() + c.tokens().bytes();
  CHECK(after < 20'000);  // ≈ 100 tokens and gates
  CHECK(c.plus({xs[4], xs[3]}) == p);  // still found by structure
  CHECK(c.times({xs[7], xs[5], xs[6]}) == t);
  CHECK(c.tokens().find(token_kind::input, token_variant::plain, 0, std::vector<std::uint32_t>{42}) ==
        c.token_of(xs[42]));
  CHECK(c.token(c.token_of(xs[99])) == xs[99]);
  const auto size = c.size();
  const auto q = c.plus({xs[1], xs[2]});  // growing again after the shrink
  CHECK(c.size() == size + 1);
  CHECK(c.children(q).size() == 2);
}
