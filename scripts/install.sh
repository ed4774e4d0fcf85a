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
# MONAI Label (the label-propagation app in apps/registration and its server test). monailabel declares
# monai[torchvision,...] and sam2, which pull torchvision builds that do not load beside the CPU torch (and could
# replace torch); the server and the BasicInferTask it needs import neither. So monailabel and pydicom-seg (which
# pins jsonschema < 4, below what the bundles' metadata checks need) are installed without their dependencies,
# and the server's own dependencies below, with pydicom 2 and dicomweb-client 0.59 (the last pair that agree).
"$PY" -m pip install --quiet --no-deps "monailabel==0.8.5" "pydicom-seg==0.4.1"
# The MNI152 2009a template that nilearn ships in its files is the brain bundles' default atlas
# (monai_ext/data/mni152_atlas.py reads the files only, so nilearn's own dependencies are not needed).
"$PY" -m pip install --quiet --no-deps "nilearn==0.14.1"
"$PY" -m pip install --quiet "fastapi>=0.110.2" "uvicorn>=0.29.0" "pydantic>=2.7.0" "pydantic-settings>=2.2.1" \
    "python-dotenv>=1.0.1" "python-multipart>=0.0.9" "httpx>=0.27.0" "schedule>=1.2.1" "timeloop>=1.0.2" \
    "expiringdict>=1.2.2" "expiring_dict>=1.1.0" "cachetools>=5.3.3" "watchdog>=4.0.0" "pydicom>=2.4.4,<3" \
    "dicomweb-client[gcp]==0.59.1" "google-auth>=2.29.0" "pynetdicom>=2.0.2" "pynrrd>=1.0.0" "girder-client>=3.2.3" \
    "einops>=0.7.0" "filelock>=3.11.0" "passlib>=1.7.4" "pyjwt>=2.8.0" "bcrypt>=4.1.2" "requests-toolbelt>=1.0.0" \
    "psutil" "jsonschema>=4.0" "SimpleITK>=2.2"
