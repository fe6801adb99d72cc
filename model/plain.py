"""Spectral norm folded into plain weights, so zi2zi-pytorch's `load_networks` reads our checkpoints."""
from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from utils.io import atomic_torch_save

from .checkpoint import Checkpoints
from .config import ModelConfig
from .loading import load_weights
from .networks import build_discriminator
from .spectral import fold_spectral_norm


def export_plain_generator(net: nn.Module, path: str | Path) -> dict:  # G or D
    """Save `net` with spectral norm folded into plain weights, for zi2zi-pytorch.

    The copy is put in eval mode first, so folding does no further power iteration
    and the exported network gives the same outputs as `net` in eval mode.
    """
    plain = fold_spectral_norm(copy.deepcopy(net).eval())
    state_dict = plain.state_dict()
    atomic_torch_save(state_dict, path)
    return state_dict


def export_plain(ckpt_dir: str | Path, step: int, netG: nn.Module, config: ModelConfig,
                 out_dir: str | Path) -> list[str]:
    """Write `{step}_net_G.pth` and `{step}_net_D.pth` with SN folded into plain weights to `out_dir`.

    `netG` and `config` are the step's generator and architecture as `load_generator` gave them.
    zi2zi-pytorch's `load_networks(step)` with `save_dir=out_dir` reads both. Returns
    lines saying what was written (and what zi2zi-pytorch can build).
    """
    out = Checkpoints(out_dir).files(step)
    export_plain_generator(netG, out["G"])
    lines = [f"wrote {out['G']}: generator of step {step} as a plain zi2zi-pytorch state dict"]
    d_file = Checkpoints(ckpt_dir).files(step)["D"]
    if d_file.exists():
        netD = build_discriminator(config)
        load_weights(netD, d_file, "D")
        export_plain_generator(netD, out["D"])
        lines.append(f"wrote {out['D']}: its discriminator, likewise")
        if config.image_size != 256:
            lines.append(f"note: zi2zi-pytorch builds only 256 px networks (--image_size is parsed but unused "
                         f"there); these {config.image_size} px weights load in a zi2zi-pytorch model only if "
                         f"its code is changed to build that size")
    else:
        lines.append(f"note: {d_file} does not exist, so only the generator was exported")
    return lines
