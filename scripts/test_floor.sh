#!/usr/bin/env bash
# The fast tier and the torchrun tests on the oldest torch requirements.txt allows
# (requirements-floor.txt), in their own virtual environment .venv-floor.
#   bash scripts/test_floor.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-floor/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv-floor
fi
.venv-floor/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt \
    -c requirements-floor.txt
.venv-floor/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
version=$(.venv-floor/bin/python -c "import torch, numpy; print(f'torch {torch.__version__}, numpy {numpy.__version__}')")
echo "floor tier on $version: the fast tier, then tests/test_distributed.py"
.venv-floor/bin/python -m pytest -q -rs -m "not slow" tests "$@"
.venv-floor/bin/python -m pytest -q -rs tests/test_distributed.py "$@"
