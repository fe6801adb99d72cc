#!/usr/bin/env bash
# Set up .venv with the test requirements and run the whole test suite.
#   bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-test.txt
exec .venv/bin/python -m pytest -q tests "$@"
