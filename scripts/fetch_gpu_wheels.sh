#!/usr/bin/env bash
# Wheels that the lent GPU machine's image lacks (Python 3.12, x86-64, no package registry),
# fetched here into .whl/ (ignored by git; WHEEL_DIR names another folder) for
# scripts/gpu_check.sh to install there.
#   bash scripts/fetch_gpu_wheels.sh            # then carry .whl with the run
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
wheels=${WHEEL_DIR:-.whl}
mkdir -p "$wheels"
# the versions this project is tested with here, where installed; otherwise the newest
packages=()
for name in pytorch-msssim skia-pathops potracer; do
    version=$("$python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    packages+=("$name${version:+==$version}")
done
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$wheels" "${packages[@]}"
ls -l "$wheels"
