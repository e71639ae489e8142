#!/usr/bin/env bash
# How much of top-k evaluation is making monomials, and what is left without them (issue 5).
#
#   tools/topk_floor.sh [BUILD=build] [ROUNDS=6] [SPEC=mlp:784-300-100-10] [REPEAT=200] [LAYOUT=fused]
#
# Compiles tools/topk_floor.cpp twice against BUILD's libprovnn.a (a release build):
#   as-is        semirings/topk.hpp as it is;
#   scores-only  a copy of it whose times_into and phi_times_into write each entry's score but
#                not its monomial (pass 1, the floor, offer and the sort unchanged).
# then runs the two alternately, pinned, ROUNDS times each (this VM's speed drifts), and
# prints every run and the minima. The two must agree on the scores (checksum): the selection
# is the same, only the monomials are skipped. The scores-only time bounds from below any
# design that makes monomials on read (entries holding back-pointers). Run it alone.
set -euo pipefail
build=${1:-build}
rounds=${2:-6}
spec=${3:-mlp:784-300-100-10}
repeat=${4:-200}
layout=${5:-fused}
root=$(cd "$(dirname "$0")/.." && pwd)
lib="$build/libprovnn.a"
[[ -f $lib ]] || { echo "topk_floor: $lib not found (build the library first)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/alt/semirings"
python3 - "$root/semirings/topk.hpp" "$work/alt/semirings/topk.hpp" <<'PY'
import sys
src = open(sys.argv[1]).read()
cuts = [  # (what, the monomial statement, its replacement)
    ("times_into", "many.with_mono(i, [&](const monomial& y) { e.mono.assign_product(x, y); });", "(void)x;"),
    ("phi_times_into", """c.psi->with_mono(c.a, [&](const monomial& x) {
          c.sigma->with_mono(c.b, [&](const monomial& y) { e.mono.assign_product(pm, x, y); });
        });""", "(void)pm;"),
]
for what, old, new in cuts:
    if src.count(old) != 1:
        print(f"topk_floor: {what}'s monomial statement not found once in semirings/topk.hpp; update tools/topk_floor.sh",
              file=sys.stderr)
        sys.exit(2)
    src = src.replace(old, new)
open(sys.argv[2], "w").write(src)
PY

cxx=${CXX:-g++}
flags=(-O3 -DNDEBUG -march=native -ffp-contract=off -std=c++20 -DFMT_SHARED)
libs=("$lib" -lfmt -lonnx_proto -lprotobuf -lpng -lz -lpthread)
"$cxx" "${flags[@]}" -I"$root" "$root/tools/topk_floor.cpp" -o "$work/as-is" "${libs[@]}"
"$cxx" "${flags[@]}" -I"$work/alt" -I"$root" "$root/tools/topk_floor.cpp" -o "$work/scores-only" "${libs[@]}"

pin=()
command -v taskset > /dev/null && pin=(taskset -c 1)
for ((r = 1; r <= rounds; ++r)); do
  for v in as-is scores-only; do
    echo "$v $("${pin[@]}" "$work/$v" "$spec" "$repeat" "$layout")"
  done
done | tee "$work/runs"
awk '{ t = $3; re = $5; if (!($1 in mt) || t < mt[$1]) mt[$1] = t; if (!($1 in mr) || re < mr[$1]) mr[$1] = re;
       sum[$1] = $11 }
     END { for (v in mt) printf "%s: top-k min %.1f us, real min %.1f us, top-k / real %.1fx, checksum %s\n", v, mt[v], mr[v], mt[v] / mr[v], sum[v];
           if (sum["as-is"] != sum["scores-only"]) { print "topk_floor: the checksums differ" > "/dev/stderr"; exit 1 } }' "$work/runs"
