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
#pragma once

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

}  // namespace provnn
