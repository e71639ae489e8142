// retain_freed_memory(): after it, a loop that builds and drops large arrays (as a batch of
// circuit builds does) reuses warm pages instead of faulting in fresh ones each time; a
// user's MALLOC_* setting wins over it.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/allocator.hpp"
#include "tests/common/huge_pages_expected.hpp"

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

/// Grows three arrays to 4, 8 and 12 MiB by push_back (as a builder's arrays grow), touches
/// them, frees them.
void build_and_drop() {
  std::vector<double> a, b, c;
  for (int i = 0; i < (1 << 19); ++i) a.push_back(i);
  for (int i = 0; i < (1 << 20); ++i) b.push_back(i);
  for (int i = 0; i < (3 << 19); ++i) c.push_back(i);
  volatile double sink = a.back() + b.back() + c.back();
  (void)sink;
}

}  // namespace

// (Sanitizer builds: mallopt does nothing there, and reports so.)

TEST_CASE("retain_freed_memory: repeated builds stop faulting in fresh pages") {
#if defined(PROVNN_TEST_SANITIZED)
  MESSAGE("sanitizer build: glibc's allocator is not in use, nothing to measure");
#elif defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
      std::getenv("MALLOC_TOP_PAD_") || std::getenv("GLIBC_TUNABLES")) {
    CHECK_FALSE(provnn::retain_freed_memory());
    return;
  }
  REQUIRE(provnn::retain_freed_memory());
  build_and_drop();  // the first build faults its pages in: (4 + 8 + 12) MiB / 4 KiB ≈ 6 100 at least
  const long before = minor_faults();
  for (int i = 0; i < 10; ++i) build_and_drop();
  const long per_build = (minor_faults() - before) / 10;
  MESSAGE("minor page faults per repeated build: ", per_build);
  // Without the setting glibc unmaps the larger blocks on free: thousands of faults per build.
  CHECK(per_build < 300);
#else
  CHECK_FALSE(provnn::retain_freed_memory());
#endif
}

TEST_CASE("malloc_uses_huge_pages reads glibc.malloc.hugetlb from GLIBC_TUNABLES, the last setting winning") {
  const char* old = std::getenv("GLIBC_TUNABLES");
  const std::string saved = old ? old : "";
  struct {
    const char* tunables;
    bool expected;
  } const cases[] = {
      {"glibc.malloc.hugetlb=1", true},
      {"glibc.malloc.hugetlb=2", true},
      {"glibc.malloc.hugetlb=0", false},
      {"glibc.malloc.mmap_threshold=4096:glibc.malloc.hugetlb=1", true},
      {"glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0", false},
      {"glibc.malloc.hugetlb=0:glibc.malloc.hugetlb=1", true},
      {"xglibc.malloc.hugetlb=1", false},
      {"glibc.malloc.hugetlb=", false},
  };
  const std::string ours = provnn::huge_page_tunables();
  // The kernel and glibc must offer huge pages too: expected from the machine, independently.
  const bool offered = provnn::test::huge_pages_offered_here();
  MESSAGE("huge pages offered here: ", offered);
  for (const auto& c : cases) {
    CAPTURE(c.tunables);
    ::setenv("GLIBC_TUNABLES", c.tunables, 1);
    CHECK(provnn::malloc_uses_huge_pages() == (c.expected && offered));
  }
  ::setenv("GLIBC_TUNABLES", ours.c_str(), 1);
  CHECK(provnn::malloc_uses_huge_pages() == offered);
  CHECK(ours.rfind("glibc.malloc.hugetlb=1:", 0) == 0);
  ::unsetenv("GLIBC_TUNABLES");
  CHECK_FALSE(provnn::malloc_uses_huge_pages());
  if (old) ::setenv("GLIBC_TUNABLES", saved.c_str(), 1);
}
