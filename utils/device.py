"""Choose the torch device once, at the edge."""
from __future__ import annotations

import os

import torch

from .errors import UserError
from .launcher import torchrun_command


def parse_gpu_ids(gpu_ids) -> list[int]:
    """zi2zi's --gpu_ids in any of its forms (`cuda:0`, `0`, `0,1`, several values) -> GPU numbers."""
    values = [gpu_ids] if isinstance(gpu_ids, str) else list(gpu_ids)
    ids = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
    numbers = []
    for gpu in ids:
        number = gpu[5:] if gpu.startswith("cuda:") else gpu
        if not number.isdigit():
            raise UserError(f"--gpu_ids expects GPUs such as cuda:0, 0 or 0,1; got {' '.join(values)!r}")
        if int(number) not in numbers:
            numbers.append(int(number))
    return numbers


def gpu_ids_to_device(gpu_ids) -> str:
    """--gpu_ids -> one device name. One process trains on one GPU; several GPUs are an
    error that gives the torchrun command training on all of them, rather than a run
    that quietly uses the first."""
    numbers = parse_gpu_ids(gpu_ids)
    if len(numbers) > 1:
        import sys
        raise UserError(f"--gpu_ids names {len(numbers)} GPUs and one process trains on one GPU; train on all of "
                        f"them with one process each: {torchrun_command(numbers, sys.argv)}")
    return f"cuda:{numbers[0]}"


def choose_device(name: str | None = None, gpu_ids=None, process=None) -> torch.device:
    """The one choice of the torch device: `--device` (cpu, cuda, cuda:N) or zi2zi's `--gpu_ids`, default CUDA
    when available; under torchrun (`process`, a utils.distributed.Distributed with several processes) the GPU
    of the process's LOCAL_RANK, or its entry of --gpu_ids."""
    if name is not None and gpu_ids:
        raise UserError("give either --device or zi2zi's --gpu_ids, not both")
    if process is not None and process.enabled:
        name = _process_device(name, gpu_ids, process)
    elif gpu_ids:
        name = gpu_ids_to_device(gpu_ids)
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be cpu, cuda or cuda:N; got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type != "cpu":
        raise UserError(f"--device must be cpu, cuda or cuda:N; got {name!r}")
    return device


def _process_device(name: str | None, gpu_ids, ctx) -> str | None:
    """The device of this rank under torchrun: its local GPU (or its entry of --gpu_ids) on CUDA, else `name`."""
    if gpu_ids:
        gpu_ids = parse_gpu_ids(gpu_ids)
        if len(gpu_ids) != int(os.environ.get("LOCAL_WORLD_SIZE", len(gpu_ids))):
            raise UserError(f"--gpu_ids names {len(gpu_ids)} GPUs but torchrun started "
                            f"{os.environ.get('LOCAL_WORLD_SIZE')} processes on this node; give "
                            f"--nproc_per_node {len(gpu_ids)}")
        return f"cuda:{gpu_ids[ctx.local_rank]}"
    wants_cuda = name is None and torch.cuda.is_available() or (name or "").startswith("cuda")
    if not wants_cuda:
        return name
    if name not in (None, "cuda"):
        raise UserError(f"--device {name} under torchrun: each process takes the GPU of its LOCAL_RANK; give "
                        f"--device cuda (or choose GPUs with CUDA_VISIBLE_DEVICES or --gpu_ids)")
    if ctx.local_rank >= torch.cuda.device_count():
        raise UserError(f"process {ctx.local_rank} on this node has no GPU of its own "
                        f"({torch.cuda.device_count()} visible); lower --nproc_per_node")
    return f"cuda:{ctx.local_rank}"


# --amp choices and the dtype each one runs the forward passes in.
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = tuple(AMP_DTYPES)   # what every --amp flag takes


def check_amp(amp: str) -> str:
    """The one check of an `--amp` value (the flag's choices aside)."""
    if amp not in AMP_DTYPES:
        raise UserError(f"--amp must be one of {', '.join(AMP_DTYPES)}; got {amp!r}")
    return amp


def autocast(device: torch.device, amp: str):
    """torch.autocast for `--amp`, or a context that does nothing for "off"."""
    dtype = AMP_DTYPES[check_amp(amp)]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """Speed by default; `--deterministic` trades it for bit-identical runs and resumes on CUDA too.

    Default on CUDA: cuDNN autotuning (benchmark) and TF32 convolutions and matrix products, whose chosen
    kernels and atomics make results differ in the last bits from run to run. With
    `deterministic`: no autotuning, no TF32, and torch's deterministic algorithms only
    (an op without one raises instead of silently varying). On the CPU runs are
    bit-identical either way.
    """
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # so libraries that use "the current device" use this one
    if deterministic:
        import os
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    # TF32 for the float32 matrix products too (the Linear layers, SN's power iteration stays exact enough)
    torch.backends.cuda.matmul.allow_tf32 = device.type == "cuda" and not deterministic
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.use_deterministic_algorithms(deterministic)


def has_fast_bf16(device: torch.device) -> bool:
    """A CUDA GPU with bf16 tensor cores (compute capability 8.0 or newer: Ampere, Ada, Hopper, Blackwell)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def speed_defaults(device: torch.device) -> dict:
    """What training runs with on `device` unless told otherwise (--amp, --channels_last / --no-channels_last).

    On a GPU with bf16 tensor cores: bf16 autocast and channels_last activations. Elsewhere fp32
    and NCHW: older GPUs convolve bf16 slowly, and a CPU without bf16 instructions emulates it.
    On every CUDA GPU: fused Adam (one kernel per parameter group, no host read of its step count).
    """
    fast = has_fast_bf16(device)
    return {"amp": "bf16" if fast else "off", "channels_last": fast, "fused_adam": device.type == "cuda"}


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where `--amp bf16` pays."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


_SAID: set[str] = set()   # notes said once per process, not once per batch or style


def effective_amp(device: torch.device, amp: str) -> str:
    """`--amp` as it should run on `device`: bf16 falls back to fp16 on GPUs older than Ampere.

    Autocast accepts bf16 there (T4, V100: compute capability < 8.0) but cuDNN has no bf16
    convolutions, so it would run far slower than fp32; fp16 with gradient scaling is fast.
    A CPU without bf16 instructions runs bf16 as asked but emulated, so it says how slow that is.
    """
    if amp == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        name = torch.cuda.get_device_name(device)
        print(f"note: {name} (compute capability < 8.0) has no fast bf16 convolutions; using --amp fp16 instead")
        return "fp16"
    if amp == "bf16" and device.type == "cpu" and not cpu_has_bf16() and "cpu bf16" not in _SAID:
        _SAID.add("cpu bf16")
        print("note: this CPU has no bf16 instructions (AVX-512 BF16 or AMX), so --amp bf16 is emulated and runs "
              "many times slower than fp32 (20x for inference on a 2-core EPYC); leave --amp off here")
    return amp
