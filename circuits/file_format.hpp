// The circuit file format (.pvc), versions 1 to 4. All integers little-endian. A circuit
// with structured gates or conv stages (circuit.hpp, DESIGN §5) is written as version 4, one
// with fused gates or token blocks (circuits/fused.hpp, tokens.hpp) but neither as version
// 3, any other as version 1, so each circuit stays readable by the oldest build that can
// hold it. Version 2 files (fused, without the compact encodings of version 3) are still read.
//
//   offset  size  field
//   0       8     magic  89 'P' 'V' 'C' 0D 0A 1A 0A   (PNG-style: catches text-mode mangling)
//   8       4     format version (1 to 4)
//   12      4     flags (0; a reader refuses bits it does not know)
//   16      8     number of sections S (7 in version 1, 8 in versions 2 and 3, 9 in 4)
//   24      S×8   byte size of each section, in the order below
//   24+8S   …     the sections, back to back
//   end-4   4     CRC-32 (IEEE 802.3, as zlib's crc32) of every byte before it
//
// Sections (counts are u64, records fixed-size unless stated):
//   1 tokens     count; per token: kind u8, variant u8, 0 u16, layer u32, term u32, #coords u32
//   2 coords     the tokens' coordinates, u32 each, token after token
//   3 values     the natural real valuation: count f64 (one per token)
//   4 gates      count; kinds u8 × count, 0-padding to a multiple of 4; child-slot count u32 ×
//                count; then the children, u32 × Σ slot counts (a token gate's one slot is
//                its token index)
//   5 edges      count; per edge gate: gate u32, layer u32, lower u32, upper u32, term u32,
//                parameter u32 (0xFFFFFFFF: none)
//   6 roots      count; per root: gate u32, kind u8, 0 u8×3, layer u32, index u32, target u32,
//                name length u32, name bytes
//   7 metadata   count; per entry: key length u32, key bytes, value length u32, value bytes
//   8 fused      (versions 2, 3) token blocks: count u64; per block: first token u32, count
//                u32, kind u8, variant u8, rank u8, sparse u8, layer u32, term u32, shape
//                u32 × rank, axis order u8 × rank, 0-padding to a multiple of 4, then by
//                `sparse`: 0 dense, nothing more; 1 its storage offsets u32 × count
//                (increasing); 2 (version 3) a bitmap of its storage offsets, u64 ×
//                ⌈Π shape / 64⌉ (bit o % 64 of word o / 64; count bits set, none past Π shape);
//                then fused gates: count u64; per fused gate: gate u32, layer u32, lower u32,
//                term u32, then its parameter tokens: version 2 u32 × n (n = its slot count
//                − 1); version 3 first u32, then by first: 0xFFFFFFFF u32 × n (tokens);
//                0xFFFFFFFE base u32, u16 × n (token − base), 0-padding to a multiple of 4;
//                else nothing (the run first, first+1, …);
//                then scale gates: count u64; per scale gate: gate u32, upper unit u32.
//   9 structured (version 4) conv stages: count u64; per stage: layer, term, in_channels,
//                in_h, in_w, out_channels, out_h, out_w, kernel_h, kernel_w, stride_h,
//                stride_w, pad_top, pad_left, dilation_h, dilation_w, group, first parameter
//                token (u32 each; weight p of the (oc, ic/group, ky, kx) tensor is token
//                first + p); which weights have an edge, a bitmap u64 × ⌈weights / 64⌉ (bit p
//                % 64 of word p / 64, none past the weights); the scale gate of each upper unit
//                u32 × outputs (0: none); then structured gates: count u64; per gate: gate
//                u32, stage u32, lower unit u32, in gate order. A structured gate has one child
//                slot (φ); its stage's scale gates come before it.
//   In versions 2 and 3 sections 1–2 list the single tokens only (in token order, around the
//   blocks); section 3 holds the value of every token.
//
// A reader checks, in this order and before allocating anything sized by the file: the file
// size against the header and every section size, the magic, the version, the flags, the
// CRC, and then every record against the circuit invariants (kinds known, children before
// parents, token gates unique, names unique, …). Any failure is a parse_error naming the
// file and the problem; a file is never half-read into a circuit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "circuits/circuit.hpp"

namespace provnn {

/// The newest version this build writes and reads (it reads every older one).
inline constexpr std::uint32_t pvc_format_version = 4;

/// The file's bytes. O(size of the circuit).
std::string serialize_circuit(const circuit& c);

/// A circuit from bytes made by serialize_circuit. `source` names the bytes in messages
/// (a file name). Throws parse_error naming `source` and the problem for any damage.
circuit deserialize_circuit(std::string_view bytes, std::string_view source = "<memory>");

/// Writes the circuit to `path` atomically (temporary file + rename: no half-written file
/// ever exists under `path`). Throws io_error naming the path.
void save_circuit(const circuit& c, const std::filesystem::path& path);

/// Reads a circuit file. Throws io_error when it cannot be read, parse_error (naming the
/// file) when it is not a valid circuit file of a version this build reads.
circuit load_circuit(const std::filesystem::path& path);

}  // namespace provnn
