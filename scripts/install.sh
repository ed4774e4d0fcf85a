#!/usr/bin/env bash
# Create (when missing) the project's virtual environment and install the project and its test extra into it.
#   VENV        where the environment lives (default: .venv in the repository root); it never uses the
#               machine's site-packages, so a dependency missing from setup.cfg fails here and in CI
#   FRESH_VENV  1 / true: delete VENV first and build it anew
#   TORCH_SPEC  the PyTorch requirement installed first when the environment has none
#               (default torch==2.13.0, the CPU build; falls back to the newest torch)
#   PYTHON      the interpreter that creates the environment (default python3)
# Callers put "$VENV/bin" first on PATH afterwards (scripts/test.sh, scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
case "${FRESH_VENV:-0}" in
    1|true|True|TRUE) rm -rf "$VENV" ;;
    0|false|False|FALSE|"") ;;
    *) echo "FRESH_VENV must be 1/true or 0/false, got '${FRESH_VENV}'" >&2; exit 2 ;;
esac
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "$TORCH_SPEC" || "$PY" -m pip install --quiet torch
fi
"$PY" -m pip install --quiet -e ".[test]"
# Reference implementations (ICON, uniGradICON) used by the comparison tests and benchmarks. Installed without their
# dependencies: icon_registration declares torchvision, which only its MNIST/ConstrICON modules (not used here) need,
# and which would replace a CPU-only torch with a CUDA build.
"$PY" -m pip install --quiet --no-deps "icon_registration==1.1.9" "unigradicon==1.0.6" "footsteps>=0.1.6"
