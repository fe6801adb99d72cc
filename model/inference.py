"""The one eval-mode generation path: training samples, infer.py, the A/B comparison and bench.py use it."""
from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from utils.device import autocast, effective_amp


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
    amp = effective_amp(device, amp)
    input_nc = _input_channels(netG)
    was_training = netG.training
    netG.eval()
    out = []
    try:
        for start in tqdm(range(0, len(sources), batch_size), desc=desc, unit="batch", leave=False,
                          disable=not progress):
            x = sources[start:start + batch_size].to(device)
            x = x.expand(-1, input_nc, -1, -1).contiguous(memory_format=torch.channels_last)
            y = labels[start:start + batch_size].to(device)
            y = y if y.dtype.is_floating_point else y.long()   # float rows: style vectors themselves
            with autocast(device, amp):
                fake, _ = netG(x, y)
            out.append(fake.float().cpu())
    finally:
        netG.train(was_training)
    return torch.cat(out)


def style_path(netG: nn.Module, chain: list[int], steps: int) -> tuple[torch.Tensor, list[float]]:
    """Style vectors moving through the labels of `chain` (A -> B -> ...) in `steps` per leg.

    The embedding rows of consecutive labels are mixed linearly; each leg's start is
    the previous leg's end, so it appears once. Returns (vectors (F, D), positions) where
    a position such as 1.25 means a quarter of the way from chain[1] to chain[2].
    """
    table = netG.embedder.weight.detach().float().cpu()
    vectors, positions = [table[chain[0]]], [0.0]
    for leg, (a, b) in enumerate(zip(chain, chain[1:])):
        for k in range(1, steps):
            t = k / (steps - 1)
            vectors.append((1 - t) * table[a] + t * table[b])
            positions.append(leg + t)
    return torch.stack(vectors), positions


def interpolate(netG: nn.Module, sources: torch.Tensor, chain: list[int], steps: int, batch_size: int = 64,
                device=None, amp: str = "off") -> tuple[torch.Tensor, list[float]]:
    """Every source rendered at every point of the style path: (frames, N, C, H, W), positions."""
    vectors, positions = style_path(netG, chain, steps)
    n = len(sources)
    styles = vectors.repeat_interleave(n, 0)
    fake = generate(netG, sources.repeat(len(vectors), 1, 1, 1), styles, batch_size, device, amp,
                    desc="interpolate")
    return fake.view(len(vectors), n, *fake.shape[1:]), positions


def _input_channels(netG: nn.Module) -> int:
    first = netG.model.down[0]
    return getattr(first, "weight_orig", first.weight).shape[1]
