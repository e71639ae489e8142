#!/usr/bin/env bash
# Sanitizer runs of the test suite (issue 7; figures in docs/reliability.md).
#
#   tools/sanitize.sh [address] [gcc|clang] [ctest args...]   ASan + UBSan + LeakSanitizer,
#                                                             whole suite, in build-asan/
#   tools/sanitize.sh thread [gcc|clang]                      ThreadSanitizer, in build-tsan/:
#       the concurrency tests (one circuit evaluated from several threads) and the CLI's
#       multi-threaded `batch` command
#
# -O1 keeps the run time bearable; -fno-sanitize-recover makes any UB report fail its test.
# The Python module is left out (Debian's python3 is not instrumented, so an instrumented
# extension cannot be loaded into it). Time on the 2-core development machine: about 25 min
# to build the address configuration from scratch, a few minutes for ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode=address
if [[ "${1:-}" == address || "${1:-}" == thread ]]; then mode="$1"; shift; fi
compiler="${1:-gcc}"
shift || true
case "$compiler" in
  gcc) cxx=g++ ;;
  clang) cxx=clang++ ;;
  *) echo "usage: $0 [address|thread] [gcc|clang] [ctest args...]" >&2; exit 2 ;;
esac

start=$(date +%s)
if [[ "$mode" == address ]]; then
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
  build="$root/build-asan"
  cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DPROVNN_BUILD_BENCH=OFF -DPROVNN_BUILD_PYTHON=OFF >/dev/null
  cmake --build "$build" -j2
  built=$(date +%s)
  # detect_leaks: LeakSanitizer is on by default on x86-64 Linux; halt_on_error makes the
  # first report fail the test instead of scrolling by.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  set +e
  ctest --test-dir "$build" --output-on-failure -j2 -E 'install/consumer' "$@"
  rc=$?
  set -e
else
  flags="-fsanitize=thread -fno-omit-frame-pointer -O1 -g"
  build="$root/build-tsan"
  cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
    -DPROVNN_BUILD_BENCH=OFF -DPROVNN_BUILD_PYTHON=OFF >/dev/null
  cmake --build "$build" -j2 --target tests_engine provnn_cli
  built=$(date +%s)
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
  set +e
  rc=0
  "$build/tests/tests_engine" --test-case='concurrency*' || rc=$?
  if ((rc == 0)); then
    work="$(mktemp -d)"
    # batch: worker threads share the network and write disjoint rows of one result.
    "$build/cli/provnn" batch "$root/tests/data/models/digits_cnn.onnx" -i "$root/tests/data/inputs/cnn_batch_u8.npy" \
      -o "$work/R.npy" -s real -s counting -j 4 || rc=$?
    rm -rf "$work"
  fi
  set -e
fi
done_at=$(date +%s)
echo "sanitize.sh $mode ($compiler): build $((built - start)) s, tests $((done_at - built)) s, exit $rc"
exit $rc
