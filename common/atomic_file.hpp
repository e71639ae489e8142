// Writing output files so that a reader never sees a half-written one.
//
// The content goes to a temporary file in the destination's own folder (same file system,
// so rename(2) is atomic), is flushed and fsync'ed, and only then renamed over the
// destination. Any failure — an exception from the writer, a full disk, a signal that
// unwinds — removes the temporary file and leaves the old destination (or none) in place.
// While a write is in progress its temporary path is registered, so that a process that
// installs remove_temporaries_on_signals() also removes it on SIGINT, SIGTERM and SIGHUP
// (and a watchdog can call remove_pending_temporaries() before it ends the process).
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

/// Unlinks the temporary file of every write in progress. Async-signal-safe (only unlink(2)
/// and atomics), for signal handlers; the writes themselves then fail and clean up as usual
/// if the process goes on.
void remove_pending_temporaries() noexcept;

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that call remove_pending_temporaries(),
/// restore the default action and re-raise the signal, so the process still ends by that
/// signal (exit status 128 + N in a shell). For programs (the CLI), not for libraries that
/// live in someone else's process (the Python module does not call it).
void remove_temporaries_on_signals();

}  // namespace provnn
