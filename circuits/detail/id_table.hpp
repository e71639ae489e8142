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
    if (want > slots_.size()) {
      std::vector<std::uint32_t> old_slots = std::move(slots_), old_hi = std::move(hashes_),
                                 old_lo = std::move(full_hashes_lo_);
      rehash(want, old_slots, old_hi, old_lo);
    }
  }

  /// Gives back slots beyond what size() needs (after a generous reserve()).
  void shrink_to_fit() {
    const std::size_t want = count_ == 0 ? 0 : slots_for(count_);
    if (want >= slots_.size()) return;
    std::vector<std::uint32_t> old_slots = std::move(slots_), old_hi = std::move(hashes_),
                               old_lo = std::move(full_hashes_lo_);
    slots_.clear();
    hashes_.clear();
    full_hashes_lo_.clear();
    if (want) rehash(want, old_slots, old_hi, old_lo);
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
  void place(std::uint64_t hash, std::uint32_t id) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    while (slots_[i] != empty) i = (i + 1) & mask;
    slots_[i] = id;
    hashes_[i] = static_cast<std::uint32_t>(hash >> 32);
    full_hashes_lo_[i] = static_cast<std::uint32_t>(hash);
  }
  void grow() {
    std::vector<std::uint32_t> old_slots = std::move(slots_), old_hi = std::move(hashes_),
                               old_lo = std::move(full_hashes_lo_);
    rehash(old_slots.empty() ? 64 : old_slots.size() * 2, old_slots, old_hi, old_lo);
  }
  void rehash(std::size_t n, const std::vector<std::uint32_t>& old_slots, const std::vector<std::uint32_t>& old_hi,
              const std::vector<std::uint32_t>& old_lo) {
    slots_.assign(n, empty);
    hashes_.assign(n, 0);
    full_hashes_lo_.assign(n, 0);
    for (std::size_t i = 0; i < old_slots.size(); ++i)
      if (old_slots[i] != empty)
        place((static_cast<std::uint64_t>(old_hi[i]) << 32) | old_lo[i], old_slots[i]);
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
