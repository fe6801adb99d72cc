"""The one eval-mode generation path: training samples, infer.py, the A/B comparison and bench.py use it."""
from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from utils.device import autocast


@torch.no_grad()
def generate(netG: nn.Module, sources: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
             device: torch.device | str | None = None, amp: str = "off", desc: str = "generate",
             progress: bool = True) -> torch.Tensor:
    """netG in eval mode on every source with its label, in batches; returns float32 CPU tensors.

    Sources may have one channel for a 3-channel model (grayscale glyphs are expanded).
    The network is put in eval mode (no dropout, running BatchNorm statistics) and
    handed back in the mode it came in; its weights and memory format are not touched.
    Inputs run channels-last (NHWC), which oneDNN and cuDNN convolve faster; `amp`
    "bf16"/"fp16" runs under autocast (bf16 doubles CPU speed where AVX-512 BF16 exists).
    """
    device = torch.device(device) if device is not None else next(netG.parameters()).device
    input_nc = _input_channels(netG)
    was_training = netG.training
    netG.eval()
    out = []
    try:
        for start in tqdm(range(0, len(sources), batch_size), desc=desc, unit="batch", leave=False,
                          disable=not progress):
            x = sources[start:start + batch_size].to(device)
            x = x.expand(-1, input_nc, -1, -1).contiguous(memory_format=torch.channels_last)
            y = labels[start:start + batch_size].to(device).long()
            with autocast(device, amp):
                fake, _ = netG(x, y)
            out.append(fake.float().cpu())
    finally:
        netG.train(was_training)
    return torch.cat(out)


def _input_channels(netG: nn.Module) -> int:
    first = netG.model.down[0]
    return getattr(first, "weight_orig", first.weight).shape[1]
