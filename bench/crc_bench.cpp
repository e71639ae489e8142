// The .pvc checksum: zlib's crc32_z (what circuits/file_format.cpp uses) against Boost's
// byte-wise crc_32_type (what it used before), on a buffer the size of a saved
// mlp:784-300-100-10 circuit (12 MB), in the same process. Both must give the same value:
// the format did not change.
//
//   crc_bench [MEGABYTES] [REPEATS]      default 12 20
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <boost/crc.hpp>
#include <zlib.h>

int main(int argc, char** argv) {
  const std::size_t mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 12;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 20;
  std::vector<unsigned char> buf(mb << 20);
  std::mt19937_64 g(42);
  for (auto& b : buf) b = static_cast<unsigned char>(g());

  auto time_median = [&](auto&& f, std::uint32_t& value) {
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      value = f();
      t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(t.begin(), t.begin() + repeats / 2, t.end());
    return t[repeats / 2];
  };
  std::uint32_t boost_value = 0, zlib_value = 0;
  const double boost_us = time_median(
      [&] {
        boost::crc_32_type crc;
        crc.process_bytes(buf.data(), buf.size());
        return static_cast<std::uint32_t>(crc.checksum());
      },
      boost_value);
  const double zlib_us = time_median(
      [&] { return static_cast<std::uint32_t>(crc32_z(0L, buf.data(), buf.size())); }, zlib_value);
  std::printf("CRC-32 of %zu MiB, median of %d\n", mb, repeats);
  std::printf("  boost::crc_32_type  %10.0f us  %6.2f GB/s  %08x\n", boost_us, buf.size() / boost_us / 1e3, boost_value);
  std::printf("  zlib crc32_z        %10.0f us  %6.2f GB/s  %08x\n", zlib_us, buf.size() / zlib_us / 1e3, zlib_value);
  std::printf("  ratio boost/zlib    %10.2f\n", boost_us / zlib_us);
  return boost_value == zlib_value ? 0 : 1;
}
