#!/usr/bin/env bash
# The main job of README.md: set up, build, and explain the bundled digits model's decision
# on a bundled input — as numbers, as pictures, and as a provenance circuit read in several
# semirings. Everything it writes goes to out/ (override with OUT=dir).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target provnn_cli >/dev/null

provnn=build/cli/provnn
model=tests/data/models/digits_mlp.onnx       # 64-32-16-10 ReLU MLP trained on 8×8 digits
input=tests/data/inputs/mlp_input_0.npy       # a handwritten 0 from the test split
out=${OUT:-out}
mkdir -p "$out"
semirings=(-s real -s boolean -s counting -s viterbi -s max-plus -s lineage -s topk:3)
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

step "1. What does the network predict, and which pixels explain it? (LRP-ε, numeric)"
"$provnn" explain "$model" --input "$input" --heatmap "$out/heatmap.png" --overlay

step "2. The same explanation as a provenance circuit: built once, saved, read in $((${#semirings[@]} / 2)) semirings"
echo "   (real = the heatmap again; boolean = is there a path; counting = how many paths;"
echo "    viterbi / max-plus = the strongest single path; lineage = which tokens take part;"
echo "    topk:3 = the three strongest paths, named)"
"$provnn" build "$model" --input "$input" -o "$out/digit.pvc" "${semirings[@]}" --show 3 | tee "$out/built.txt"

step "3. What is in the circuit file"
"$provnn" info "$out/digit.pvc"

step "4. The 10 most relevant paths through the network, as a picture"
"$provnn" dot "$out/digit.pvc" --top-paths 10 -o "$out/top-paths.dot"
if command -v dot >/dev/null 2>&1; then
  dot -Tsvg "$out/top-paths.dot" -o "$out/top-paths.svg" && echo "wrote $out/top-paths.svg"
fi

step "5. The 5 leading monomials (paths) of the most relevant pixel's relevance polynomial"
"$provnn" poly "$out/digit.pvc" --feature max --top 5

step "6. Reload the saved circuit and evaluate it again: the results must be identical"
"$provnn" eval "$out/digit.pvc" "${semirings[@]}" --show 3 > "$out/reloaded.txt"
if diff <(tail -n +2 "$out/built.txt") "$out/reloaded.txt" >/dev/null; then
  echo "identical: $(($(wc -l < "$out/reloaded.txt"))) lines of results from the reloaded $out/digit.pvc match the circuit as built"
else
  echo "MISMATCH between the built and the reloaded circuit:" >&2
  diff <(tail -n +2 "$out/built.txt") "$out/reloaded.txt" >&2
  exit 1
fi

step "Done"
echo "Pictures: $out/heatmap.png, $out/top-paths.dot$(command -v dot >/dev/null 2>&1 && echo ", $out/top-paths.svg")."
echo "Try: $provnn --help, $provnn semirings, docs/user-guide.md."
