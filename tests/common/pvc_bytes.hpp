// Little-endian reads and writes into a serialized circuit (.pvc), and its CRC recomputed,
// so that tests can damage a file and reach the checks behind the checksum.
#pragma once

#include <boost/crc.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace provnn::test {

inline std::uint64_t read_u64(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}
inline void write_u32(std::string& s, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline void write_u64(std::string& s, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
/// Recomputes the trailing CRC-32.
inline void reseal(std::string& s) {
  boost::crc_32_type crc;
  crc.process_bytes(s.data(), s.size() - 4);
  write_u32(s, s.size() - 4, crc.checksum());
}

}  // namespace provnn::test
