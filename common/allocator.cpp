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
#include <sys/auxv.h>
#include <unistd.h>
#endif

// Sanitizers bring their own allocator (GCC says so with __SANITIZE_*__, clang with
// __has_feature).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_HWADDRESS__)
#define PROVNN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(hwaddress_sanitizer)
#define PROVNN_SANITIZED 1
#endif
#endif

namespace provnn {

namespace {

// glibc's DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB on 64-bit, 16 MiB on 32-bit.
constexpr long mmap_threshold = 4L * 1024 * 1024 * static_cast<long>(sizeof(long));
constexpr long trim_threshold = 256L << 20;

/// Whether the user set any of glibc's allocator variables (theirs win over ours).
bool user_tuned_malloc() noexcept {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

#if defined(__GLIBC__)
/// glibc ≥ 2.35 (glibc.malloc.hugetlb), and a kernel whose transparent huge pages are
/// "always" or "madvise" (glibc's setting madvises its blocks).
[[maybe_unused]] bool huge_pages_offered() noexcept {  // (unused in sanitizer builds)
  int major = 0, minor = 0;
  if (std::sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) != 2 || major < 2 || (major == 2 && minor < 35))
    return false;
  std::string modes;
  {
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");  // closed before any exec
    if (!std::getline(thp, modes)) return false;
  }
  return modes.find("[always]") != std::string::npos || modes.find("[madvise]") != std::string::npos;
}
#endif

}  // namespace

bool retain_freed_memory() noexcept {
#if defined(__GLIBC__)
  if (user_tuned_malloc()) return false;
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1 &&
         mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold)) == 1;
#else
  return false;
#endif
}

std::string huge_page_tunables() {
  return "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=" + std::to_string(mmap_threshold) +
         ":glibc.malloc.trim_threshold=" + std::to_string(trim_threshold);
}

void use_huge_pages_for_malloc(char** argv) noexcept {
#if defined(__GLIBC__) && !defined(PROVNN_SANITIZED)
  // Once only: the marker stops a loop even where glibc drops GLIBC_TUNABLES on exec.
  if (std::getenv("PROVNN_REEXECUTED") != nullptr) {
    ::unsetenv("PROVNN_REEXECUTED");
    return;
  }
  if (argv == nullptr || argv[0] == nullptr || user_tuned_malloc()) return;
  if (const char* v = std::getenv("PROVNN_HUGE_PAGES"))
    for (const char* off : {"0", "off", "false", "no"})
      if (std::strcmp(v, off) == 0) return;
  if (const char* v = std::getenv("LD_PRELOAD"); v != nullptr && std::strstr(v, "vgpreload") != nullptr) return;
  // Secure mode (setuid, capabilities): glibc filters GLIBC_TUNABLES there. Started through
  // the dynamic loader (`ld.so provnn …`): /proc/self/exe is the loader, and argv has lost it.
  if (::getauxval(AT_SECURE) != 0 || ::getauxval(AT_BASE) == 0) return;
  if (!huge_pages_offered()) return;
  try {
    const std::string tunables = huge_page_tunables();
    if (::setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  } catch (...) {
    return;
  }
  if (::setenv("PROVNN_REEXECUTED", "1", 1) != 0) {
    ::unsetenv("GLIBC_TUNABLES");
    return;
  }
  ::execv("/proc/self/exe", argv);
  ::unsetenv("GLIBC_TUNABLES");  // the exec failed: go on as started
  ::unsetenv("PROVNN_REEXECUTED");
#else
  (void)argv;
#endif
}

bool malloc_uses_huge_pages() noexcept {
#if defined(__GLIBC__) && !defined(PROVNN_SANITIZED)
  const char* t = std::getenv("GLIBC_TUNABLES");
  if (t == nullptr) return false;
  // The last setting of the key wins, as in glibc's parser.
  bool on = false;
  try {
    const std::string s(t);
    const std::string key = "glibc.malloc.hugetlb=";
    for (auto at = s.find(key); at != std::string::npos; at = s.find(key, at + 1))
      if (at == 0 || s[at - 1] == ':')
        on = at + key.size() < s.size() && (s[at + key.size()] == '1' || s[at + key.size()] == '2');
  } catch (...) {
    return false;
  }
  return on && huge_pages_offered();
#else
  return false;
#endif
}

}  // namespace provnn
