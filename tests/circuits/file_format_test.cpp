#include "circuits/file_format.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "circuits/evaluate.hpp"
#include "common/error.hpp"
#include "layered.hpp"
#include "semirings/boolean.hpp"
#include "semirings/real.hpp"
#include "tests/common/pvc_bytes.hpp"

using namespace provnn;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t header_size = 80;

circuit sample_circuit() {
  std::mt19937 rng(17);
  auto net = provnn::testing::random_layered(rng, {4, 3, 2}, 0.8, 0.4);
  net.c.metadata()["model"] = "tests/digits.onnx";
  net.c.metadata()["rule"] = "epsilon:0.25";
  net.c.metadata()["empty"] = "";
  auto& tt = net.c.tokens();
  const auto b = tt.intern(token_kind::bias, token_variant::pos, 1, {2});
  tt.set_value(b, -0.125);
  // Last gate: a ⊕ (the invariant tests below edit its last child reference).
  const auto last = net.c.plus({net.c.token(b), net.feature_roots[0]});
  net.c.add_root({"R(b1[2])", last, root_kind::bias, 1, 2, 0});
  return std::move(net.c);
}

using test::read_u64;
using test::reseal;
using test::write_u32;
using test::write_u64;

// Start offset of each section, and the end.
std::vector<std::size_t> section_starts(const std::string& s) {
  std::vector<std::size_t> starts{header_size};
  for (int i = 0; i < 7; ++i) starts.push_back(starts.back() + read_u64(s, 24 + 8 * i));
  return starts;
}

void check_same(const circuit& a, const circuit& b) {
  REQUIRE(a.size() == b.size());
  CHECK(std::equal(a.raw_kinds().begin(), a.raw_kinds().end(), b.raw_kinds().begin()));
  CHECK(std::equal(a.raw_offsets().begin(), a.raw_offsets().end(), b.raw_offsets().begin()));
  CHECK(std::equal(a.raw_children().begin(), a.raw_children().end(), b.raw_children().begin()));
  REQUIRE(a.tokens().size() == b.tokens().size());
  for (token_index t = 0; t < a.tokens().size(); ++t) {
    CHECK(a.tokens().name(t) == b.tokens().name(t));
    CHECK(a.tokens().value(t) == b.tokens().value(t));
  }
  CHECK(std::equal(a.edge_gates().begin(), a.edge_gates().end(), b.edge_gates().begin(), b.edge_gates().end()));
  CHECK(std::equal(a.edge_contexts().begin(), a.edge_contexts().end(), b.edge_contexts().begin(),
                   b.edge_contexts().end()));
  CHECK(std::equal(a.roots().begin(), a.roots().end(), b.roots().begin(), b.roots().end()));
  CHECK(a.metadata() == b.metadata());
}

template <class F>
void check_refused(F&& f, const char* what) {
  INFO(what);
  try {
    f();
    FAIL("accepted a damaged file: ", what);
  } catch (const provnn::parse_error& e) {
    CHECK(std::string(e.what()).find("<test>") != std::string::npos);  // names the source
  }
}

}  // namespace

TEST_CASE("file format round trip: same circuit, same values, same bytes") {
  const auto c = sample_circuit();
  const auto bytes = serialize_circuit(c);
  const auto d = deserialize_circuit(bytes, "<test>");
  check_same(c, d);
  CHECK(serialize_circuit(d) == bytes);
  const auto r1 = evaluate(c, real_semiring{}), r2 = evaluate(d, real_semiring{});
  CHECK(r1 == r2);
  const auto b1 = evaluate(c, boolean_semiring{}), b2 = evaluate(d, boolean_semiring{});
  CHECK(b1 == b2);
  // The loaded circuit keeps growing like the original: hashing and token gates rebuilt.
  circuit e = deserialize_circuit(bytes, "<test>");
  for (std::uint32_t g = 0; g < e.size(); ++g) {
    const gate_id id{g};
    if (e.kind(id) == gate_kind::plus && !e.edge_index(id)) {
      const auto ch = e.children(id);
      std::vector<gate_id> copy(ch.begin(), ch.end());
      CHECK(e.plus(copy) == id);
    }
    if (e.kind(id) == gate_kind::token) CHECK(e.token(e.token_of(id)) == id);
  }
  CHECK(e.size() == c.size());
}

TEST_CASE("save_circuit writes atomically and load_circuit reads it back") {
  const auto dir = fs::temp_directory_path() / "provnn-tests" / "pvc";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto c = sample_circuit();
  const auto path = dir / "c.pvc";
  save_circuit(c, path);
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 1);  // no temporary left
  const auto d = load_circuit(path);
  check_same(c, d);
  CHECK_THROWS_AS(load_circuit(dir / "missing.pvc"), provnn::io_error);
  // A damaged file on disk is refused with its path in the message.
  std::string bytes = serialize_circuit(c);
  bytes[bytes.size() / 2] ^= 0x10;
  std::ofstream(dir / "bad.pvc", std::ios::binary) << bytes;
  CHECK_THROWS_WITH_AS(load_circuit(dir / "bad.pvc"), doctest::Contains("bad.pvc"), provnn::parse_error);
  // An empty circuit round-trips too.
  save_circuit(circuit{}, dir / "empty.pvc");
  CHECK(load_circuit(dir / "empty.pvc").size() == 2);
}

TEST_CASE("every flipped byte, in every section, is refused") {
  const auto bytes = serialize_circuit(sample_circuit());
  const auto starts = section_starts(bytes);
  REQUIRE(starts.back() + 4 == bytes.size());
  for (std::size_t i = 0; i + 1 < starts.size(); ++i) CHECK(starts[i + 1] > starts[i]);  // every section non-empty
  for (std::size_t pos = 0; pos < bytes.size(); ++pos)
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string damaged = bytes;
      damaged[pos] = static_cast<char>(damaged[pos] ^ mask);
      check_refused([&] { deserialize_circuit(damaged, "<test>"); }, "flipped byte");
    }
}

TEST_CASE("truncation at every section boundary and at every offset is refused") {
  const auto bytes = serialize_circuit(sample_circuit());
  for (auto boundary : section_starts(bytes)) {
    CHECK_THROWS_WITH_AS(deserialize_circuit(std::string_view(bytes).substr(0, boundary), "<test>"),
                         doctest::Contains("<test>"), provnn::parse_error);
  }
  for (std::size_t n = 0; n < bytes.size(); ++n)
    check_refused([&] { deserialize_circuit(std::string_view(bytes).substr(0, n), "<test>"); }, "truncated");
  check_refused([&] { deserialize_circuit(bytes + "x", "<test>"); }, "trailing byte");
}

TEST_CASE("foreign, newer-version and unknown-flag files are refused with a clear reason") {
  CHECK_THROWS_WITH_AS(deserialize_circuit("", "<test>"), doctest::Contains("not a provnn circuit file"),
                       provnn::parse_error);
  CHECK_THROWS_WITH_AS(deserialize_circuit("\x89PNG\r\n\x1a\n0000000000000000000000000000", "<test>"),
                       doctest::Contains("not a provnn circuit file"), provnn::parse_error);
  CHECK_THROWS_WITH_AS(deserialize_circuit("digraph circuit {}", "<test>"), doctest::Contains("not a provnn circuit file"),
                       provnn::parse_error);
  auto bytes = serialize_circuit(sample_circuit());
  auto newer = bytes;
  write_u32(newer, 8, pvc_format_version + 1);
  reseal(newer);
  CHECK_THROWS_WITH_AS(deserialize_circuit(newer, "<test>"), doctest::Contains("newer than this build"),
                       provnn::parse_error);
  auto flagged = bytes;
  write_u32(flagged, 12, 4);
  reseal(flagged);
  CHECK_THROWS_WITH_AS(deserialize_circuit(flagged, "<test>"), doctest::Contains("unknown flags"), provnn::parse_error);
}

TEST_CASE("content that passes the checksum is still validated against the circuit invariants") {
  const auto bytes = serialize_circuit(sample_circuit());
  const auto starts = section_starts(bytes);
  SUBCASE("a child after its parent") {
    auto d = bytes;
    write_u32(d, starts[4] - 4, 0x7FFFFFFF);  // the last child reference of the last gate
    reseal(d);
    CHECK_THROWS_WITH_AS(deserialize_circuit(d, "<test>"), doctest::Contains("must come before their parents"),
                         provnn::parse_error);
  }
  SUBCASE("an absurd record count is refused before allocating") {
    auto d = bytes;
    write_u64(d, starts[0], 1ull << 60);
    reseal(d);
    CHECK_THROWS_WITH_AS(deserialize_circuit(d, "<test>"), doctest::Contains("claims"), provnn::parse_error);
  }
  SUBCASE("an unknown gate kind") {
    auto d = bytes;
    d[starts[3] + 8 + 2] = 9;  // the kind byte of gate 2
    reseal(d);
    CHECK_THROWS_WITH_AS(deserialize_circuit(d, "<test>"), doctest::Contains("unknown to this build"),
                         provnn::parse_error);
  }
  SUBCASE("section sizes that do not add up") {
    auto d = bytes;
    write_u64(d, 24, read_u64(d, 24) + 1);
    reseal(d);
    CHECK_THROWS_AS(deserialize_circuit(d, "<test>"), provnn::parse_error);
  }
}
