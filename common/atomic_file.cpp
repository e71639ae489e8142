#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>

#include "common/error.hpp"

namespace provnn {
namespace {

// The temporary files of writes in progress, readable from a signal handler: fixed slots
// (no allocation), each claimed by a compare-and-swap. More concurrent writes than slots
// still work; their temporaries are just not removed on a signal.
enum : int { slot_free = 0, slot_filling = 1, slot_ready = 2 };
struct pending_slot {
  std::atomic<int> state{slot_free};
  char path[4096] = {};
};
std::array<pending_slot, 16> pending;

pending_slot* register_pending(const std::filesystem::path& p) {
  const std::string& s = p.native();
  if (s.size() >= sizeof(pending_slot::path)) return nullptr;
  for (auto& slot : pending) {
    int expected = slot_free;
    if (slot.state.compare_exchange_strong(expected, slot_filling)) {
      std::memcpy(slot.path, s.c_str(), s.size() + 1);
      slot.state.store(slot_ready);
      return &slot;
    }
  }
  return nullptr;
}

void unregister_pending(pending_slot* slot) noexcept {
  if (slot) slot->state.store(slot_free);
}

extern "C" void remove_temporaries_and_reraise(int sig) {
  remove_pending_temporaries();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::filesystem::path temporary_sibling(const std::filesystem::path& path) {
  std::random_device rd;
  auto name = fmt::format(".{}.tmp-{}-{:08x}", path.filename().string(), ::getpid(), rd());
  return path.parent_path() / name;
}

void fsync_path(const std::filesystem::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write) {
  const auto tmp = temporary_sibling(path);
  // Registered before the file exists, so that no moment has a temporary file a signal
  // handler does not know; unregistered only after the rename or the removal
  // (it is destroyed after `guard`).
  struct registration {
    pending_slot* slot;
    ~registration() { unregister_pending(slot); }
  } reg{register_pending(tmp)};
  struct remover {
    const std::filesystem::path& p;
    bool armed = true;
    ~remover() {
      if (armed) {
        std::error_code ec;
        std::filesystem::remove(p, ec);
      }
    }
  } guard{tmp};

  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw io_error(fmt::format("cannot write '{}': cannot create a temporary file in its folder ({})",
                                 path.string(), std::strerror(errno)));
    }
    write(out);
    out.flush();
    if (!out) {
      throw io_error(fmt::format("cannot write '{}': write failed (disk full or file too large?)",
                                 path.string()));
    }
  }
  fsync_path(tmp);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    throw io_error(fmt::format("cannot write '{}': rename from temporary file failed ({})", path.string(),
                               ec.message()));
  }
  guard.armed = false;
}

void remove_pending_temporaries() noexcept {
  for (auto& slot : pending)
    if (slot.state.load() == slot_ready) ::unlink(slot.path);
}

void remove_temporaries_on_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction sa {};
    sa.sa_handler = remove_temporaries_and_reraise;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    ::sigaction(sig, &sa, nullptr);
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  write_file_atomically(path, [&](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

}  // namespace provnn
