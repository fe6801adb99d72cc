#!/usr/bin/env bash
# One prepared GPU check: the device-parametrised tests on CUDA (training steps for amp
# off/bf16/fp16 x channels_last with SN and flipped labels, checkpoints, the fast loader,
# --deterministic), the training, data and DDP tests, and the speed benchmark (MFU, host
# syncs per step, batch 16 under an 8 GiB cap, a 2-process DDP run sharing the GPU) with
# its equivalence check, written under ${OUT:-gpu_check}.
#   OUT=/tmp/gpu bash scripts/gpu_check.sh
#   bash scripts/gpu_check.sh --rehearse     # every step at small sizes on the CPU, first
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
mkdir -p "$out"
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "--rehearse" ]; then
    device=cpu
    # GPU defaults shrunk: batch 16 and 10 timed steps still outrun one epoch of the benchmark data
    bench_args=(--quick --batch_size 16 --steps 10)
    echo "rehearsal on the CPU" | tee "$out/gpu.txt"
else
    device=cuda
    bench_args=()
    nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv | tee "$out/gpu.txt"
fi
"$python" -m pytest -q -rA tests/test_device.py tests/test_training.py tests/test_fast_path.py \
    tests/test_distributed.py 2>&1 \
    | tee "$out/pytest_$device.log" | tail -5
"$python" bench.py --device "$device" --check "${bench_args[@]}" --out "$out/bench_$device.json" 2>&1 \
    | tee "$out/bench_$device.log"
