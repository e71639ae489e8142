#include "engine/png_io.hpp"

#include <fmt/format.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/atomic_file.hpp"
#include "common/error.hpp"

// libpng reports errors by longjmp. The functions that call setjmp below create no C++ object
// with a destructor after setjmp: every buffer lives in a context struct built beforehand, so
// a longjmp skips no destructor (which would be undefined behaviour).

namespace provnn::engine {
namespace {

struct read_ctx {
  const unsigned char* data = nullptr;
  std::size_t size = 0, pos = 0;
  char message[256] = {};
  std::vector<unsigned char> pixels;
  std::vector<png_bytep> rows;
  png_uint_32 width = 0, height = 0;
  int channels = 0, bit_depth = 0;
  bool too_large = false;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<read_ctx*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* ctx = static_cast<read_ctx*>(png_get_io_ptr(png));
  if (n > ctx->size - ctx->pos) png_error(png, "the file is truncated");
  std::memcpy(out, ctx->data + ctx->pos, n);
  ctx->pos += n;
}

// Returns false with ctx.message set on a libpng error.
bool decode(read_ctx& ctx) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  if (!png) {
    std::snprintf(ctx.message, sizeof ctx.message, "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(ctx.message, sizeof ctx.message, "out of memory");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &ctx, on_read);
  png_read_info(png, info);
  ctx.width = png_get_image_width(png, info);
  ctx.height = png_get_image_height(png, info);
  if (static_cast<std::size_t>(ctx.width) * ctx.height > max_png_pixels) {
    ctx.too_large = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_expand(png);  // palette → RGB, grey < 8 bits → 8 bits, tRNS → alpha
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  ctx.channels = png_get_channels(png, info);
  ctx.bit_depth = png_get_bit_depth(png, info);
  const std::size_t rowbytes = png_get_rowbytes(png, info);
  ctx.pixels.resize(rowbytes * ctx.height);
  ctx.rows.resize(ctx.height);
  for (std::size_t y = 0; y < ctx.height; ++y) ctx.rows[y] = ctx.pixels.data() + y * rowbytes;
  png_read_image(png, ctx.rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

struct write_ctx {
  std::string out;
  char message[256] = {};
  std::vector<unsigned char> pixels;
  std::vector<png_bytep> rows;
  std::vector<png_color> palette;
};

void on_write_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<write_ctx*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}
void on_write(png_structp png, png_bytep data, png_size_t n) {
  static_cast<write_ctx*>(png_get_io_ptr(png))->out.append(reinterpret_cast<const char*>(data), n);
}
void on_flush(png_structp) {}

bool encode(write_ctx& ctx, png_uint_32 width, png_uint_32 height, int color_type, int bit_depth) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_write_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, &ctx, on_write, on_flush);
  png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!ctx.palette.empty()) png_set_PLTE(png, info, ctx.palette.data(), static_cast<int>(ctx.palette.size()));
  png_write_info(png, info);
  if (bit_depth < 8) png_set_packing(png);
  png_write_image(png, ctx.rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

png_image_data parse_png(std::string_view bytes, std::string_view source, const png_read_options& options) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0)
    throw parse_error(fmt::format("{}: not a PNG file (bad signature)", source));
  read_ctx ctx;
  ctx.data = reinterpret_cast<const unsigned char*>(bytes.data());
  ctx.size = bytes.size();
  if (!decode(ctx)) {
    if (ctx.too_large)
      throw limit_error(fmt::format("{}: the image has {}×{} pixels, more than max_png_pixels = {}", source, ctx.width,
                                    ctx.height, max_png_pixels));
    throw parse_error(fmt::format("{}: corrupt PNG file: {}", source, ctx.message));
  }
  png_image_data img;
  const std::size_t c_in = static_cast<std::size_t>(ctx.channels);
  img.channels = c_in <= 2 ? 1 : 3;  // drop alpha
  img.height = ctx.height;
  img.width = ctx.width;
  const std::size_t plane = img.height * img.width;
  img.data.resize(img.channels * plane);
  const bool wide = ctx.bit_depth == 16;
  const double maxval = wide ? 65535.0 : 255.0;
  for (std::size_t y = 0; y < img.height; ++y)
    for (std::size_t x = 0; x < img.width; ++x)
      for (std::size_t c = 0; c < img.channels; ++c) {
        const unsigned char* p = ctx.rows[y] + (x * c_in + c) * (wide ? 2 : 1);
        const unsigned v = wide ? (unsigned{p[0]} << 8 | p[1]) : p[0];  // PNG stores 16-bit samples big-endian
        img.data[c * plane + y * img.width + x] = v / maxval * options.scale + options.offset;
      }
  return img;
}

png_image_data read_png(const std::filesystem::path& path, const png_read_options& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw io_error(fmt::format("{}: is a directory, not a PNG file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(fmt::format("{}: cannot open the PNG file", path.string()));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw io_error(fmt::format("{}: cannot read the PNG file", path.string()));
  return parse_png(bytes, path.string(), options);
}

std::vector<double> png_to_input(const png_image_data& img, const shape_t& s, std::string_view source) {
  const std::size_t plane = img.height * img.width;
  auto grey = [&] {
    if (img.channels == 1) return img.data;
    std::vector<double> y(plane);
    for (std::size_t i = 0; i < plane; ++i)
      y[i] = 0.299 * img.data[i] + 0.587 * img.data[plane + i] + 0.114 * img.data[2 * plane + i];
    return y;
  };
  if (s.size() == 3 && s[1] == img.height && s[2] == img.width) {
    if (s[0] == img.channels) return img.data;
    if (s[0] == 1) return grey();
    if (s[0] == 3 && img.channels == 1) {
      std::vector<double> r;
      for (int c = 0; c < 3; ++c) r.insert(r.end(), img.data.begin(), img.data.end());
      return r;
    }
  }
  if (s.size() == 2 && s[0] == img.height && s[1] == img.width) return grey();
  if (s.size() == 1 && s[0] == plane) return grey();
  if (s.size() == 1 && s[0] == 3 * plane && img.channels == 3) return img.data;
  throw error(
      fmt::format("{}: a {}-channel {}×{} image does not fit the network's input shape ({}); provnn maps "
                  "(C, H, W), (H, W) or flattened inputs of the image's size",
                  source, img.channels, img.height, img.width, fmt::join(s, ", ")));
}

namespace detail {
std::string encode_png(std::size_t width, std::size_t height, int color_type, int bit_depth,
                       const std::vector<std::uint16_t>& samples, const std::vector<std::uint8_t>& palette_rgb) {
  int channels = 0;
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
      channels = 1;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      channels = 2;
      break;
    case PNG_COLOR_TYPE_RGB:
      channels = 3;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      channels = 4;
      break;
    case PNG_COLOR_TYPE_PALETTE:
      channels = 1;
      break;
    default:
      throw error(fmt::format("encode_png: unknown color type {}", color_type));
  }
  if (width == 0 || height == 0 || width > 1u << 30 || height > 1u << 30 ||
      samples.size() != width * height * static_cast<std::size_t>(channels))
    throw error(fmt::format("encode_png: {} samples do not make a {}×{} image with {} channels", samples.size(), width,
                            height, channels));
  write_ctx ctx;
  for (std::size_t i = 0; i + 2 < palette_rgb.size(); i += 3)
    ctx.palette.push_back(png_color{palette_rgb[i], palette_rgb[i + 1], palette_rgb[i + 2]});
  // Samples are packed one per byte (bit depths below 8 are packed by png_set_packing).
  const std::size_t per_sample = bit_depth == 16 ? 2 : 1;
  const std::size_t rowbytes = width * static_cast<std::size_t>(channels) * per_sample;
  ctx.pixels.resize(rowbytes * height);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (per_sample == 2) {
      ctx.pixels[2 * i] = static_cast<unsigned char>(samples[i] >> 8);
      ctx.pixels[2 * i + 1] = static_cast<unsigned char>(samples[i] & 0xff);
    } else {
      ctx.pixels[i] = static_cast<unsigned char>(samples[i]);
    }
  }
  ctx.rows.resize(height);
  for (std::size_t y = 0; y < height; ++y) ctx.rows[y] = ctx.pixels.data() + y * rowbytes;
  if (!encode(ctx, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), color_type, bit_depth))
    throw error(fmt::format("cannot encode the PNG image: {}", ctx.message));
  return std::move(ctx.out);
}
}  // namespace detail

std::string encode_png_rgb8(std::size_t width, std::size_t height, std::span<const std::uint8_t> rgb) {
  if (rgb.size() != 3 * width * height)
    throw error(fmt::format("PNG writer: {} bytes do not make a {}×{} RGB image ({} bytes)", rgb.size(), width, height,
                            3 * width * height));
  return detail::encode_png(width, height, PNG_COLOR_TYPE_RGB, 8, std::vector<std::uint16_t>(rgb.begin(), rgb.end()));
}

void write_png_rgb8(const std::filesystem::path& path, std::size_t width, std::size_t height,
                    std::span<const std::uint8_t> rgb) {
  const std::string bytes = encode_png_rgb8(width, height, rgb);
  write_file_atomically(path, bytes);
}

}  // namespace provnn::engine
