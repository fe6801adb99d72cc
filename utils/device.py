"""Choose the torch device once, at the edge."""
from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str | None = None, gpu_ids: str | None = None) -> torch.device:
    """`--device` (cpu, cuda, cuda:N) or zi2zi's `--gpu_ids`; default CUDA when available."""
    if name is not None and gpu_ids:
        raise UserError("give either --device or zi2zi's --gpu_ids, not both")
    if name is None and gpu_ids:
        first = gpu_ids.split(",")[0].strip()
        if not first.isdigit():
            raise UserError(f"--gpu_ids expects comma-separated GPU numbers such as 0 or 0,1; got {gpu_ids!r}")
        name = f"cuda:{first}"
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


# --amp choices and the dtype each one runs the forward passes in.
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    """torch.autocast for `--amp`, or a context that does nothing for "off"."""
    if amp not in AMP_DTYPES:
        raise UserError(f"--amp must be one of {', '.join(AMP_DTYPES)}; got {amp!r}")
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
