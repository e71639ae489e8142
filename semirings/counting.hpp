// Counting semiring: how many relevant paths?
//
//   carrier   ℕ as boost::multiprecision::cpp_int (arbitrary precision: never wraps — an
//             MLP 784-300-100-10 already has 2.35·10⁷ paths per pixel, deeper nets overflow
//             64 bits quickly)
//   ⊕, ⊗      +, ×
//   0, 1      0, 1
//   properties commutative
//   lifting   1 where the token's real value is non-zero, 0 where it is zero
//   answers   "how many paths with non-zero (or, under a threshold annotation, large enough)
//             coefficients connect this feature to the output?"
//
// Values are passed by const& and returned by value; cpp_int keeps small values inline, so
// counts below 2^64·a few limbs never allocate. The n-ary sum accumulates in place.
//
// Evaluation arrays store counts as packed_count (8 bytes; a cpp_int is 32), because the
// valuation of a fused circuit holds one count per weight and reading 32 bytes each cost
// more than the real semiring's whole evaluation (issue 5).
#pragma once

#include <boost/multiprecision/cpp_int.hpp>
#include <concepts>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "semirings/semiring.hpp"

namespace provnn {

/// A count in 8 bytes: a value in [0, 2^63) is held as itself; any other cpp_int (2^63 and
/// beyond, or negative) is held on the heap, its pointer tagged by the top bit. The encoding
/// is canonical (a value is boxed exactly when it is outside [0, 2^63)), so equal counts have
/// equal representations unless both are boxed. Converts implicitly to and from cpp_int.
///
/// raw() exposes the bits to counting's 64-bit evaluation (evaluate.hpp): a raw value below
/// 2^63 is the count; any raw value ≥ 2^63 marks a boxed count, which that evaluation's
/// overflow checks catch (it then evaluates again in big integers).
class packed_count {
 public:
  using big = boost::multiprecision::cpp_int;
  static constexpr std::uint64_t box_tag = std::uint64_t{1} << 63;

  packed_count() noexcept = default;
  packed_count(const big& v) { assign(v); }  // NOLINT(google-explicit-constructor): a stored cpp_int
  packed_count(big&& v) { assign(std::move(v)); }  // NOLINT(google-explicit-constructor)
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  packed_count(I v) {  // NOLINT(google-explicit-constructor)
    if (std::cmp_greater_equal(v, 0) && std::cmp_less(v, box_tag))
      bits_ = static_cast<std::uint64_t>(v);
    else
      assign(big(v));
  }
  packed_count(const packed_count& o) : bits_(o.bits_) {
    if (o.boxed()) bits_ = tag(new big(*o.ptr()));
  }
  packed_count(packed_count&& o) noexcept : bits_(std::exchange(o.bits_, 0)) {}
  packed_count& operator=(packed_count o) noexcept {
    std::swap(bits_, o.bits_);
    return *this;
  }
  ~packed_count() {
    if (boxed()) delete ptr();
  }

  operator big() const { return boxed() ? *ptr() : big(bits_); }  // NOLINT(google-explicit-constructor)

  /// True when the count is held on the heap (outside [0, 2^63)).
  bool boxed() const noexcept { return (bits_ & box_tag) != 0; }
  /// The count itself when !boxed(); a value ≥ 2^63 otherwise.
  std::uint64_t raw() const noexcept { return bits_; }

  friend bool operator==(const packed_count& a, const packed_count& b) {
    if (!a.boxed() || !b.boxed()) return a.bits_ == b.bits_;  // canonical: inline ≠ boxed
    return *a.ptr() == *b.ptr();
  }
  friend std::ostream& operator<<(std::ostream& os, const packed_count& a) { return os << big(a); }

 private:
  template <class B>
  void assign(B&& v) {
    if (v >= 0 && v < box_tag)
      bits_ = static_cast<std::uint64_t>(v);
    else
      bits_ = tag(new big(std::forward<B>(v)));
  }
  // Heap pointers are at least 2-aligned: shifted right by one their top bit is free, also
  // where the hardware keeps tags in a pointer's top byte.
  static std::uint64_t tag(big* p) noexcept { return box_tag | (reinterpret_cast<std::uintptr_t>(p) >> 1); }
  big* ptr() const noexcept { return reinterpret_cast<big*>(static_cast<std::uintptr_t>((bits_ & ~box_tag) << 1)); }

  std::uint64_t bits_ = 0;
};
static_assert(sizeof(packed_count) == 8);

template <>
struct value_storage<boost::multiprecision::cpp_int> {
  using type = packed_count;
};

struct counting_semiring {
  using value_type = boost::multiprecision::cpp_int;
  static constexpr std::uint32_t properties = commutative;
  static constexpr std::string_view registry_name = "counting";
  static constexpr std::string_view question = "how many relevant paths connect this feature to the output?";

  value_type zero() const { return 0; }
  value_type one() const { return 1; }
  value_type plus(const value_type& a, const value_type& b) const { return a + b; }
  value_type times(const value_type& a, const value_type& b) const { return a * b; }
  value_type lift(token_index, double v) const { return v != 0.0 ? 1 : 0; }
  /// A real coefficient counts once where it is non-zero (the threshold annotations of
  /// DESIGN §3 produce 0/1 values).
  value_type from_real(double d) const { return d != 0.0 ? 1 : 0; }
  value_type from_natural(const value_type& n) const { return n; }
  value_type sum(std::span<const value_type> xs) const {
    value_type acc = 0;
    for (const auto& x : xs) acc += x;
    return acc;
  }
  std::string name() const { return std::string(registry_name); }
  std::string format(const value_type& a, const token_namer& = {}) const { return a.str(); }
};

}  // namespace provnn
