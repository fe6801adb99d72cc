"""Tensors in [-1, 1] to pictures: single glyphs and sample grids."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .io import save_image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W) uint8 grayscale (channels averaged)."""
    x = images.detach().float().cpu().mean(dim=1)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def glyph_image(image: torch.Tensor) -> Image.Image:
    """One (C, H, W) glyph tensor -> grayscale PIL image."""
    return Image.fromarray(to_uint8(image.unsqueeze(0))[0], mode="L")


def grid_image(columns: list[torch.Tensor], rows_per_block: int | None = None, pad: int = 2) -> Image.Image:
    """Lay out several aligned batches side by side: row i shows columns[k][i] for each k.

    With `rows_per_block`, long batches wrap into several blocks placed left to right,
    so 32 samples of (source | target | generated) read as 4 blocks of 8 rows.
    """
    arrays = [to_uint8(c) for c in columns]
    n, h, w = arrays[0].shape
    per_block = rows_per_block or n
    blocks = -(-n // per_block)
    ncols = len(arrays)
    block_w = ncols * (w + pad)
    canvas = np.full((per_block * (h + pad) + pad, blocks * (block_w + 3 * pad) + pad), 200, np.uint8)
    for i in range(n):
        block, row = divmod(i, per_block)
        y = pad + row * (h + pad)
        for k, arr in enumerate(arrays):
            x = pad + block * (block_w + 3 * pad) + k * (w + pad)
            canvas[y:y + h, x:x + w] = arr[i]
    return Image.fromarray(canvas, mode="L")


def save_sample_grid(source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor, path: str | Path,
                     rows_per_block: int = 8) -> Path:
    """source | target | generated, one example per row, written as PNG."""
    return save_image(grid_image([source, target, fake], rows_per_block), path)


def text_grid(images: torch.Tensor, per_row: int = 10, pad: int = 4) -> Image.Image:
    """Glyphs (B, C, H, W) laid out like text: left to right, `per_row` to a line, on white."""
    arrays = to_uint8(images)
    n, h, w = arrays.shape
    rows = -(-n // per_row)
    cols = min(n, per_row)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, per_row)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arrays[i]
    return Image.fromarray(canvas, mode="L")


def rgb_image(picture: torch.Tensor) -> Image.Image:
    """What zi2zi's torchvision `save_image` makes of a [-1, 1] tensor (C, H, W): clamped to [0, 1], RGB."""
    channels = picture if picture.shape[0] == 3 else picture[:1].expand(3, -1, -1)
    array = channels.clamp(0, 1).mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")
