"""infer.py's output layouts: ours (a PNG per glyph and a grid per style), zi2zi-pytorch's, and
the style-interpolation grid and GIF."""
from __future__ import annotations

from pathlib import Path

import torch

from utils.images import glyph_image, grid_image, rgb_image, text_grid
from utils.io import save_image


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
