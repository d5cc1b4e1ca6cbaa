#!/usr/bin/env bash
# glassnet's two set-up commands, for a fresh machine (Debian/Ubuntu, Python >= 3.11):
#   bash dev.sh train   install glassnet and Fashion-MNIST, train the MLP preset, print test accuracy
#   bash dev.sh test    install the test and docs dependencies (PyTorch 2.13.0 CPU, the reference;
#                       Chromium for the site test) and run the lint, the whole test suite (the
#                       tutorials included) and the strict build of the documentation site
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

use_venv_if_needed() {
  # Debian's and Ubuntu's own python refuses pip installs outside a virtual environment (PEP 668:
  # "externally-managed-environment"); with that python and none active, make .venv (python3-venv
  # from apt if venv is missing) and install into it. Any other python is used as it is.
  if "$PY" -c 'import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)'; then
    if [ ! -x .venv/bin/python ]; then
      if ! "$PY" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        "$PY" -m venv .venv
      fi
    fi
    echo "dev.sh: installing into .venv ($PY refuses installs outside a virtual environment)" >&2
    PY="$PWD/.venv/bin/python"
    export PATH="$PWD/.venv/bin:$PATH"
  fi
}

install_chromium() {
  # the site test opens the built pages in headless Chromium (Debian's package)
  if ! command -v chromium >/dev/null; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
}

case "${1:-}" in
  train)
    install_data
    use_venv_if_needed
    "$PY" -m pip install -q -e .
    shift
    # a fresh run each time: runs/mlp is replaced (glassnet train --resume runs/mlp continues a killed one)
    glassnet train --dataset fashion-mnist --model mlp --out runs/mlp --overwrite "$@"
    ;;
  test)
    install_data
    install_chromium
    use_venv_if_needed
    # torch==2.13.0 exactly: an unpinned torch would pull a multi-GB CUDA build
    "$PY" -m pip install -q -e ".[test,docs]"
    shift
    ruff check glassnet tests benchmarks docs/hooks docs/tutorials examples
    ruff format --check glassnet tests benchmarks docs/hooks docs/tutorials examples
    "$PY" -m pytest -q "$@"
    # the tutorials ran in the tests above and are cached in build/tutorials: not run twice
    NO_MKDOCS_2_WARNING=1 "$PY" -m mkdocs build --strict
    ;;
  *)
    echo "usage: bash dev.sh train [glassnet train options] | bash dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac
