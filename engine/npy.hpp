// NumPy .npy files: network inputs, per-feature bounds, initial relevances in; relevances out.
//
// Read: format versions 1.0, 2.0 and 3.0; dtypes float32, float64, uint8, int32, int64,
// little-endian ('<', or '|' for one-byte types); C order. Everything becomes double.
// Write: float64, C order, version 1.0 (2.0 when the header does not fit), atomically.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/network.hpp"

namespace provnn::engine {

struct npy_array {
  shape_t shape;             ///< () for a scalar
  std::vector<double> data;  ///< element_count(shape) values, C order
};

/// Largest .npy file read (bytes); larger files give limit_error.
inline constexpr std::size_t max_npy_bytes = std::size_t{1} << 32;

/// Parses the bytes of a .npy file; source_name is used in messages.
/// Complexity: linear in the size. The header's shape is checked against the data size before
/// anything is allocated.
/// Throws parse_error (bad magic, version, header, or a size that disagrees with the shape),
/// unsupported_error (Fortran order, big-endian, a dtype outside the list above).
npy_array parse_npy(std::string_view bytes, std::string_view source_name);

/// Reads a .npy file. Throws io_error when it cannot be read, limit_error past max_npy_bytes,
/// and as parse_npy.
npy_array read_npy(const std::filesystem::path& path);

/// The bytes of a float64 C-order .npy file. Precondition: data.size() == element_count(shape).
std::string npy_bytes(const shape_t& shape, std::span<const double> data);

/// Writes a float64 C-order .npy file atomically (write_file_atomically). Throws io_error;
/// error when data.size() != element_count(shape).
void write_npy(const std::filesystem::path& path, const shape_t& shape, std::span<const double> data);

/// Picks one sample for a network whose input shape is `input_shape` (no batch axis) from an
/// array of shape S (one sample) or (N, …S) (a batch; `index` picks the sample, default 0).
/// Size-1 axes are ignored when matching, so (8, 8) fits (1, 8, 8) and (N, 8, 8) is a batch for
/// it; an exact match is tried first. Throws error naming both shapes when they do not fit,
/// or the index and N when the index is out of range (or given for a single sample).
std::vector<double> select_sample(const npy_array& array, const shape_t& input_shape, std::optional<std::size_t> index,
                                  std::string_view source_name);

}  // namespace provnn::engine
