// provnn's exception tree (Boost.Graph's exception.hpp is the model).
//
//   provnn::error               : std::runtime_error   everything provnn throws
//     provnn::parse_error        malformed text or file content (ONNX, .npy, .pvc, JSON, rule names)
//     provnn::unsupported_error  well-formed but outside what provnn handles (an op type, a dtype)
//     provnn::limit_error        a resource limit was hit (monomials, gates, memory); says how to raise it
//     provnn::io_error           the file system said no (open, read, write, rename)
//
// Messages name the file, node, token or gate involved and, where there is one, the way out.
// Programmer errors (broken invariants) are not exceptions: they go to PROVNN_ASSERT.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace provnn {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class parse_error : public error {
 public:
  using error::error;
};

class unsupported_error : public error {
 public:
  using error::error;
};

class limit_error : public error {
 public:
  using error::error;
};

class io_error : public error {
 public:
  using error::error;
};

namespace detail {
[[noreturn]] inline void assert_fail(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "provnn: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace provnn

// Always on: the checks guard arena invariants whose violation would corrupt results silently.
#define PROVNN_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::provnn::detail::assert_fail(#expr, __FILE__, __LINE__))
