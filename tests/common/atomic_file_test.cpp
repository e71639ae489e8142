#include "common/atomic_file.hpp"

#include <doctest/doctest.h>

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
