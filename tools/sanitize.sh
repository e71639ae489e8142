#!/usr/bin/env bash
# Builds the whole project and its test suite under AddressSanitizer + UndefinedBehaviorSanitizer
# in build-asan/ and runs ctest there.
#
#   tools/sanitize.sh [gcc|clang] [ctest args...]      (default gcc)
#
# -O1 keeps the run time bearable; -fno-sanitize-recover makes any UB report fail its test.
# Time on the 2-core shared development machine: about 15–20 min to build from scratch
# (the ONNX importer and the semiring-heavy tests dominate), a few minutes for ctest; see
# docs/reliability.md for the last measured figures.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
compiler="${1:-gcc}"
shift || true
case "$compiler" in
  gcc) cxx=g++ ;;
  clang) cxx=clang++ ;;
  *) echo "usage: $0 [gcc|clang] [ctest args...]" >&2; exit 2 ;;
esac
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
build="$root/build-asan"

start=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DPROVNN_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j2
built=$(date +%s)

# detect_leaks: LeakSanitizer is on by default on x86-64 Linux; halt_on_error makes the first
# report fail the test instead of scrolling by.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
set +e
ctest --test-dir "$build" --output-on-failure -j2 "$@"
rc=$?
set -e
done_at=$(date +%s)
echo "sanitize.sh ($compiler): build $((built - start)) s, ctest $((done_at - built)) s, ctest exit $rc"
exit $rc
