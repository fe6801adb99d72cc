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


def write_style(save_dir: Path, label: int, names: list[str], fakes: torch.Tensor, per_row: int = 10,
                sources: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                name: str | None = None, grid: bool = True) -> Path:
    """One PNG per glyph under save_dir/{label}/ and a grid save_dir/style_{name or label}.png.

    With real `targets` (and their `sources`), the grid shows source | target | generated;
    otherwise the generated glyphs laid out like text, `per_row` to a line.
    """
    folder = Path(save_dir) / str(label)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, fake in zip(names, fakes):
        save_image(glyph_image(fake), folder / f"{stem}.png")
    grid_path = Path(save_dir) / f"style_{file_safe(name) if name else label}.png"
    if targets is not None:
        save_image(grid_image([sources, targets, fakes], rows_per_block=10), grid_path)
    else:
        save_image(text_grid(fakes, per_row), grid_path)
    return grid_path


def write_zi2zi_style(save_dir: Path, label: int, names: list[str], fakes: torch.Tensor, per_row: int = 10,
                      sources: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                      name: str | None = None, grid: bool = False) -> Path | None:
    """zi2zi-pytorch's infer files: save_dir/{label}/{i}.png, generated | target (the source in text mode), RGB.

    With `grid`, also save_dir/infer_{name or label}_construct.png: those pictures stacked,
    `per_row` to a row. zi2zi restarts i at 0 for every batch (so later batches overwrite
    earlier ones); here i runs on, so every glyph keeps its file.
    """
    folder = Path(save_dir) / str(label)
    folder.mkdir(parents=True, exist_ok=True)
    right = targets if targets is not None else sources
    pictures = torch.cat([fakes.float().cpu(), right.float().cpu().expand_as(fakes)], 3)
    for i, picture in enumerate(pictures):
        save_image(rgb_image(picture), folder / f"{i}.png")
    if not grid:
        return None
    rows = [torch.cat(list(pictures[i:i + per_row]), 2) for i in range(0, len(pictures), per_row)]
    width = max(r.shape[2] for r in rows)
    rows = [torch.nn.functional.pad(r, (0, width - r.shape[2]), value=1.0) for r in rows]
    path = Path(save_dir) / f"infer_{file_safe(name) if name else label}_construct.png"
    save_image(rgb_image(torch.cat(rows, 1)), path)
    return path


def rgb_image(picture: torch.Tensor) -> Image.Image:
    """What zi2zi's torchvision `save_image` makes of a [-1, 1] tensor (C, H, W): clamped to [0, 1], RGB."""
    channels = picture if picture.shape[0] == 3 else picture[:1].expand(3, -1, -1)
    array = channels.clamp(0, 1).mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def file_safe(name: str) -> str:
    """A style name usable in a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_interpolation(save_dir: Path, frames: torch.Tensor, name: str, per_row: int = 10,
                        frame_ms: int = 120) -> tuple[Path, Path]:
    """A style interpolation (frames, N, C, H, W) as a grid PNG (one row of glyphs per step,
    the style changing downwards) and an animated GIF that plays the path there and back."""
    save_dir = Path(save_dir)
    n = frames.shape[1]
    grid = text_grid(frames.flatten(0, 1), per_row=n)
    png = save_image(grid, save_dir / f"{name}.png")
    pictures = [text_grid(frame, per_row=min(n, per_row)) for frame in frames]
    loop = pictures + pictures[-2:0:-1]   # there and back, without repeating the ends
    gif = save_image(loop[0], save_dir / f"{name}.gif", save_all=True, append_images=loop[1:], duration=frame_ms,
                     loop=0)
    return png, gif
