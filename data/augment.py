"""zi2zi's augmentation, defined once: the random draw and the geometry, then thin backends.

zi2zi enlarges both halves of a pair by the same random factor and crops back to size
at a random offset (up to 5%, or 20% with `bold`), occasionally turns the pair 180
degrees (`rotate`) and occasionally blurs it (`blur`). `draw_augment` draws those
choices for a batch from any source of uniform numbers; `AugmentDraw` holds them.
Three backends apply a draw, all with the same geometry (resize to (nw, nh) about
pixel centres, crop (w, h) at (sx, sy), then the turn):

- `augment_pil`: PIL images, one sample (zi2zi's per-item data path, `--loader pil`);
- `augment_float`: a float batch on any device, one `grid_sample` (GPUs);
- `augment_uint8`: a uint8 batch on the CPU, torch's vectorised uint8 resize.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

SCALE_MAX = 1.05
BOLD_SCALE_MAX = 1.2
ROTATE_PROB = 0.1          # then an angle from ROTATE_ANGLES: half of those keep 0
ROTATE_ANGLES = (0, 180)
BLUR_PROB = 0.2
BLUR_SIGMAS = (1.0, 1.5, 2.0)

Uniform = Callable[[], torch.Tensor]  # one U[0, 1) draw per sample of the batch


@dataclass
class AugmentDraw:
    """One batch's draw of zi2zi's augmentation (per-sample tensors)."""
    nw: torch.Tensor          # enlarged width, int(m * w) + 1
    nh: torch.Tensor          # enlarged height
    sx: torch.Tensor          # crop offset, randint(0, nw - w - 1)
    sy: torch.Tensor
    turn: torch.Tensor        # bool: turned 180 degrees
    blur_index: torch.Tensor  # index into BLUR_SIGMAS, -1 for none

    def theta(self, w: int, h: int) -> torch.Tensor:
        """affine_grid maps (align_corners=False) of "resize to (nw, nh), crop (w, h) at (sx, sy), turn".

        Enlarging by m and cropping at integer shift s maps output pixel j to input
        position (s + j + 0.5) * w / nw - 0.5, an affine map; turning the crop 180
        degrees mirrors the output coordinates, which negates the linear part only.
        """
        sign = torch.where(self.turn, -1.0, 1.0)   # no boolean indexing: no host sync on a GPU
        zero = torch.zeros_like(self.nw)
        row_x = torch.stack([sign * w / self.nw, zero, (w + 2 * self.sx) / self.nw - 1], 1)
        row_y = torch.stack([zero, sign * h / self.nh, (h + 2 * self.sy) / self.nh - 1], 1)
        return torch.stack([row_x, row_y], 1).float()

    def part(self, lo: int, hi: int) -> "AugmentDraw":
        """Samples lo..hi-1 of the draw (one process's share of a global batch)."""
        return AugmentDraw(*(getattr(self, f.name)[lo:hi] for f in fields(self)))

    def sample(self, i: int) -> tuple[int, int, int, int, bool, int]:
        """(nw, nh, sx, sy, turn, blur_index) of sample i as Python numbers."""
        return (int(self.nw[i]), int(self.nh[i]), int(self.sx[i]), int(self.sy[i]), bool(self.turn[i]),
                int(self.blur_index[i]))


def draw_augment(uniform: Uniform, h: int, w: int, bold: bool = False, rotate: bool = False,
                 blur: bool = False) -> AugmentDraw:
    """The one definition of zi2zi's random choices, from per-sample uniform draws."""
    scale_max = BOLD_SCALE_MAX if bold else SCALE_MAX
    m = 1.0 + (scale_max - 1.0) * uniform()
    nw, nh = torch.floor(m * w) + 1, torch.floor(m * h) + 1
    sx = torch.floor(uniform() * torch.clamp(nw - w, min=1))   # randint(0, max(nw - w - 1, 0))
    sy = torch.floor(uniform() * torch.clamp(nh - h, min=1))
    turn = torch.zeros_like(m, dtype=torch.bool)
    if rotate:
        share_180 = sum(a == 180 for a in ROTATE_ANGLES) / len(ROTATE_ANGLES)
        turn = (uniform() < ROTATE_PROB) & (uniform() < share_180)
    blur_index = torch.full(m.shape, -1, dtype=torch.long, device=m.device)
    if blur:
        chosen = uniform() < BLUR_PROB
        which = torch.floor(uniform() * len(BLUR_SIGMAS)).long()
        blur_index = torch.where(chosen, which, blur_index)
    return AugmentDraw(nw, nh, sx, sy, turn, blur_index)


def augment_params(batch: int, h: int, w: int, bold: bool = False, rotate: bool = False,
                   blur: bool = False, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> AugmentDraw:
    """A batch's draw from a torch generator (on the device the batch lives on)."""
    return draw_augment(lambda: torch.rand(batch, generator=generator, device=device), h, w, bold, rotate, blur)


# ------------------------------------------------------------------ backends

def augment_pil(target: Image.Image, source: Image.Image, draw: AugmentDraw,
                i: int = 0) -> tuple[Image.Image, Image.Image]:
    """Sample i of the draw on a PIL pair (zi2zi's LANCZOS resize), the same for both halves."""
    nw, nh, sx, sy, turn, blur_index = draw.sample(i)
    w, h = target.size
    box = (sx, sy, sx + w, sy + h)
    out = []
    for img in (target, source):
        img = img.resize((nw, nh), Image.Resampling.LANCZOS).crop(box)
        if turn:
            img = img.transpose(Image.Transpose.ROTATE_180)
        if blur_index >= 0:
            img = img.filter(ImageFilter.GaussianBlur(radius=BLUR_SIGMAS[blur_index]))
        out.append(img)
    return out[0], out[1]


def augment_pair(target: Image.Image, source: Image.Image, bold: bool = False, rotate: bool = False,
                 blur: bool = False, rng: random.Random = random) -> tuple[Image.Image, Image.Image]:
    """Draw one sample's augmentation from `rng` and apply it to a PIL pair."""
    w, h = target.size
    draw = draw_augment(lambda: torch.tensor([rng.random()], dtype=torch.float64), h, w, bold, rotate, blur)
    return augment_pil(target, source, draw)


def augment_float(pairs: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    """The draw on a float batch (B, 2, H, W) in [-1, 1]: one `grid_sample`, then the blur.

    The path for GPUs, where one fused resampling of the whole batch is nearly free.
    """
    b, c, h, w = pairs.shape
    grid = F.affine_grid(draw.theta(w, h).to(pairs.dtype), [b, c, h, w], align_corners=False)
    out = F.grid_sample(pairs, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return blur_batch(out, draw.blur_index)


def augment_uint8(pairs: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    """The draw's enlarge-crop-turn on uint8 pairs (B, 2, H, W) on the CPU (blur follows in float).

    torch's uint8 bilinear resize (vectorised, 4x less memory traffic than float) per
    sample, then the crop; for enlarging, antialiasing changes nothing.
    """
    b, _, h, w = pairs.shape
    out = torch.empty_like(pairs)
    for i in range(b):
        nw, nh, sx, sy, turn, _ = draw.sample(i)
        big = F.interpolate(pairs[i:i + 1], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        crop = big[0, :, sy:sy + h, sx:sx + w]
        out[i] = crop.flip(1, 2) if turn else crop
    return out


def gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = gaussian_kernel(sigma, x.device, x.dtype)
    c, r = x.shape[1], k.numel() // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blur_batch(pairs: torch.Tensor, blur_index: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of the float samples whose blur_index picks a sigma (-1: none)."""
    return blur_picked(pairs, blur_index) if pairs.device.type == "cpu" else blur_all_select(pairs, blur_index)


def blur_picked(pairs: torch.Tensor, blur_index: torch.Tensor) -> torch.Tensor:
    """Blur only the picked samples, in place: the least arithmetic (CPU)."""
    for i, sigma in enumerate(BLUR_SIGMAS):
        mask = blur_index == i
        if mask.any():
            pairs[mask] = _blur(pairs[mask], sigma)
    return pairs


def blur_all_select(pairs: torch.Tensor, blur_index: torch.Tensor) -> torch.Tensor:
    """Blur the whole batch at every sigma and keep the picked results with `torch.where`.

    On a GPU `mask.any()` and boolean indexing each wait for the device; a few cheap
    separable convolutions of the whole batch do not.
    """
    picked = blur_index.view(-1, 1, 1, 1)
    for i, sigma in enumerate(BLUR_SIGMAS):
        pairs = torch.where(picked == i, _blur(pairs, sigma), pairs)
    return pairs
