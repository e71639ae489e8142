#include "common/atomic_file.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/error.hpp"

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
fs::path scratch(const char* name) {
  auto dir = fs::temp_directory_path() / "provnn-tests" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
std::size_t entries(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}));
}
}  // namespace

TEST_CASE("write_file_atomically replaces the file and leaves no temporary behind") {
  auto dir = scratch("atomic-ok");
  auto f = dir / "out.txt";
  provnn::write_file_atomically(f, "first");
  provnn::write_file_atomically(f, "second, longer");
  CHECK(slurp(f) == "second, longer");
  CHECK(entries(dir) == 1);
}

TEST_CASE("a writer that throws leaves the old file untouched and no temporary") {
  auto dir = scratch("atomic-throw");
  auto f = dir / "out.txt";
  provnn::write_file_atomically(f, "old");
  CHECK_THROWS_AS(provnn::write_file_atomically(f,
                                                [](std::ostream& out) {
                                                  out << "half of the new con";
                                                  throw std::runtime_error("interrupted");
                                                }),
                  std::runtime_error);
  CHECK(slurp(f) == "old");
  CHECK(entries(dir) == 1);
}

TEST_CASE("a folder that does not exist gives an io_error naming the file") {
  auto f = fs::temp_directory_path() / "provnn-tests" / "no-such-folder" / "x.bin";
  try {
    provnn::write_file_atomically(f, "data");
    FAIL("expected io_error");
  } catch (const provnn::io_error& e) {
    CHECK(std::string(e.what()).find("x.bin") != std::string::npos);
  }
}

// Signals: a process that called remove_temporaries_on_signals() and is interrupted in the
// middle of a write (here: the writer itself raises the signal after writing half its
// content) ends by that signal, with the old destination intact and no temporary file.
// Runs in a forked child, so the handlers and the signal stay out of the test runner.
namespace {
/// Writes "old" to dir/out.txt, then in a child process overwrites it with a writer that
/// raises `sig` half-way; returns the child's wait status.
int interrupted_write(const fs::path& dir, int sig, bool handlers) {
  const auto f = dir / "out.txt";
  provnn::write_file_atomically(f, "old");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (handlers)
      provnn::remove_temporaries_on_signals();
    else
      ::signal(sig, SIG_DFL);  // doctest's own handlers would report the signal instead
    provnn::write_file_atomically(f, [sig](std::ostream& out) {
      out << "half of the new content";
      out.flush();
      ::raise(sig);
      out << " and the rest";
    });
    ::_exit(0);  // not reached: the signal ends the child
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}
}  // namespace

TEST_CASE("an interrupted write leaves the old file and no temporary when the signal handlers are installed") {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    CAPTURE(sig);
    const auto dir = scratch("atomic-signal");
    const int status = interrupted_write(dir, sig, true);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    CHECK(slurp(dir / "out.txt") == "old");
    CHECK(entries(dir) == 1);
  }
}

TEST_CASE("without the handlers the same signal leaves the temporary file behind (what the handlers fix)") {
  // The control experiment: proves the test above can fail.
  const auto dir = scratch("atomic-signal-control");
  const int status = interrupted_write(dir, SIGTERM, false);
  CHECK(WIFSIGNALED(status));
  CHECK(slurp(dir / "out.txt") == "old");
  CHECK(entries(dir) == 2);  // out.txt and .out.txt.tmp-…
}

TEST_CASE("remove_pending_temporaries unlinks the temporary of a write in progress, and the write then fails cleanly") {
  auto dir = scratch("atomic-pending");
  auto f = dir / "out.txt";
  provnn::write_file_atomically(f, "old");
  CHECK_THROWS_AS(provnn::write_file_atomically(f,
                                                [&](std::ostream& out) {
                                                  out << "new";
                                                  CHECK(entries(dir) == 2);
                                                  provnn::remove_pending_temporaries();
                                                  CHECK(entries(dir) == 1);
                                                }),
                  provnn::io_error);
  CHECK(slurp(f) == "old");
  CHECK(entries(dir) == 1);
}
