#include "common/allocator.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <string>

#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#include <malloc.h>
#include <unistd.h>
#endif

// Sanitizers bring their own allocator (GCC says so with __SANITIZE_*__, clang with
// __has_feature).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PROVNN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define PROVNN_SANITIZED 1
#endif
#endif

namespace provnn {

bool retain_freed_memory() noexcept {
#if defined(__GLIBC__)
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"})
    if (std::getenv(v) != nullptr) return false;
  // glibc's DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB on 64-bit, 16 MiB on 32-bit.
  constexpr int mmap_threshold = static_cast<int>(4 * 1024 * 1024 * sizeof(long));
  constexpr int trim_threshold = 256 << 20;
  return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#else
  return false;
#endif
}

void use_huge_pages_for_malloc(char** argv) noexcept {
#if defined(__GLIBC__) && !defined(PROVNN_SANITIZED)
  if (argv == nullptr || argv[0] == nullptr || std::getenv("GLIBC_TUNABLES") != nullptr) return;
  if (const char* v = std::getenv("PROVNN_HUGE_PAGES"); v != nullptr && std::strcmp(v, "0") == 0) return;
  if (const char* v = std::getenv("LD_PRELOAD"); v != nullptr && std::strstr(v, "vgpreload") != nullptr) return;
  // glibc.malloc.hugetlb came with glibc 2.35; older versions would ignore it.
  int major = 0, minor = 0;
  if (std::sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) != 2 || major < 2 || (major == 2 && minor < 35))
    return;
  // "always [madvise] never": glibc's setting madvises its blocks, which needs either of the first two.
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  if (!std::getline(thp, modes) || modes.find("[never]") != std::string::npos ||
      (modes.find("[always]") == std::string::npos && modes.find("[madvise]") == std::string::npos))
    return;
  if (::setenv("GLIBC_TUNABLES", huge_page_tunables, 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("GLIBC_TUNABLES");  // the exec failed: go on as started
#else
  (void)argv;
#endif
}

bool malloc_uses_huge_pages() noexcept {
#if defined(__GLIBC__) && !defined(PROVNN_SANITIZED)
  const char* t = std::getenv("GLIBC_TUNABLES");
  if (t == nullptr) return false;
  // The last setting of the key wins, as in glibc's parser.
  const std::string s(t);
  const std::string key = "glibc.malloc.hugetlb=";
  bool on = false;
  for (auto at = s.find(key); at != std::string::npos; at = s.find(key, at + 1))
    if (at == 0 || s[at - 1] == ':') on = at + key.size() < s.size() && (s[at + key.size()] == '1' || s[at + key.size()] == '2');
  return on;
#else
  return false;
#endif
}

}  // namespace provnn
