#!/usr/bin/env bash
# One prepared GPU check: the device-parametrised tests on CUDA (training steps for amp
# off/bf16, SN, checkpoints, the fast loader, --deterministic), the training and data
# tests, and the speed benchmark, all written under ${OUT:-gpu_check}.
#   OUT=/tmp/gpu bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
mkdir -p "$out"
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv | tee "$out/gpu.txt"
"$python" -m pytest -q -rA tests/test_device.py tests/test_training.py tests/test_fast_path.py 2>&1 \
    | tee "$out/pytest_gpu.log" | tail -5
"$python" bench.py --device cuda --check --out "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.log"
