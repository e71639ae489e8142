#!/usr/bin/env bash
# Re-measures issue 5's evaluation, build and memory targets with `provnn bench`, pinned to
# one core, and prints one line per run (medians; ratios to real evaluation in the same run).
# The JSON of every run stays in OUT for a closer look. About 5 minutes on the 2-core VM.
#
#   tools/bench_targets.sh [BUILD_DIR=build] [OUT=bench-targets]
#
# Needs a release build (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2).
# Benchmarks sharing the machine with a build or another benchmark measure the neighbour:
# run it alone. docs/performance.md says what each target is.
set -euo pipefail
build=${1:-build}
out=${2:-bench-targets}
provnn="$build/cli/provnn"
[[ -x $provnn ]] || { echo "bench_targets: $provnn not found (build provnn_cli first)" >&2; exit 2; }
mkdir -p "$out"
pin=()
command -v taskset > /dev/null && pin=(taskset -c 1)

run() {  # run NAME ARGS...: one bench, its JSON into OUT/NAME.json
  local name=$1
  shift
  "${pin[@]}" "$provnn" bench "$@" --json > "$out/$name.json.tmp"
  mv "$out/$name.json.tmp" "$out/$name.json"
}
run mlp300_1 --synthetic mlp:784-300-100-10 --layout fused --repeat 20
run mlp300_2 --synthetic mlp:784-300-100-10 --layout fused --repeat 20
run lenet5_1 --synthetic lenet5 --layout structured --repeat 10
run lenet5_2 --synthetic lenet5 --layout structured --repeat 10
run mlp1000 --synthetic mlp:784-1000-1000-1000-10 --layout fused --repeat 3
run vgg --synthetic vgg-small --layout structured --repeat 3 --max-edges 200000000 \
  -s real -s max-plus -s viterbi -s boolean -s counting -s topk:10

python3 - "$out" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(f.read_text())
    ev, r = d["phases_us"]["eval"], d["ratios"]
    over = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["eval_over_real"].items()))
    print(f"{f.stem}: real {ev['real']:.1f} us = {r['eval_real_over_lrp_dense']:.2f}x dense LRP; "
          f"x real: {over}; build {r['build_ns_per_edge']:.2f} ns/edge, build + real "
          f"{r['build_plus_eval_real_us']:.0f} us; {r['bytes_memory_per_edge']:.2f} B/edge in memory, "
          f"{r['bytes_file_per_edge']:.2f} in the file")
PY
