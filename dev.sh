#!/usr/bin/env bash
# glassnet's two set-up commands, for a fresh machine (Debian/Ubuntu, Python >= 3.11):
#   bash dev.sh train   install glassnet and Fashion-MNIST, train the MLP preset, print test accuracy
#   bash dev.sh test    install the test dependencies (PyTorch 2.13.0 CPU, the reference) and run
#                       the lint and the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

install_data() {
  if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
  fi
}

case "${1:-}" in
  train)
    install_data
    "$PY" -m pip install -q -e .
    shift
    # a fresh run each time: runs/mlp is replaced (glassnet train --resume runs/mlp continues a killed one)
    glassnet train --dataset fashion-mnist --model mlp --out runs/mlp --overwrite "$@"
    ;;
  test)
    install_data
    # torch==2.13.0 exactly: an unpinned torch would pull a multi-GB CUDA build
    "$PY" -m pip install -q -e ".[test]"
    shift
    ruff check glassnet tests benchmarks
    ruff format --check glassnet tests benchmarks
    "$PY" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash dev.sh train [glassnet train options] | bash dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac
