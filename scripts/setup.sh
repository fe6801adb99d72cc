#!/usr/bin/env bash
# Create the virtual environment .venv (once), install a requirements file into it and the
# project's packages (editable, so edits take effect without reinstalling).
#   bash scripts/setup.sh [requirements.txt|requirements-test.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=${1:-requirements.txt}
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
