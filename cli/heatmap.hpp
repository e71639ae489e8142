// Pictures of a relevance map: a PNG with a diverging blue–white–red colour map symmetric
// around zero, and the same picture in a terminal (24-bit ANSI colours on a terminal, plain
// characters otherwise).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/network.hpp"

namespace provnn::cli {

/// A relevance map reduced to one plane: (C, H, W) sums the channels, (H, W) is taken as is,
/// a flat (N) with N a perfect square becomes √N × √N (an MLP on flattened pixels).
struct plane {
  std::size_t height = 0, width = 0;
  std::vector<double> values;  ///< height × width, row-major
};

/// The plane of `values` (shape `s`), or nullopt when the shape is not an image.
std::optional<plane> to_plane(const engine::shape_t& s, std::span<const double> values);

/// RGB of v ∈ [−1, 1]: −1 blue, 0 white, +1 red (linear in each half).
void diverging_rgb(double v, unsigned char rgb[3]) noexcept;

/// Writes a PNG heatmap of `relevance` (scaled by max|R|, so white is 0), upscaled with
/// nearest neighbours to at least 256 pixels wide; with `overlay`, the input image (same
/// shape) shows through in grey. Atomic write. Throws error when the shape is not an image.
void write_heatmap_png(const std::string& path, const engine::shape_t& s, std::span<const double> relevance,
                       std::span<const double> overlay = {});

/// The heatmap as text: two columns per pixel, ANSI background colours when `ansi`,
/// else characters (`##` `++` `+ ` strong to weak positive, `==` `--` `- ` negative,
/// ` .` near zero: under 5 % of max|R|). Empty when the shape is not an image or the
/// plane is larger than 64 × 64.
std::string terminal_heatmap(const engine::shape_t& s, std::span<const double> relevance, bool ansi);

}  // namespace provnn::cli
