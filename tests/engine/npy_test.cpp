// .npy reading and writing: hand-made headers for every dtype and version, every refusal,
// a round trip, and sample selection.
#include "engine/npy.hpp"

#include <doctest/doctest.h>

#include <cstring>

#include "common/error.hpp"
#include "tests/engine/engine_test_util.hpp"

namespace provnn::engine {
namespace {

// A .npy file with the given header dict and data bytes, built by hand (not with npy_bytes).
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 16 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  const std::size_t len = header.size();
  for (std::size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  return out + header + data;
}

template <class T>
std::string le_bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

}  // namespace

TEST_CASE("npy: every supported dtype, with hand-made headers") {
  const std::vector<double> expect = {1, -2, 3, 100, 0, 7};
  const std::string shape = "'shape': (2, 3), }";
  auto check = [&](const std::string& descr, const std::string& data, std::vector<double> want) {
    CAPTURE(descr);
    const auto a = parse_npy(make_npy("{'descr': '" + descr + "', 'fortran_order': False, " + shape, data), "t.npy");
    CHECK(a.shape == shape_t{2, 3});
    CHECK(a.data == want);
  };
  check("<f4", le_bytes(std::vector<float>{1, -2, 3, 100, 0, 7}), expect);
  check("<f8", le_bytes(std::vector<double>{1, -2, 3, 100, 0, 7}), expect);
  check("<i4", le_bytes(std::vector<std::int32_t>{1, -2, 3, 100, 0, 7}), expect);
  check("<i8", le_bytes(std::vector<std::int64_t>{1, -2, 3, 100, 0, 7}), expect);
  check("|u1", le_bytes(std::vector<std::uint8_t>{1, 254, 3, 100, 0, 255}), {1, 254, 3, 100, 0, 255});
  check("<u1", le_bytes(std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}), {1, 2, 3, 4, 5, 6});
}

TEST_CASE("npy: versions 2.0 and 3.0, key order, scalars and 1-D shapes") {
  const std::string data = le_bytes(std::vector<double>{1.5, 2.5});
  for (int major : {2, 3}) {
    const auto a =
        parse_npy(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", data, major), "v.npy");
    CHECK(a.shape == shape_t{2});
    CHECK(a.data == std::vector<double>{1.5, 2.5});
  }
  const auto b = parse_npy(make_npy("{'shape': (1, 2), 'fortran_order': False, 'descr': '<f8'}", data), "o.npy");
  CHECK(b.shape == shape_t{1, 2});
  const auto s = parse_npy(
      make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", le_bytes(std::vector<double>{4})), "s.npy");
  CHECK(s.shape.empty());
  CHECK(s.data == std::vector<double>{4});
  const auto e = parse_npy(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", ""), "e.npy");
  CHECK(e.shape == shape_t{0, 3});
  CHECK(e.data.empty());
}

TEST_CASE("npy: refusals name the file and the problem") {
  const std::string d6 = le_bytes(std::vector<double>(6, 1.0));
  auto hdr = [](const std::string& descr, const std::string& fortran, const std::string& shape) {
    return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  };
  test::check_throws_with<unsupported_error>([&] { parse_npy(make_npy(hdr("<f8", "True", "(2, 3)"), d6), "f.npy"); },
                                             {"f.npy", "Fortran"});
  test::check_throws_with<unsupported_error>([&] { parse_npy(make_npy(hdr(">f8", "False", "(2, 3)"), d6), "b.npy"); },
                                             {"b.npy", "big-endian", ">f8"});
  test::check_throws_with<unsupported_error>([&] { parse_npy(make_npy(hdr("<c16", "False", "(3,)"), d6), "c.npy"); },
                                             {"c.npy", "<c16", "float64"});
  test::check_throws_with<unsupported_error>([&] { parse_npy(make_npy(hdr("<f2", "False", "(2, 3)"), d6), "h.npy"); },
                                             {"<f2"});
  test::check_throws_with<parse_error>(
      [&] { parse_npy(make_npy(hdr("<f8", "False", "(2, 3)"), d6.substr(0, 40)), "t.npy"); },
      {"t.npy", "needs 48", "holds 40", "truncated"});
  test::check_throws_with<parse_error>([&] { parse_npy(make_npy(hdr("<f8", "False", "(2, 3)"), d6 + "xx"), "x.npy"); },
                                       {"trailing"});
  // A shape announcing terabytes in a tiny file is refused before any allocation.
  test::check_throws_with<parse_error>(
      [&] { parse_npy(make_npy(hdr("<f8", "False", "(1000000, 1000000)"), d6), "big.npy"); }, {"big.npy", "needs"});
  test::check_throws_with<parse_error>(
      [&] { parse_npy(make_npy(hdr("<f8", "False", "(99999999999999999999, 2)"), d6), "ovf.npy"); }, {"too large"});
  test::check_throws_with<parse_error>([&] { parse_npy("PK\x03\x04 not numpy", "zip.npy"); }, {"zip.npy", "magic"});
  test::check_throws_with<parse_error>([&] { parse_npy(make_npy("{'descr': '<f8', 'shape': (6,)}", d6), "k.npy"); },
                                       {"k.npy", "lacks"});
  test::check_throws_with<parse_error>(
      [&] { parse_npy(make_npy("{'descr': '<f8', 'fortran_order': Maybe, 'shape': (6,)}", d6), "m.npy"); },
      {"m.npy", "True or False"});
  std::string v9 = make_npy(hdr("<f8", "False", "(6,)"), d6);
  v9[6] = 9;
  test::check_throws_with<parse_error>([&] { parse_npy(v9, "v9.npy"); }, {"version 9.0"});
  // Header length beyond the end of the file.
  std::string cut = make_npy(hdr("<f8", "False", "(6,)"), "");
  test::check_throws_with<parse_error>([&] { parse_npy(cut.substr(0, 20), "cut.npy"); }, {"cut.npy", "header"});
  // Every prefix of a valid file fails cleanly.
  const std::string ok = make_npy(hdr("<f8", "False", "(6,)"), d6);
  for (std::size_t len = 0; len < ok.size(); ++len) CHECK_THROWS_AS(parse_npy(ok.substr(0, len), "p.npy"), parse_error);
}

TEST_CASE("npy: write then read back, through a file") {
  const auto dir = test::scratch_dir("npy_roundtrip");
  const std::vector<double> v = {0.1, -1e300, 3.5e-310, 42, -0.0, 1.0 / 3};
  for (const shape_t& s : {shape_t{6}, shape_t{2, 3}, shape_t{1, 2, 3, 1}}) {
    write_npy(dir / "r.npy", s, v);
    const auto a = read_npy(dir / "r.npy");
    CHECK(a.shape == s);
    CHECK(std::memcmp(a.data.data(), v.data(), v.size() * sizeof(double)) == 0);  // bit-exact, -0.0 included
    const std::string bytes = test::read_bytes(dir / "r.npy");
    CHECK((bytes.size() - v.size() * 8) % 64 == 0);  // data 64-byte aligned, as NumPy writes it
  }
  write_npy(dir / "s.npy", {}, std::vector<double>{2.0});
  CHECK(read_npy(dir / "s.npy").shape.empty());
  CHECK_THROWS_AS(write_npy(dir / "bad.npy", {2, 2}, v), error);
  CHECK_FALSE(std::filesystem::exists(dir / "bad.npy"));
  test::check_throws_with<io_error>([&] { read_npy(dir / "missing.npy"); }, {"missing.npy"});
  test::check_throws_with<io_error>([&] { read_npy(dir); }, {"directory"});
}

TEST_CASE("npy: select_sample matches S, (N, …S), and ignores size-1 axes") {
  npy_array one{{1, 8, 8}, std::vector<double>(64)};
  for (std::size_t i = 0; i < 64; ++i) one.data[i] = static_cast<double>(i);
  CHECK(select_sample(one, {1, 8, 8}, std::nullopt, "a.npy") == one.data);
  // Same element count but a different arrangement is not guessed: the user reshapes.
  test::check_throws_with<error>([&] { select_sample(one, {64}, std::nullopt, "a.npy"); }, {"(1, 8, 8)", "(64,)"});
  CHECK(select_sample(one, {8, 8}, 0, "a.npy") == one.data);  // (1, 8, 8) is a batch of one (8, 8)

  npy_array batch{{3, 4}, {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}};
  CHECK(select_sample(batch, {4}, std::nullopt, "b.npy") == std::vector<double>{0, 1, 2, 3});
  CHECK(select_sample(batch, {4}, 2, "b.npy") == std::vector<double>{20, 21, 22, 23});
  CHECK(select_sample(batch, {1, 4}, 1, "b.npy") == std::vector<double>{10, 11, 12, 13});  // squeezed batch match
  CHECK(select_sample(batch, {3, 4}, std::nullopt, "b.npy") == batch.data);
  test::check_throws_with<error>([&] { select_sample(batch, {4}, 3, "b.npy"); }, {"b.npy", "index 3", "3 samples"});
  test::check_throws_with<error>([&] { select_sample(batch, {3, 4}, 1, "b.npy"); }, {"single sample"});
  test::check_throws_with<error>([&] { select_sample(batch, {5}, std::nullopt, "b.npy"); },
                                 {"b.npy", "(3, 4)", "(5,)"});
  npy_array sq{{8, 8}, std::vector<double>(64, 1.0)};
  CHECK(select_sample(sq, {1, 8, 8}, std::nullopt, "c.npy").size() == 64);
  npy_array many{{5, 8, 8}, std::vector<double>(320, 0.0)};
  many.data[4 * 64] = 9;
  CHECK(select_sample(many, {1, 8, 8}, 4, "d.npy")[0] == 9);
}

}  // namespace provnn::engine

// ---------------------------------------------------------------------------------------
// Bundled inputs (tests/data/inputs): each broken one gives its clear error; the good ones
// have the dtypes and shapes the manifest describes.

namespace provnn::engine {

TEST_CASE("npy: bundled inputs, good and broken") {
  const auto dir = test::data_dir() / "inputs";
  const auto u8 = read_npy(dir / "mlp_batch_u8.npy");
  CHECK(u8.shape == shape_t{4, 64});
  CHECK(*std::max_element(u8.data.begin(), u8.data.end()) == 16);  // raw sklearn values, read as is
  CHECK(read_npy(dir / "cnn_input_f64.npy").shape == shape_t{1, 8, 8});
  const auto i64 = read_npy(dir / "mlp_input_i64.npy");
  const auto f32 = read_npy(dir / "mlp_input_0.npy");
  REQUIRE(i64.data.size() == 64);
  for (std::size_t i = 0; i < 64; ++i) CHECK(i64.data[i] / 16 == doctest::Approx(f32.data[i]).epsilon(1e-7));

  test::check_throws_with<unsupported_error>([&] { read_npy(dir / "fortran_order.npy"); },
                                             {"fortran_order.npy", "Fortran"});
  test::check_throws_with<unsupported_error>([&] { read_npy(dir / "bad_dtype.npy"); }, {"bad_dtype.npy", "<c8"});
  test::check_throws_with<unsupported_error>([&] { read_npy(dir / "bad_dtype_str.npy"); },
                                             {"bad_dtype_str.npy", "<U1"});
  test::check_throws_with<parse_error>([&] { read_npy(dir / "truncated.npy"); }, {"truncated.npy", "truncated"});
  const auto wrong = read_npy(dir / "wrong_shape.npy");
  test::check_throws_with<error>([&] { select_sample(wrong, {64}, std::nullopt, "wrong_shape.npy"); },
                                 {"wrong_shape.npy", "(1, 63)", "(64,)"});
  // NaN is a valid .npy value; the forward pass refuses it (naming index 10), tested there.
  const auto nan = read_npy(dir / "nan_input.npy");
  CHECK(std::isnan(nan.data[10]));
}

}  // namespace provnn::engine
