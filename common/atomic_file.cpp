#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>

#include "common/error.hpp"

namespace provnn {
namespace {

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

void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  write_file_atomically(path, [&](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

}  // namespace provnn
