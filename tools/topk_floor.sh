#!/usr/bin/env bash
# How much of top-k evaluation is making monomials, and what is left without them (issue 5).
#
#   tools/topk_floor.sh [BUILD=build] [ROUNDS=6] [SPEC=mlp:784-300-100-10] [REPEAT=200] [LAYOUT=fused]
#
# Compiles tools/topk_floor.cpp twice against BUILD's libprovnn.a (a release build):
#   as-is        semirings/topk.hpp as it is;
#   scores-only  a copy of it whose times_into and phi_times_into write each entry's score but
#                not its monomial, and whose settle() keeps one-entry lists boxed (with no
#                monomial, they would otherwise be unboxed and boxed again every evaluation).
#                Pass 1, the floor, offer and the sort are unchanged.
# then runs the two alternately, pinned, ROUNDS times each (this VM's speed drifts; which goes
# first alternates too), and prints every run and the minima. Checks, exit 1 if one fails:
# every run has the same entries and score checksum (the selection is the same up to the order
# of exact |score| ties), and scores-only has fewer monomial factors than as-is (its patched
# header was used: the library holds its own copies of these inline functions).
# Scores-only keeps today's entry layout (a score and a 16-factor inline monomial, ≈ 150
# bytes), so it is the floor of skipping monomials in that layout, not of every design.
# Exit 2 for a missing build, a kernel whose text no longer matches the patch, or a failed
# compile. Run it alone.
set -euo pipefail
build=${1:-build}
rounds=${2:-6}
spec=${3:-mlp:784-300-100-10}
repeat=${4:-200}
layout=${5:-fused}
root=$(cd "$(dirname "$0")/.." && pwd)
lib="$build/libprovnn.a"
[[ -f $lib ]] || { echo "topk_floor: $lib not found (build the library first)" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "topk_floor: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/alt/semirings"
python3 - "$root/semirings/topk.hpp" "$work/alt/semirings/topk.hpp" <<'PY'
import sys
src = open(sys.argv[1]).read()
cuts = [  # (where, the statement, its replacement)
    ("times_into", "many.with_mono(i, [&](const monomial& y) { e.mono.assign_product(x, y); });", "(void)x;"),
    ("phi_times_into", """c.psi->with_mono(c.a, [&](const monomial& x) {
          c.sigma->with_mono(c.b, [&](const monomial& y) { e.mono.assign_product(pm, x, y); });
        });""", "(void)pm;"),
    ("settle", "if (e.empty() || (e.size() == 1 && (e[0].mono.is_one() || (e[0].mono.size() == 1 && e[0].mono[0].exponent == 1)))) {",
     "if (e.empty()) {"),
]
for where, old, new in cuts:
    if src.count(old) != 1:
        print(f"topk_floor: {where}'s statement not found once in semirings/topk.hpp; update tools/topk_floor.sh",
              file=sys.stderr)
        sys.exit(2)
    src = src.replace(old, new)
open(sys.argv[2], "w").write(src)
PY

cxx=${CXX:-g++}
flags=(-O3 -DNDEBUG -march=native -ffp-contract=off -std=c++20 -DFMT_SHARED)
libs=("$lib" -lfmt -lonnx_proto -lprotobuf -lpng -lz -lpthread)
compile() {  # compile OUT [INCLUDE...]: the program's object before the library, so its inline copies win
  local out=$1
  shift
  "$cxx" "${flags[@]}" "$@" -I"$root" "$root/tools/topk_floor.cpp" -o "$out" "${libs[@]}" ||
    { echo "topk_floor: compiling $(basename "$out") failed" >&2; exit 2; }
}
compile "$work/as-is"
compile "$work/scores-only" -I"$work/alt"

pin=()
command -v taskset > /dev/null && pin=(taskset -c 1)
order=(as-is scores-only)
for ((r = 1; r <= rounds; ++r)); do
  for v in "${order[@]}"; do
    out=$("${pin[@]}" "$work/$v" "$spec" "$repeat" "$layout")  # a failure ends the script with its code
    echo "$v $out"
  done
  order=("${order[1]}" "${order[0]}")
done | tee "$work/runs"
awk 'NF != 13 { print "topk_floor: unexpected line: " $0 > "/dev/stderr"; bad = 1; next }
     { v = $1; t = $3; re = $5;
       if (!(v in mt) || t < mt[v]) mt[v] = t; if (!(v in mr) || re < mr[v]) mr[v] = re;
       fac[v] = $11;
       if (sum == "") { sum = $13; ent = $9 } else if ($13 != sum || $9 != ent) diff = 1 }
     END { if (bad) exit 1;
           for (v in mt) printf "%s: top-k min %.1f us, real min %.1f us, min / min %.1fx, factors %s\n", v, mt[v], mr[v], mt[v] / mr[v], fac[v];
           printf "entries %s, checksum %s\n", ent, sum;
           if (diff) { print "topk_floor: the runs differ in entries or scores" > "/dev/stderr"; exit 1 }
           if (!(fac["scores-only"] + 0 < fac["as-is"] + 0)) { print "topk_floor: scores-only made as many monomial factors as as-is: its patched header was not used" > "/dev/stderr"; exit 1 } }' "$work/runs"
