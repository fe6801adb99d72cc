#!/usr/bin/env bash
# Set up .venv with the test requirements and run the whole test suite on the newest torch,
# then the floor tier (scripts/test_floor.sh: the fast tier and the torchrun tests on the
# oldest torch requirements.txt allows).
#   bash scripts/test.sh                  # everything, as CI runs it
#   bash scripts/test.sh -m "not slow"    # options go to pytest; the floor tier runs only without them
set -euo pipefail
cd "$(dirname "$0")/.."
# The report's browser test needs Chromium (Debian's package); where it cannot be installed
# (no apt, not root), that one test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: could not install chromium; the report's browser test will be skipped"
fi
bash scripts/setup.sh requirements-test.txt
newest=$(.venv/bin/python -c "import torch; print(torch.__version__)")
echo "full suite on torch $newest"
.venv/bin/python -m pytest -q -rs tests "$@"
if [ $# -eq 0 ]; then
    echo "full suite passed on torch $newest; now the floor tier"
    bash scripts/test_floor.sh
fi
