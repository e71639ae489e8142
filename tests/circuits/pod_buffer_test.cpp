// detail::pod_buffer (the token table's values): checked step by step against std::vector
// doing the same operations, and for what it adds — a trim that keeps the values.
#include "circuits/detail/pod_buffer.hpp"

#include <doctest/doctest.h>

#include <random>
#include <vector>

using provnn::detail::pod_buffer;

namespace {
template <class T>
bool same(const pod_buffer<T>& b, const std::vector<T>& v) {
  return b.size() == v.size() && std::vector<T>(b.begin(), b.end()) == v;
}
}  // namespace

TEST_CASE("pod_buffer: push_back, append, reserve, copies, moves and trims agree with std::vector") {
  std::mt19937_64 g(11);
  pod_buffer<double> b;
  std::vector<double> v;
  CHECK(b.empty());
  for (int step = 0; step < 2000; ++step) {
    switch (g() % 6) {
      case 0: {
        const double x = static_cast<double>(g() % 1000) / 7;
        b.push_back(x);
        v.push_back(x);
        break;
      }
      case 1: {
        const std::size_t n = g() % 300;
        b.append(n, 2.5);
        v.insert(v.end(), n, 2.5);
        break;
      }
      case 2: {
        std::vector<double> xs(g() % 300);
        for (auto& x : xs) x = static_cast<double>(g() % 100);
        b.append(std::span<const double>(xs));
        v.insert(v.end(), xs.begin(), xs.end());
        break;
      }
      case 3: {
        const std::size_t n = b.size() + g() % 5000;
        b.reserve(n);
        CHECK(b.capacity() >= n);
        break;
      }
      case 4:
        b.shrink_to_fit();
        CHECK(b.capacity() == b.size());
        break;
      default:
        if (g() % 8 == 0) {
          b.clear();
          v.clear();
        }
    }
    REQUIRE(same(b, v));
  }
  const pod_buffer<double> copy = b;  // a copy owns its values
  b.push_back(-1);
  v.push_back(-1);
  CHECK(same(b, v));
  CHECK(copy.size() + 1 == b.size());
  CHECK(std::vector<double>(copy.begin(), copy.end()) == std::vector<double>(v.begin(), v.end() - 1));
  pod_buffer<double> moved = std::move(b);
  CHECK(same(moved, v));
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move): the moved-from buffer is empty
  pod_buffer<double> assigned;
  assigned = copy;
  CHECK(std::vector<double>(assigned.begin(), assigned.end()) == std::vector<double>(copy.begin(), copy.end()));
  const std::span<const double> s = moved;
  CHECK(s.size() == v.size());
  CHECK(s.back() == -1);
  moved.clear();
  moved.shrink_to_fit();
  CHECK(moved.capacity() == 0);
}

TEST_CASE("pod_buffer: values written to room() are appended in place, other spans are copied") {
  pod_buffer<double> b;
  std::vector<double> v;
  for (int i = 0; i < 5; ++i) b.push_back(i), v.push_back(i);
  const auto r = b.room(100);
  REQUIRE(r.size() == 100);
  CHECK(b.capacity() >= 105);
  CHECK(r.data() == b.data() + 5);
  for (int i = 0; i < 40; ++i) r[static_cast<std::size_t>(i)] = 10.0 + i, v.push_back(10.0 + i);
  const double* at = b.data();
  b.append(r.first(40));  // in place: no copy, no move
  CHECK(b.data() == at);
  CHECK(same(b, v));
  // A span elsewhere (or not at the end) is copied as before.
  const std::vector<double> other = {7.0, 8.0};
  b.append(other);
  v.insert(v.end(), other.begin(), other.end());
  CHECK(same(b, v));
  // room() grows exactly when the spare room is short, keeping the values.
  const std::size_t cap = b.capacity();
  const auto r2 = b.room(cap);
  CHECK(b.capacity() == b.size() + cap);
  CHECK(r2.data() == b.data() + b.size());
  CHECK(same(b, v));
}

TEST_CASE("pod_buffer: shrink_to gives back the room beyond n values, never below the values held") {
  pod_buffer<double> b;
  std::vector<double> v;
  for (int i = 0; i < 10; ++i) b.push_back(i), v.push_back(i);
  b.reserve(1000);
  b.shrink_to(100);
  CHECK(b.capacity() == 100);
  CHECK(same(b, v));
  b.shrink_to(3);  // not below size()
  CHECK(b.capacity() == 10);
  CHECK(same(b, v));
  b.shrink_to(50);  // never grows
  CHECK(b.capacity() == 10);
}
