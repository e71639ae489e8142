// A growable array of trivially copyable values that gives back spare room in place.
//
// std::vector::shrink_to_fit() allocates the exact size and copies; the token table's values
// are the largest array a build makes (8 MB on vgg-small), reserved for every token its
// stages could add and trimmed at the end, where that copy was a millisecond of a 17 ms
// build. realloc() to a smaller size keeps the block where it is (glibc splits a heap block,
// or remaps a mapped one), so trimming costs no copy, and growing may extend in place.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "common/error.hpp"

namespace provnn::detail {

template <class T>
class pod_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "pod_buffer moves its values with realloc and memcpy");

 public:
  pod_buffer() noexcept = default;
  pod_buffer(const pod_buffer& o) : pod_buffer() {
    reserve(o.size_);
    if (o.size_) std::memcpy(data_, o.data_, o.size_ * sizeof(T));
    size_ = o.size_;
  }
  pod_buffer(pod_buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), cap_(std::exchange(o.cap_, 0)) {}
  pod_buffer& operator=(pod_buffer o) noexcept {  // copy or move, then swap
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
    return *this;
  }
  ~pod_buffer() { std::free(data_); }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  operator std::span<const T>() const noexcept { return {data_, size_}; }

  /// Room for n values in all (exactly n when it grows). Throws std::bad_alloc.
  void reserve(std::size_t n) {
    if (n <= cap_) return;
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    void* p = std::realloc(data_, n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
    cap_ = n;
  }
  void push_back(const T& x) {
    if (size_ == cap_) reserve(std::max<std::size_t>(16, 2 * cap_));
    data_[size_++] = x;
  }
  /// Appends n copies of x (growing as std::vector does: at least doubling).
  void append(std::size_t n, const T& x) {
    grow_for(n);
    std::fill(data_ + size_, data_ + size_ + n, x);
    size_ += n;
  }
  /// Appends values: either outside this buffer, or written in place at its spare room
  /// (xs.data() == end(), within capacity()), which is then taken without a copy.
  void append(std::span<const T> xs) {
    if (xs.data() == data_ + size_ && xs.size() <= cap_ - size_) {
      size_ += xs.size();
      return;
    }
    PROVNN_ASSERT(xs.empty() || xs.data() + xs.size() <= data_ || xs.data() >= data_ + cap_);
    grow_for(xs.size());
    if (!xs.empty()) std::memcpy(data_ + size_, xs.data(), xs.size() * sizeof(T));
    size_ += xs.size();
  }
  /// The spare room for n more values (grown to exactly that), to be written and then
  /// appended in place with append(); valid until the buffer next changes.
  std::span<T> room(std::size_t n) {
    if (n > cap_ - size_) reserve(size_ + n);  // (exactly: a hint, as reserve())
    return {data_ + size_, n};
  }
  void clear() noexcept { size_ = 0; }
  /// Gives back the room beyond max(n, size()) values, in place where the allocator can.
  void shrink_to(std::size_t n) noexcept {
    n = std::max(n, size_);
    if (cap_ <= n || n == 0) return;
    if (void* p = std::realloc(data_, n * sizeof(T))) {
      data_ = static_cast<T*>(p);
      cap_ = n;
    }
  }
  /// Gives back the spare room, in place where the allocator can (a failure keeps it).
  void shrink_to_fit() noexcept {
    if (cap_ == size_) return;
    if (size_ == 0) {
      std::free(data_);
      data_ = nullptr;
      cap_ = 0;
      return;
    }
    if (void* p = std::realloc(data_, size_ * sizeof(T))) {
      data_ = static_cast<T*>(p);
      cap_ = size_;
    }
  }

 private:
  void grow_for(std::size_t n) {
    if (n > cap_ - size_) reserve(std::max(size_ + n, 2 * cap_));
  }
  T* data_ = nullptr;
  std::size_t size_ = 0, cap_ = 0;
};

}  // namespace provnn::detail
