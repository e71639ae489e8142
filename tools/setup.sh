#!/usr/bin/env bash
# Installs every Debian package provnn needs to build, test and run, on a fresh
# Debian 12 machine, as root. Idempotent: packages already present are skipped,
# and apt is not touched at all when nothing is missing.
#
#   bash tools/setup.sh          # build + test + run dependencies
#   bash tools/setup.sh --dev    # also what regenerating the fixtures needs
#                                # (scikit-learn's bundled digits)
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-graph-dev      # Boost.Graph, Boost.Multiprecision (header-only)
  libfmt-dev doctest-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libpng-dev zlib1g-dev libeigen3-dev
  libbenchmark-dev
  libflint-dev                        # bench/nx_flint_bench: N[X] against FLINT's fmpz_mpoly
  graphviz                            # `dot` parses every DOT file the tests write
  python3 python3-numpy python3-pytest python3-dev pybind11-dev   # the Python module and its tests
  python3-dask python3-distributed     # provnn.dask (tested on a LocalCluster)
  python3-torch python3-onnx           # provnn.torch, and the Python tests' PyTorch references
)
if [[ "${1:-}" == "--dev" ]]; then
  packages+=(python3-sklearn)
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
