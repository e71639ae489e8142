#include "cli/heatmap.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/error.hpp"
#include "engine/png_io.hpp"

namespace provnn::cli {

std::optional<plane> to_plane(const engine::shape_t& s, std::span<const double> values) {
  plane p;
  if (s.size() == 3) {
    p.height = s[1];
    p.width = s[2];
    p.values.assign(p.height * p.width, 0.0);
    for (std::size_t c = 0; c < s[0]; ++c)
      for (std::size_t i = 0; i < p.values.size(); ++i) p.values[i] += values[c * p.values.size() + i];
  } else if (s.size() == 2) {
    p.height = s[0];
    p.width = s[1];
    p.values.assign(values.begin(), values.end());
  } else if (s.size() == 1) {
    const auto side = static_cast<std::size_t>(std::llround(std::sqrt(static_cast<double>(s[0]))));
    if (side * side != s[0] || side < 2) return std::nullopt;
    p.height = p.width = side;
    p.values.assign(values.begin(), values.end());
  } else {
    return std::nullopt;
  }
  if (p.height == 0 || p.width == 0) return std::nullopt;
  return p;
}

void diverging_rgb(double v, unsigned char rgb[3]) noexcept {
  v = std::clamp(std::isfinite(v) ? v : 0.0, -1.0, 1.0);
  const auto fade = static_cast<unsigned char>(std::lround(255.0 * (1.0 - std::abs(v))));
  if (v >= 0) {
    rgb[0] = 255, rgb[1] = fade, rgb[2] = fade;
  } else {
    rgb[0] = fade, rgb[1] = fade, rgb[2] = 255;
  }
}

namespace {
double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m > 0.0 ? m : 1.0;
}
}  // namespace

void write_heatmap_png(const std::string& path, const engine::shape_t& s, std::span<const double> relevance,
                       std::span<const double> overlay) {
  const auto p = to_plane(s, relevance);
  if (!p) {
    throw error(fmt::format("cannot draw a heatmap of an input of shape ({}): it is not an image",
                            fmt::join(s, ", ")));
  }
  std::optional<plane> under;
  double under_max = 1.0;
  if (!overlay.empty()) {
    under = to_plane(s, overlay);
    if (under) {
      under_max = 0.0;
      for (double x : under->values) under_max = std::max(under_max, std::abs(x));
      if (under_max == 0.0) under_max = 1.0;
    }
  }
  const std::size_t scale = std::max<std::size_t>(1, (256 + p->width - 1) / p->width);
  const std::size_t W = p->width * scale, H = p->height * scale;
  const double m = max_abs(p->values);
  std::vector<std::uint8_t> rgb(W * H * 3);
  for (std::size_t y = 0; y < H; ++y) {
    for (std::size_t x = 0; x < W; ++x) {
      const std::size_t i = (y / scale) * p->width + (x / scale);
      unsigned char c[3];
      diverging_rgb(p->values[i] / m, c);
      for (int k = 0; k < 3; ++k) {
        double v = c[k];
        if (under) {  // multiply blend: dark strokes of the input stay visible under the colours
          const double g = 1.0 - 0.35 * std::clamp(under->values[i] / under_max, 0.0, 1.0);
          v *= g;
        }
        rgb[(y * W + x) * 3 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(std::lround(v));
      }
    }
  }
  engine::write_png_rgb8(path, W, H, rgb);
}

std::string terminal_heatmap(const engine::shape_t& s, std::span<const double> relevance, bool ansi) {
  const auto p = to_plane(s, relevance);
  if (!p || p->height > 64 || p->width > 64) return {};
  const double m = max_abs(p->values);
  std::string out;
  for (std::size_t y = 0; y < p->height; ++y) {
    out += "  ";
    for (std::size_t x = 0; x < p->width; ++x) {
      const double v = p->values[y * p->width + x] / m;
      if (ansi) {
        unsigned char c[3];
        diverging_rgb(v, c);
        out += fmt::format("\x1b[48;2;{};{};{}m  ", c[0], c[1], c[2]);
      } else {
        const double a = std::abs(v);
        out += a < 0.05 ? " ." : a < 0.33 ? (v > 0 ? "+ " : "- ") : a < 0.66 ? (v > 0 ? "++" : "--") : (v > 0 ? "##" : "==");
      }
    }
    out += ansi ? "\x1b[0m\n" : "\n";
  }
  return out;
}

}  // namespace provnn::cli
