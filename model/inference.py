"""Render characters in learned styles (the work behind infer.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from data.dataset import to_tensor
from data.render import Font, RenderSettings, render_char
from utils.errors import UserError
from utils.images import glyph_image, grid_image, text_grid

from .zi2zi import AMP_DTYPES


@dataclass
class Sources:
    """Source glyphs to translate: tensors (N, C, H, W) in [-1, 1] with their names."""
    images: torch.Tensor
    names: list[str]                     # file-name stems, one per glyph
    chars: list[str | None]
    labels: torch.Tensor | None = None   # the records' own labels (from an .obj)
    targets: torch.Tensor | None = None  # the real target glyphs (from an .obj)
    skipped: list[str] = field(default_factory=list)


def glyph_name(ch: str) -> str:
    return f"U+{ord(ch):04X}_{ch}"


def sources_from_text(text: str, font: Font, settings: RenderSettings, input_nc: int) -> Sources:
    """Render each distinct character of `text` (whitespace ignored) with the glyph renderer."""
    chars = list(dict.fromkeys(c for c in text if not c.isspace()))
    if not chars:
        raise UserError("no characters to render: --src_txt / --src_txt_file is empty")
    images, kept, skipped = [], [], []
    for ch in chars:
        img = render_char(font, ch, settings)
        if img is None:
            skipped.append(ch)
            continue
        images.append(to_tensor(img, input_nc))
        kept.append(ch)
    if not kept:
        raise UserError(f"--src_font {font.path} has none of the {len(chars)} characters to render")
    return Sources(torch.stack(images), [glyph_name(c) for c in kept], kept, skipped=skipped)


def sources_from_obj(obj_path: str | Path, input_nc: int) -> Sources:
    from data.loader import PairBank
    bank = PairBank.from_obj(obj_path)
    labels, target, source = bank.model_tensors()
    expand = (-1, input_nc, -1, -1)
    return Sources(source.expand(*expand), [f"{i:05d}" for i in range(len(bank))], [None] * len(bank),
                   labels=labels, targets=target.expand(*expand))


@torch.no_grad()
def generate(netG: nn.Module, sources: torch.Tensor, labels: torch.Tensor, batch_size: int,
             device: torch.device, desc: str = "generate", progress: bool = True,
             amp: str = "off") -> torch.Tensor:
    """netG (eval mode) on every source with its label, in batches; returns CPU tensors.

    Activations run channels-last (NHWC), which oneDNN and cuDNN convolve faster;
    `amp` "bf16"/"fp16" runs under autocast (bf16 doubles CPU speed where AVX-512 BF16
    exists, at a small cost in precision).
    """
    device = torch.device(device)
    netG.to(memory_format=torch.channels_last)
    dtype = AMP_DTYPES[amp]
    out = []
    for start in tqdm(range(0, len(sources), batch_size), desc=desc, unit="batch", leave=False,
                      disable=not progress):
        x = sources[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        y = labels[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            fake, _ = netG(x, y)
        out.append(fake.float().cpu())
    return torch.cat(out)


def write_style(save_dir: Path, label: int, sources: Sources, fakes: torch.Tensor, per_row: int = 10) -> Path:
    """One PNG per glyph under save_dir/{label}/ and a grid save_dir/style_{label}.png."""
    folder = save_dir / str(label)
    folder.mkdir(parents=True, exist_ok=True)
    for name, fake in zip(sources.names, fakes):
        glyph_image(fake).save(folder / f"{name}.png")
    grid_path = save_dir / f"style_{label}.png"
    if sources.targets is not None:
        grid_image([sources.images, sources.targets, fakes], rows_per_block=10).save(grid_path)
    else:
        text_grid(fakes, per_row).save(grid_path)
    return grid_path
