// The storage offsets a sparse token block holds (token_table::add_block's `present`).
//
// A builder lists the parameters some active edge uses; on a ReLU network that is about half
// of a dense layer's weights. Kept as a sorted list it costs 4 bytes per held token — a
// quarter of the 16-byte-per-edge budget. Kept as a bitmap over the block's shape with a
// running count per 64-bit word it costs 12 bytes per 64 coordinates, held or not. Whichever
// is smaller is kept; both answer the same two questions:
//   at(q)       the q-th held offset (the token first + q → its coordinates), and
//   find(off)   the position of a held offset (coordinates → token), or nullopt.
#pragma once

#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace provnn::detail {

class offset_set {
 public:
  /// Holds `sorted` (strictly increasing, each < universe). Empty: holds nothing.
  void assign(std::span<const std::uint32_t> sorted, std::uint64_t universe) {
    list_.clear();
    bits_.clear();
    before_.clear();
    size_ = sorted.size();
    if (sorted.empty()) return;
    const std::uint64_t words = (universe + 63) / 64;
    if (words * 12 < 4 * std::uint64_t{sorted.size()}) {
      bits_.assign(words, 0);
      // A word at a time in a register (the offsets are sorted): an |= per offset into memory
      // chained each store to the last, which made this loop most of a sparse block's cost.
      std::uint64_t word = 0;
      std::size_t at = sorted[0] / 64;
      for (auto o : sorted) {
        if (o / 64 != at) {
          bits_[at] = word;
          word = 0;
          at = o / 64;
        }
        word |= std::uint64_t{1} << (o % 64);
      }
      bits_[at] = word;
      before_.resize(words);
      std::uint32_t n = 0;
      for (std::size_t w = 0; w < words; ++w) {
        before_[w] = n;
        n += static_cast<std::uint32_t>(std::popcount(bits_[w]));
      }
    } else {
      list_.assign(sorted.begin(), sorted.end());
    }
  }
  /// Holds the offsets whose bits are set in `words` (bit o % 64 of word o / 64; no bit at or
  /// past universe, and words.size() == ⌈universe / 64⌉: the caller checks). O(words + held):
  /// a builder that knows whole rows of a block at a time sets their bits a word at a time.
  void assign_words(std::span<const std::uint64_t> words, std::uint64_t universe) {
    list_.clear();
    bits_.clear();
    before_.clear();
    std::uint64_t n = 0;
    for (auto w : words) n += static_cast<std::uint64_t>(std::popcount(w));
    size_ = static_cast<std::size_t>(n);
    if (n == 0) return;
    if ((universe + 63) / 64 * 12 < 4 * n) {
      bits_.assign(words.begin(), words.end());
      before_.resize(bits_.size());
      std::uint32_t c = 0;
      for (std::size_t w = 0; w < bits_.size(); ++w) {
        before_[w] = c;
        c += static_cast<std::uint32_t>(std::popcount(bits_[w]));
      }
    } else {
      list_.reserve(size_);
      for (std::size_t w = 0; w < words.size(); ++w)
        for (std::uint64_t x = words[w]; x != 0; x &= x - 1)
          list_.push_back(static_cast<std::uint32_t>(w * 64 + static_cast<std::uint64_t>(std::countr_zero(x))));
    }
  }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// Whether the set is kept as a bitmap (for tests and reports).
  bool is_bitmap() const noexcept { return !bits_.empty(); }

  /// The q-th held offset, q < size(). O(1) for a list, O(log words + 64) for a bitmap.
  std::uint64_t at(std::size_t q) const {
    if (bits_.empty()) return list_[q];
    // The last word whose running count is ≤ q holds the q-th offset.
    std::size_t lo = 0, hi = before_.size();
    while (hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (before_[mid] <= q) lo = mid;
      else hi = mid;
    }
    std::uint64_t w = bits_[lo];
    for (std::size_t k = q - before_[lo]; k > 0; --k) w &= w - 1;  // drop the lower set bits
    return lo * 64 + static_cast<std::uint64_t>(std::countr_zero(w));
  }

  /// The position of `off` among the held offsets, or nullopt when it is not held.
  std::optional<std::size_t> find(std::uint64_t off) const {
    if (bits_.empty()) {
      std::size_t lo = 0, hi = list_.size();
      while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (list_[mid] < off) lo = mid + 1;
        else hi = mid;
      }
      if (lo == list_.size() || list_[lo] != off) return std::nullopt;
      return lo;
    }
    const std::size_t w = static_cast<std::size_t>(off / 64);
    if (w >= bits_.size()) return std::nullopt;
    const std::uint64_t bit = std::uint64_t{1} << (off % 64);
    if (!(bits_[w] & bit)) return std::nullopt;
    return before_[w] + static_cast<std::size_t>(std::popcount(bits_[w] & (bit - 1)));
  }

  /// f(offset) for every held offset, increasing. O(size) for a list, O(words + size) else.
  template <class F>
  void for_each(F&& f) const {
    if (bits_.empty()) {
      for (auto o : list_) f(std::uint64_t{o});
      return;
    }
    for (std::size_t w = 0; w < bits_.size(); ++w)
      for (std::uint64_t x = bits_[w]; x != 0; x &= x - 1)
        f(w * 64 + static_cast<std::uint64_t>(std::countr_zero(x)));
  }

  /// The bitmap's words (empty for a list): bit o % 64 of word o / 64 is offset o.
  std::span<const std::uint64_t> words() const noexcept { return bits_; }

  std::size_t bytes() const noexcept { return 4 * list_.capacity() + 8 * bits_.capacity() + 4 * before_.capacity(); }

 private:
  std::vector<std::uint32_t> list_;    // the offsets, when that is smaller
  std::vector<std::uint64_t> bits_;    // else one bit per coordinate of the block's shape
  std::vector<std::uint32_t> before_;  // and per word the number of held offsets before it
  std::size_t size_ = 0;
};

}  // namespace provnn::detail
