#!/usr/bin/env bash
# The benchmark environment: the project plus the tools users would pick instead, side by side in one
# virtual environment (bench/.venv by default), so that every comparison in bench/ runs ours and the
# peer in one process on the same inputs.
#   uniGradICON / ICON    unigradicon 1.0.6, icon_registration 1.1.9 (without torchvision, which only
#                         their MNIST / ConstrICON modules need and which would replace a CPU torch)
#   ANTs                  antspyx (needs numpy < 2.4 and scipy < 1.16: hence a separate environment)
#   FireANTs              fireants without its CUDA-only fused operators (it falls back to PyTorch)
#   VENV        where the environment lives (default bench/.venv)
#   TORCH_SPEC  the PyTorch requirement (default torch==2.13.0, the CPU build)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-bench/.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PY="$VENV/bin/python"
"$PY" -c "import torch" >/dev/null 2>&1 || "$PY" -m pip install --quiet "$TORCH_SPEC"
# numpy and scipy within antspyx's bounds first, so that the project's own install keeps them
"$PY" -m pip install --quiet "numpy>=1.26,<2.4" "scipy>=1.11,<1.16"
"$PY" -m pip install --quiet -e . "numpy<2.4" "scipy<1.16"
"$PY" -m pip install --quiet --no-deps "icon_registration==1.1.9" "unigradicon==1.0.6" "footsteps>=0.1.6"
"$PY" -m pip install --quiet "antspyx==0.6.3" "numpy<2.4" "scipy<1.16"
"$PY" -m pip install --quiet --no-deps "fireants==1.5.0"
"$PY" -m pip install --quiet "hydra-core>=1.3" "scikit-image>=0.22" "pandas" "tqdm" "SimpleITK>=2.2" "numpy<2.4" "scipy<1.16"
"$PY" - <<'PYTHON'
import ants, fireants.registration.greedy, icon_registration, torch, unigradicon  # noqa: F401  every peer imports
print(f"bench environment ready: torch {torch.__version__}, antspyx {ants.__version__}, fireants, unigradicon")
PYTHON
