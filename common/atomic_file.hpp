// Writing output files so that a reader never sees a half-written one.
//
// The content goes to a temporary file in the destination's own folder (same file system,
// so rename(2) is atomic), is flushed and fsync'ed, and only then renamed over the
// destination. Any failure — an exception from the writer, a full disk, a signal that
// unwinds — removes the temporary file and leaves the old destination (or none) in place.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

namespace provnn {

/// Calls `write(out)` on a stream backed by a temporary file next to `path`, then renames the
/// temporary file to `path`. Throws io_error naming `path` if anything fails; exceptions from
/// `write` propagate after the temporary file is removed.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

/// Convenience overload for content already in memory.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace provnn
