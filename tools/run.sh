#!/usr/bin/env bash
# The main job of README.md: set up, build, explain the bundled default model's decision.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target provnn_cli
exec build/cli/provnn explain tests/data/models/digits_mlp.onnx --input tests/data/inputs/mlp_input_0.npy "$@"
