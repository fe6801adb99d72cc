"""Source glyphs for inference: rendered from a font, or the source halves of an .obj."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils.errors import UserError

from .dataset import to_tensor
from .loader import PairBank
from .render import Font, RenderSettings, render_char


@dataclass
class Sources:
    """Source glyphs to translate: (N, 1, H, W) in [-1, 1], with a file-name stem each."""
    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor | None = None   # the records' own labels (from an .obj)
    targets: torch.Tensor | None = None  # the real target glyphs (from an .obj)
    skipped: list[str] = field(default_factory=list)  # characters the source font lacks

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def subset(self, index: torch.Tensor) -> "Sources":
        pick = index.tolist()
        return Sources(self.images[index], [self.names[i] for i in pick],
                       None if self.labels is None else self.labels[index],
                       None if self.targets is None else self.targets[index])


def glyph_name(ch: str) -> str:
    return f"U+{ord(ch):04X}_{ch}"


def sources_from_text(text: str, font: Font, settings: RenderSettings) -> Sources:
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
        images.append(to_tensor(img, 1))
        kept.append(ch)
    if not kept:
        raise UserError(f"--src_font {font.path} has none of the {len(chars)} characters to render")
    return Sources(torch.stack(images), [glyph_name(c) for c in kept], skipped=skipped)


def sources_from_obj(obj_path: str | Path, start_from: int = 0) -> Sources:
    """Every record's source half, with its label (minus `start_from`, zi2zi's shift) and real target."""
    bank = PairBank.from_obj(obj_path)
    labels, source, target = bank.batch()
    if start_from and int(labels.min()) < start_from:
        raise UserError(f"{obj_path} has label {int(labels.min())}, below --start_from {start_from} "
                        f"(labels are shifted down by it)")
    return Sources(source, [f"{i:05d}" for i in range(len(bank))], labels=labels - start_from, targets=target)
