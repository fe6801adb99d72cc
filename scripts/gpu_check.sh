#!/usr/bin/env bash
# One prepared GPU check that returns its numbers within one call (a lent GPU gives 10 minutes a
# command): versions and GPU first, then bench.py (its JSON rewritten after every section, the
# compiling last), then the CUDA tests under a per-test timeout. Every stage has a time cap, so
# the whole check ends within 8 minutes; what a stage measured before its cap is kept.
#   bash scripts/fetch_gpu_wheels.sh          # once, where PyPI is reachable: what the GPU image lacks, into .whl/
#   OUT=/tmp/gpu bash scripts/gpu_check.sh    # on the GPU machine (carry .whl/, and a zi2zi-pytorch checkout
#                                             # in ANCHOR=DIR to time its step beside ours)
#   bash scripts/gpu_check.sh --rehearse      # the same stages on this CPU at small sizes, with the
#                                             # packages the GPU image lacks hidden, so the wheels are what works
# steps.txt gets one line per stage: its exit status and seconds. The exit status is that of
# the first failing stage.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1
: > "$out/steps.txt"
first_failure=0
rehearse=0
[ "${1:-}" = "--rehearse" ] && rehearse=1
# what requirements.txt needs beyond the GPU image: module names, as imported
missing_modules="pytorch_msssim pathops potrace"

if [ "$rehearse" = 1 ]; then
    # Hide the installed copies, as the GPU image lacks them: only the carried wheels can serve them.
    hide=$(mktemp -d)
    cat > "$hide/sitecustomize.py" <<EOF
import importlib.machinery, os, sys
HIDDEN = set("$missing_modules".split())
WHEELS = [p for p in os.environ.get("GPU_CHECK_WHEELS", "").split(os.pathsep) if p]
class _AsOnTheGpuImage:
    """Finds these modules in the carried wheels only, as on the GPU image."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in HIDDEN or "." in name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, WHEELS)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by gpu_check.sh --rehearse)", name=name)
        return spec
sys.meta_path.insert(0, _AsOnTheGpuImage())
EOF
    export PYTHONPATH="$hide${PYTHONPATH:+:$PYTHONPATH}"
fi

# Packages the machine lacks come from the wheels carried in .whl/ (no registry there;
# WHEEL_DIR names another folder).
wheels=${WHEEL_DIR:-.whl}
if ! "$python" -c "import ${missing_modules// /, }" 2>/dev/null; then
    if compgen -G "$wheels/*.whl" >/dev/null; then
        site=$(mktemp -d)
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl \
            && export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$site" GPU_CHECK_WHEELS="$site"
    fi
    if ! "$python" -c "import ${missing_modules// /, }" 2>/dev/null; then
        echo "note: pytorch-msssim, skia-pathops or potracer is missing and $wheels/ does not supply it" \
             "(run scripts/fetch_gpu_wheels.sh where PyPI is reachable, and carry .whl)" | tee -a "$out/steps.txt"
    fi
fi

stage() {   # stage NAME SECONDS COMMAND...: run it under a time cap, output to NAME.log, status and time to steps.txt
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    local note=""
    [ "$status" = 124 ] && note=" (stopped at its ${limit} s cap)"
    echo "$name: exit $status, $((SECONDS - start)) s$note" | tee -a "$out/steps.txt"
    if [ "$status" -ne 0 ] && [ "$first_failure" -eq 0 ]; then
        first_failure=$status
    fi
}

anchor_args=()
if [ -n "${ANCHOR:-}" ]; then
    anchor_args=(--anchor "$ANCHOR")
fi
if [ "$rehearse" = 1 ]; then
    device=cpu
    # the GPU's stages at CPU sizes: the small config, batch 4, 3 timed steps
    bench_args=(--quick --batch_size 4 --steps 3 --skip export scaling)
    bench_cap=420
    echo "rehearsal on the CPU" | tee "$out/gpu.txt"
else
    device=cuda
    # export and data are CPU work (measured on the CPU machine); scaling needs several GPUs to mean anything
    bench_args=(--steps 8 --skip export data scaling)
    bench_cap=330
    nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv | tee "$out/gpu.txt"
fi
stage versions 60 "$python" -c '
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "n/a"
print(f"GPU: {gpu}; torch {torch.__version__}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}; "
      f"NCCL {nccl}; Python {platform.python_version()}")'
stage "bench_$device" "$bench_cap" "$python" bench.py --device "$device" "${bench_args[@]}" "${anchor_args[@]}" \
    --out "$out/bench_$device.json"
# The tests that run on CUDA when it is there (device-parametrised steps, amp, channels_last,
# checkpoints, the loader, settings), then compiled SN on the device; each test under its own --timeout.
stage "pytest_$device" 60 "$python" -m pytest -q -rfE -p no:cacheprovider --timeout 45 -m "not slow" \
    tests/test_device.py tests/test_fast_path.py tests/test_training.py tests/test_settings.py
stage "pytest_compile_$device" 70 "$python" -m pytest -q -rfE -p no:cacheprovider --timeout 65 \
    "tests/test_fast_path.py::test_compiled_spectral_norm_traces_whole_and_compiles_once[$device]"
echo "steps:"
cat "$out/steps.txt"
exit "$first_failure"
