// Keeping freed memory in the process (glibc), so that repeated builds reuse warm pages.
//
// glibc serves blocks above its mmap threshold (128 KiB at first, adapting upwards) with a
// fresh mmap and returns them with munmap on free, and trims the heap top above 128 KiB.
// A circuit build allocates a few large arrays per stage and per circuit; in a loop of
// builds (batch, bench, a service) every one of them came back as fresh pages, and the
// kernel's page-fault handling was the largest single cost: 24 % of a fused build's profile;
// with the settings below, `provnn bench` built 784-300-100-10 6.5× faster and a one-thread
// batch of 64 fused circuits took 0.42–0.45 s instead of 1.69–1.85 s (docs/performance.md,
// "Update 2026-11-30 (evening): freed memory").
//
// Transparent huge pages for malloc's large blocks (glibc ≥ 2.35, `glibc.malloc.hugetlb=1`):
// on the 2-core VMs we measure on, a first touch of a 4 KiB page costs several microseconds,
// and a vgg-small bench run (a 93 MiB circuit, built, saved and loaded from arrays above the
// mmap threshold) faulted in 355 000 pages; with huge pages, 9 200. glibc reads the setting
// only at start-up, so the command-line tool re-executes itself once with it
// (use_huge_pages_for_malloc()); docs/performance.md, "Update 2026-12-01 (second session)".
#pragma once

#include <string>

namespace provnn {

/// Raises glibc's mmap threshold to its maximum (32 MiB on 64-bit) and its trim threshold to
/// 256 MiB, so blocks below those sizes are reused from the heap instead of being unmapped and
/// faulted in again. The price: freed memory stays with the process — each arena keeps up to
/// 256 MiB of free heap top, and freed blocks inside a heap are not returned to the system — so
/// a long-running process keeps its high-water mark (the peak itself does not grow: freed
/// memory is reused). Does nothing when the user set MALLOC_*_ environment variables or
/// GLIBC_TUNABLES (theirs win), or when the C library is not glibc. Process-wide: the
/// command-line tool calls it first thing; a library user opts in. Returns true when applied.
bool retain_freed_memory() noexcept;

/// The GLIBC_TUNABLES value use_huge_pages_for_malloc() sets: huge pages for malloc's large
/// blocks, and the two thresholds of retain_freed_memory() (on 64-bit:
/// glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456).
std::string huge_page_tunables();

/// For a program's main(), before anything else: re-executes the program once
/// (/proc/self/exe, same argv) with GLIBC_TUNABLES = huge_page_tunables() and the marker
/// PROVNN_REEXECUTED (removed again after the exec), so that malloc backs its large blocks
/// with transparent huge pages and keeps freed memory. Returns — without re-executing — when
/// the user set GLIBC_TUNABLES or any MALLOC_*_ variable (theirs win), when PROVNN_HUGE_PAGES
/// is 0, off, false or no, when the C library is not glibc ≥ 2.35, when the kernel offers no
/// transparent huge pages, under a sanitizer or valgrind (their allocators replace glibc's,
/// and an exec would leave valgrind), in secure mode (setuid), when the program was started
/// through the dynamic loader, or when the exec fails; the program then goes on as it was
/// started. Call retain_freed_memory() after it in any case (it does nothing once
/// GLIBC_TUNABLES is set). Open descriptors, ignored signals and limits pass through the exec.
void use_huge_pages_for_malloc(char** argv) noexcept;

/// Whether this process's malloc backs large blocks with huge pages, as far as glibc's
/// settings tell: GLIBC_TUNABLES sets glibc.malloc.hugetlb to 1 or 2, glibc is 2.35 or
/// later and the kernel offers transparent huge pages (an allocator preloaded in glibc's place
/// is not detected). False on other C libraries and under sanitizers.
bool malloc_uses_huge_pages() noexcept;

}  // namespace provnn
