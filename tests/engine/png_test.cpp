// PNG: every colour type and bit depth decoded to the stored sample values, the heatmap writer
// round trip, corrupt files as parse errors, and the mapping onto network input shapes.
#include <doctest/doctest.h>
#include <png.h>

#include "common/error.hpp"
#include "engine/png_io.hpp"
#include "tests/engine/engine_test_util.hpp"

namespace provnn::engine {

TEST_CASE("png: RGB heatmap writer round trip through a file") {
  const auto dir = test::scratch_dir("png_roundtrip");
  const std::size_t W = 5, H = 3;
  std::vector<std::uint8_t> rgb(3 * W * H);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>((i * 37) % 256);
  write_png_rgb8(dir / "h.png", W, H, rgb);
  const auto img = read_png(dir / "h.png");
  REQUIRE(img.shape() == shape_t{3, H, W});
  for (std::size_t y = 0; y < H; ++y)
    for (std::size_t x = 0; x < W; ++x)
      for (std::size_t c = 0; c < 3; ++c) CHECK(img.data[(c * H + y) * W + x] == rgb[(y * W + x) * 3 + c] / 255.0);
  CHECK_THROWS_AS(write_png_rgb8(dir / "bad.png", W, H, std::vector<std::uint8_t>(7)), error);
  CHECK_FALSE(std::filesystem::exists(dir / "bad.png"));
}

TEST_CASE("png: grey, grey+alpha, RGBA, palette, 1-bit and 16-bit keep their sample values") {
  SUBCASE("8-bit grey with scale and offset") {
    const auto bytes = detail::encode_png(3, 2, PNG_COLOR_TYPE_GRAY, 8, {0, 51, 255, 102, 204, 17});
    const auto img = parse_png(bytes, "g.png", {16.0, -1.0});
    CHECK(img.shape() == shape_t{1, 2, 3});
    CHECK(img.data == std::vector<double>{-1, 51 / 255.0 * 16 - 1, 15, 102 / 255.0 * 16 - 1, 204 / 255.0 * 16 - 1,
                                          17 / 255.0 * 16 - 1});
  }
  SUBCASE("16-bit grey") {
    const auto img = parse_png(detail::encode_png(2, 1, PNG_COLOR_TYPE_GRAY, 16, {65535, 258}), "g16.png");
    CHECK(img.data == std::vector<double>{1.0, 258 / 65535.0});
  }
  SUBCASE("1-bit grey expands to 0 and 1") {
    const auto img = parse_png(detail::encode_png(3, 1, PNG_COLOR_TYPE_GRAY, 1, {1, 0, 1}), "g1.png");
    CHECK(img.data == std::vector<double>{1, 0, 1});
  }
  SUBCASE("grey + alpha drops alpha") {
    const auto img = parse_png(detail::encode_png(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {10, 0, 20, 255}), "ga.png");
    CHECK(img.shape() == shape_t{1, 1, 2});
    CHECK(img.data == std::vector<double>{10 / 255.0, 20 / 255.0});
  }
  SUBCASE("16-bit RGBA drops alpha, no premultiplication") {
    const auto img =
        parse_png(detail::encode_png(1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16, {1000, 2000, 3000, 0}), "rgba.png");
    CHECK(img.shape() == shape_t{3, 1, 1});
    CHECK(img.data == std::vector<double>{1000 / 65535.0, 2000 / 65535.0, 3000 / 65535.0});
  }
  SUBCASE("palette expands to RGB") {
    const auto img =
        parse_png(detail::encode_png(2, 1, PNG_COLOR_TYPE_PALETTE, 8, {1, 0}, {255, 0, 0, 0, 128, 64}), "p.png");
    CHECK(img.shape() == shape_t{3, 1, 2});
    CHECK(img.data == std::vector<double>{0, 1, 128 / 255.0, 0, 64 / 255.0, 0});
  }
}

TEST_CASE("png: corrupt, truncated and non-PNG bytes are parse errors naming the file") {
  const std::string ok = detail::encode_png(4, 4, PNG_COLOR_TYPE_GRAY, 8, std::vector<std::uint16_t>(16, 7));
  CHECK_NOTHROW(parse_png(ok, "ok.png"));
  test::check_throws_with<parse_error>([&] { parse_png("GIF89a....", "a.gif"); }, {"a.gif", "not a PNG"});
  for (std::size_t len = 0; len < ok.size() - 12; ++len) {  // the last 12 bytes are IEND
    CAPTURE(len);
    CHECK_THROWS_AS(parse_png(ok.substr(0, len), "cut.png"), parse_error);
  }
  test::check_throws_with<parse_error>([&] { parse_png(ok.substr(0, ok.size() / 2), "cut.png"); },
                                       {"cut.png", "corrupt"});
  std::string flipped = ok;
  flipped[20] = static_cast<char>(flipped[20] ^ 0x40);  // inside IHDR: its CRC no longer matches
  test::check_throws_with<parse_error>([&] { parse_png(flipped, "crc.png"); }, {"crc.png"});
  const auto dir = test::scratch_dir("png_errors");
  test::check_throws_with<io_error>([&] { read_png(dir / "missing.png"); }, {"missing.png"});
}

TEST_CASE("png: images fit network input shapes") {
  png_image_data rgb{3, 1, 2, {1.0, 0.0, 0.0, 1.0, 0.0, 0.5}};  // R plane, G plane, B plane
  CHECK(png_to_input(rgb, {3, 1, 2}, "i.png") == rgb.data);
  const auto y = png_to_input(rgb, {1, 1, 2}, "i.png");
  CHECK(y[0] == doctest::Approx(0.299 * 1 + 0.587 * 0 + 0.114 * 0));
  CHECK(y[1] == doctest::Approx(0.299 * 0 + 0.587 * 1 + 0.114 * 0.5));
  CHECK(png_to_input(rgb, {2}, "i.png") == y);
  CHECK(png_to_input(rgb, {6}, "i.png") == rgb.data);
  png_image_data grey{1, 2, 2, {0.1, 0.2, 0.3, 0.4}};
  CHECK(png_to_input(grey, {4}, "g.png") == grey.data);
  CHECK(png_to_input(grey, {2, 2}, "g.png") == grey.data);
  CHECK(png_to_input(grey, {3, 2, 2}, "g.png").size() == 12);
  CHECK(png_to_input(grey, {3, 2, 2}, "g.png")[9] == 0.2);
  test::check_throws_with<error>([&] { png_to_input(grey, {1, 8, 8}, "g.png"); }, {"g.png", "2×2", "(1, 8, 8)"});
}

}  // namespace provnn::engine

// ---------------------------------------------------------------------------------------
// Bundled PNGs: the grey digit reads as the pixel/255 values the fixture script recorded; the
// RGB copy (three equal channels) gives the same values through luminance.

#include "engine/npy.hpp"

namespace provnn::engine {

TEST_CASE("png: bundled digit images read as the manifest's values") {
  const auto dir = test::data_dir() / "inputs";
  const auto expected = read_npy(dir / "digit_0_png_values.npy");
  const auto grey = read_png(dir / "digit_0.png");
  CHECK(grey.shape() == shape_t{1, 8, 8});
  CHECK(grey.data == expected.data);
  const auto rgb = read_png(dir / "digit_0_rgb.png");
  CHECK(rgb.shape() == shape_t{3, 8, 8});
  CHECK(test::scaled_error(png_to_input(rgb, {1, 8, 8}, "digit_0_rgb.png"), expected.data) < 1e-15);
  CHECK(png_to_input(grey, {64}, "digit_0.png") == expected.data);
}

}  // namespace provnn::engine
