// PNG images in (network inputs) and out (heatmaps), through libpng.
//
// Reading keeps the stored sample values (no gamma or colour-space conversion, as NumPy/PIL
// users expect): palette images are expanded to RGB, low bit depths to 8 bits, 16-bit samples
// are read as such; an alpha channel is dropped. A sample s of bit depth d becomes
// s / (2^d − 1) · scale + offset, so [0, 1] by default.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/network.hpp"

namespace provnn::engine {

struct png_read_options {
  double scale = 1.0;   ///< multiplies the [0, 1] value
  double offset = 0.0;  ///< added after scaling
};

struct png_image_data {
  std::size_t channels = 0, height = 0, width = 0;  ///< channels is 1 (grey) or 3 (RGB)
  std::vector<double> data;                         ///< (channels, height, width), C order
  shape_t shape() const { return {channels, height, width}; }
};

/// Largest image read: width × height pixels (limit_error beyond).
inline constexpr std::size_t max_png_pixels = 100'000'000;

/// Decodes the bytes of a PNG file. Complexity: linear in the pixels.
/// Throws parse_error naming source_name and libpng's reason (corrupt, truncated, not a PNG),
/// limit_error past max_png_pixels.
png_image_data parse_png(std::string_view bytes, std::string_view source_name, const png_read_options& options = {});

/// Reads a PNG file; throws io_error when it cannot be read, and as parse_png.
png_image_data read_png(const std::filesystem::path& path, const png_read_options& options = {});

/// Fits an image to a network input shape S:
/// - S = (C, H, W) with the image's H × W: C equal to the image's channels is taken as is; an
///   RGB image fed to a 1-channel network becomes its luminance Y = 0.299 R + 0.587 G + 0.114 B
///   (ITU-R BT.601, as PIL's convert("L")); a grey image fed to a 3-channel network is
///   replicated in each channel;
/// - S = (H, W), or S = (H·W) (an MLP on flattened pixels): grey, or the luminance of RGB;
/// - S = (3·H·W) with an RGB image: the (3, H, W) array flattened.
/// Throws error naming both shapes when none applies.
std::vector<double> png_to_input(const png_image_data& image, const shape_t& input_shape, std::string_view source_name);

/// The bytes of an 8-bit RGB PNG of width × height pixels; rgb holds 3·width·height bytes, row by
/// row. Throws error when the sizes disagree or are zero.
std::string encode_png_rgb8(std::size_t width, std::size_t height, std::span<const std::uint8_t> rgb);

/// Writes encode_png_rgb8(...) to path with write_file_atomically (io_error on failure).
void write_png_rgb8(const std::filesystem::path& path, std::size_t width, std::size_t height,
                    std::span<const std::uint8_t> rgb);

namespace detail {
/// General encoder (tests use it to make every kind of input): color_type is a libpng
/// PNG_COLOR_TYPE_* value, bit_depth 1–16, samples one value per channel per pixel (palette
/// indices for palette images), palette RGB triples.
std::string encode_png(std::size_t width, std::size_t height, int color_type, int bit_depth,
                       const std::vector<std::uint16_t>& samples, const std::vector<std::uint8_t>& palette_rgb = {});
}  // namespace detail

}  // namespace provnn::engine
