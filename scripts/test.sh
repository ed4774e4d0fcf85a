#!/usr/bin/env bash
# Install the project into its own virtual environment (scripts/install.sh: .venv, never the machine's
# site-packages) and run the test suite on the CPU.
#   bash scripts/test.sh                  both tiers: the fast one (-m "not slow"), then the end-to-end one (-m slow)
#   bash scripts/test.sh -m "not slow"    any pytest arguments: one pytest run with them
# Measured times of each tier: README.md, "Tests".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY="${VENV:-.venv}/bin/python"
if [[ $# -gt 0 ]]; then
    exec "$PY" -m pytest -q tests "$@"
fi
echo "== fast tier: unit and config tests (pytest -m 'not slow')"
"$PY" -m pytest -q tests -m "not slow"
echo "== slow tier: end-to-end runs (pytest -m slow)"
"$PY" -m pytest -q tests -m slow
