#!/usr/bin/env bash
# Set up .venv with the test requirements and run the whole test suite.
#   bash scripts/test.sh [pytest options]       e.g. -m "not slow" for the fast tier
set -euo pipefail
cd "$(dirname "$0")/.."
# The report's browser test needs Chromium (Debian's package); where it cannot be installed
# (no apt, not root), that one test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: could not install chromium; the report's browser test will be skipped"
fi
bash scripts/setup.sh requirements-test.txt
exec .venv/bin/python -m pytest -q -rs tests "$@"
