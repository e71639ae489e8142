// What tests expect of the allocator setup, worked out from the build and the machine
// independently of common/allocator.cpp's own checks.
#pragma once

#include <cstdio>
#include <fstream>
#include <string>

#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#endif

// The sanitizers bring their own allocator: glibc's settings do nothing there, and the CLI
// does not re-execute. GCC says so with __SANITIZE_*__, clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_HWADDRESS__)
#define PROVNN_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(hwaddress_sanitizer)
#define PROVNN_TEST_SANITIZED 1
#endif
#endif

namespace provnn::test {

/// Whether glibc's allocator is in use, is 2.35 or later (glibc.malloc.hugetlb), and the
/// kernel's transparent huge pages are "always" or "madvise".
inline bool huge_pages_offered_here() {
#if defined(__GLIBC__) && !defined(PROVNN_TEST_SANITIZED)
  int major = 0, minor = 0;
  std::sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor);
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(f, modes);
  return (major > 2 || (major == 2 && minor >= 35)) &&
         (modes.find("[always]") != std::string::npos || modes.find("[madvise]") != std::string::npos);
#else
  return false;
#endif
}

}  // namespace provnn::test
