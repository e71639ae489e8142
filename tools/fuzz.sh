#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan + libFuzzer) in build-fuzz/
# and runs each for N executions from its seed corpus, then prints one line per target:
# executions, wall time, exec/s, and libFuzzer's final cov: (edges) and ft: (features).
#
#   tools/fuzz.sh [RUNS] [TARGET...]      RUNS defaults to 1000000; TARGETs default to all
#
# Environment: FUZZ_NO_BUILD=1 (use the binaries as built), FUZZ_JOBS (parallel targets, default 1), FUZZ_MAX_TOTAL_TIME (seconds per
# target, default 0 = no cap), FUZZ_WORK (scratch corpus folder, default build-fuzz/work).
# The committed corpus under fuzz/corpus/ is only read; new inputs go to the scratch folder.
# Crashes are written to build-fuzz/work/<target>/crash-*; copy one to
# fuzz/regressions/<target>/ and add a test in tests/cli/reliability_test.cpp.
# Timing on the 2-core shared development machine: build ≈ 6 min, runs in docs/reliability.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-1000000}"
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(onnx npy png circuit_file valuation_json rules semiring edge_annotation tokens)
build="$root/build-fuzz"
work="${FUZZ_WORK:-$build/work}"

if [[ -z "${FUZZ_NO_BUILD:-}" ]]; then
  cmake -S "$root/fuzz" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j2 $(printf -- '--target fuzz_%s ' "${targets[@]}")
fi

max_len() {
  case "$1" in
    onnx) echo 32768 ;; circuit_file) echo 16384 ;; png|npy) echo 4096 ;; valuation_json) echo 1024 ;; *) echo 256 ;;
  esac
}

run_one() {
  local t="$1" dir="$work/$1" log="$work/$1.log"
  mkdir -p "$dir"
  local start end
  start=$(date +%s.%N)
  set +e
  (cd "$dir" && "$build/fuzz_$t" -runs="$runs" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -timeout=10 \
      -max_total_time="${FUZZ_MAX_TOTAL_TIME:-0}" -print_final_stats=1 "$dir" "$root/fuzz/corpus/$t") >"$log" 2>&1
  local rc=$?
  set -e
  end=$(date +%s.%N)
  local execs cov ft
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
  awk -v t="$t" -v e="$execs" -v s="$start" -v f="$end" -v c="$cov" -v x="$ft" -v rc="$rc" \
    'BEGIN { d = f - s; printf "%-16s execs %-9s time %7.1f s  exec/s %-7.0f cov %-5s ft %-6s %s\n", t, e, d, (d > 0 ? e / d : 0), c, x, (rc == 0 ? "clean" : "CRASH (see log)") }'
  return 0
}

echo "target           results (logs in $work/<target>.log)"
jobs_max="${FUZZ_JOBS:-1}"
for t in "${targets[@]}"; do
  run_one "$t" &
  while [[ $(jobs -rp | wc -l) -ge $jobs_max ]]; do wait -n; done
done
wait
