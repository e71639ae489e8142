// An open-addressing hash set of 32-bit ids whose keys live elsewhere (in an arena).
//
// Both the gate arena (structural hashing) and the token table (interning) need "find the id
// whose stored content equals this probe, or insert a new one". Storing only the id keeps
// the table at 4 bytes per slot; hashes and equality are computed from the arena on demand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace provnn::detail {

class id_table {
 public:
  static constexpr std::uint32_t empty = 0xFFFFFFFFu;

  /// Returns the id in the table whose key equals the probe (eq(id) true), or `empty`.
  /// `hash` is the probe's hash; eq(id) compares a stored id with the probe.
  template <class Eq>
  std::uint32_t find(std::uint64_t hash, Eq&& eq) const {
    if (slots_.empty()) return empty;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      const std::uint32_t id = slots_[i];
      if (id == empty) return empty;
      if (hashes_[i] == static_cast<std::uint32_t>(hash >> 32) && eq(id)) return id;
    }
  }

  /// Inserts `id` (whose key hashes to `hash`); the caller has checked it is absent.
  void insert(std::uint64_t hash, std::uint32_t id) {
    if ((count_ + 1) * 4 > slots_.size() * 3) grow();
    place(hash, id);
    ++count_;
  }

  /// Slots a table with room for n ids has.
  static std::size_t slots_for(std::size_t n) noexcept {
    std::size_t want = 64;
    while (want * 3 < n * 4 + 4) want *= 2;
    return want;
  }
  /// Bytes of a table with room for n ids.
  static std::size_t bytes_for(std::size_t n) noexcept { return 12 * slots_for(n); }
  /// Whether the next insert grows the table (to twice its slots).
  bool next_insert_grows() const noexcept { return (count_ + 1) * 4 > slots_.size() * 3; }

  /// Room for n ids without growing.
  void reserve(std::size_t n) {
    const std::size_t want = slots_for(n);
    if (want > slots_.size()) rehash(want);
  }
  /// Gives back slots beyond what size() needs (after a generous reserve()).
  void shrink_to_fit() {
    const std::size_t want = count_ == 0 ? 0 : slots_for(count_);
    if (want < slots_.size()) rehash(want);
  }
  void clear() {
    slots_.clear();
    hashes_.clear();
    full_hashes_lo_.clear();
    count_ = 0;
  }
  std::size_t size() const noexcept { return count_; }
  std::size_t bytes() const noexcept { return (slots_.capacity() + hashes_.capacity() + full_hashes_lo_.capacity()) * 4; }

 private:
  static void place(std::vector<std::uint32_t>& slots, std::vector<std::uint32_t>& hi, std::vector<std::uint32_t>& lo,
                    std::uint64_t hash, std::uint32_t id) {
    const std::size_t mask = slots.size() - 1;
    std::size_t i = hash & mask;
    while (slots[i] != empty) i = (i + 1) & mask;
    slots[i] = id;
    hi[i] = static_cast<std::uint32_t>(hash >> 32);
    lo[i] = static_cast<std::uint32_t>(hash);
  }
  void place(std::uint64_t hash, std::uint32_t id) { place(slots_, hashes_, full_hashes_lo_, hash, id); }
  void grow() { rehash(slots_.empty() ? 64 : slots_.size() * 2); }
  // Into n slots (0: none). The new arrays are complete before they replace the old ones, so
  // a failed allocation leaves the table as it was (strong guarantee).
  void rehash(std::size_t n) {
    std::vector<std::uint32_t> slots(n, empty), hi(n, 0), lo(n, 0);
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i] != empty)
        place(slots, hi, lo, (static_cast<std::uint64_t>(hashes_[i]) << 32) | full_hashes_lo_[i], slots_[i]);
    slots_.swap(slots);
    hashes_.swap(hi);
    full_hashes_lo_.swap(lo);
  }
  std::vector<std::uint32_t> slots_;
  std::vector<std::uint32_t> hashes_;          // high half of each slot's hash (cheap reject)
  std::vector<std::uint32_t> full_hashes_lo_;  // low half, so growing needs no re-hash
  std::size_t count_ = 0;
};

/// 64-bit mixing (splitmix64 finaliser) for combining small integers into a hash.
inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}
inline std::uint64_t hash_combine(std::uint64_t h, std::uint64_t v) noexcept {
  return mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

}  // namespace provnn::detail
