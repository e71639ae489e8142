#!/usr/bin/env bash
# Installs every Debian package provnn needs to build, test and run, on a fresh
# Debian 12 machine, as root. Idempotent: packages already present are skipped,
# and apt is not touched at all when nothing is missing.
#
#   bash tools/setup.sh          # build + test + run dependencies
#   bash tools/setup.sh --dev    # also what regenerating the fixtures needs
#                                # (PyTorch, scikit-learn, ONNX for Python)
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-graph-dev      # Boost.Graph, Boost.Multiprecision (header-only)
  libfmt-dev doctest-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libpng-dev libeigen3-dev
  libbenchmark-dev
  graphviz                            # `dot` parses every DOT file the tests write
  python3 python3-numpy python3-pytest python3-dev pybind11-dev
)
if [[ "${1:-}" == "--dev" ]]; then
  packages+=(python3-torch python3-sklearn python3-onnx)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run this script as root (or install them with sudo apt-get install)" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
