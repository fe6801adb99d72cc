#!/usr/bin/env bash
# One prepared GPU check: the device-parametrised tests on CUDA (training steps for amp
# off/bf16/fp16 x channels_last with SN and flipped labels, checkpoints, the fast loader,
# --deterministic), the training, data and DDP tests, and the speed benchmark (MFU, host
# syncs per step, batch 16 under an 8 GiB cap, a 2-process DDP run sharing the GPU, the
# per-iteration sync), written under ${OUT:-gpu_check}. That the speed options keep the losses
# is checked by tests/test_fast_path.py, here on CUDA.
#   bash scripts/fetch_gpu_wheels.sh          # once, on a machine with PyPI: what the GPU image lacks, into .whl/
#   OUT=/tmp/gpu bash scripts/gpu_check.sh    # on the GPU machine (with .whl/ beside it where packages are missing)
#   bash scripts/gpu_check.sh --rehearse      # every step at small sizes on the CPU, first
# Each step's output is in its own file the moment the step ends (steps.txt: one line per
# step with its exit status); a failing step is recorded and the next one still runs; the
# exit status is that of the first failing step.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
mkdir -p "$out"
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1
: > "$out/steps.txt"
first_failure=0

# Packages the machine lacks come from the wheels carried in .whl/ (no registry there).
if ! "$python" -c "import pytorch_msssim, pathops, potrace" 2>/dev/null; then
    if compgen -G ".whl/*.whl" >/dev/null; then
        site=$(mktemp -d)
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl \
            && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "note: pytorch-msssim, skia-pathops or potracer is missing and .whl/ holds no wheels" \
             "(run scripts/fetch_gpu_wheels.sh where PyPI is reachable, and carry .whl)" | tee -a "$out/steps.txt"
    fi
fi

step() {   # step NAME COMMAND...: run it, its output to NAME.log (and the console), its status to steps.txt
    local name=$1
    shift
    "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "$name: exit $status" | tee -a "$out/steps.txt"
    if [ "$status" -ne 0 ] && [ "$first_failure" -eq 0 ]; then
        first_failure=$status
    fi
}

if [ "${1:-}" = "--rehearse" ]; then
    device=cpu
    # GPU defaults shrunk: batch 16 and 10 timed steps still outrun one epoch of the benchmark data
    bench_args=(--quick --batch_size 16 --steps 10)
    # these tests run on the CPU in the suite already: the rehearsal checks that the selection collects
    test_args=(--collect-only)
    echo "rehearsal on the CPU" | tee "$out/gpu.txt"
else
    device=cuda
    bench_args=()
    test_args=()
    nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv | tee "$out/gpu.txt"
fi
"$python" - <<'EOF' 2>&1 | tee "$out/versions.txt"
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "n/a"
print(f"GPU: {gpu}; torch {torch.__version__}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}; "
      f"NCCL {nccl}; Python {platform.python_version()}")
EOF
step "pytest_$device" "$python" -m pytest -q -rA "${test_args[@]}" tests/test_device.py tests/test_training.py \
    tests/test_fast_path.py tests/test_distributed.py
step "bench_$device" "$python" bench.py --device "$device" "${bench_args[@]}" --out "$out/bench_$device.json"
echo "steps:"
cat "$out/steps.txt"
exit "$first_failure"
