"""The fast training data path: decode once, augment whole batches on the device.

    bank = PairBank.from_obj("experiment/data/train.obj", num_workers=4)
    batches = BatchIterator(bank, batch_size=64, device="cuda", augment=True, seed=777)
    for labels, real_A, real_B in batches.epoch(0):   # real_A: source, real_B: target
        ...

zi2zi-pytorch decodes a JPEG and resizes it with PIL for every item of every epoch.
Here every record is decoded once into a uint8 tensor. On a GPU, only uint8 pairs
travel to the device (or the whole bank lives there) and one `grid_sample` applies
zi2zi's augmentation to the whole batch; on a CPU, the resampling runs on uint8.
Both draw the same enlarge-and-crop, 180 degree turn and blur distributions as
`data.dataset.augment_pair`, shared by both halves of a pair.
"""
from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from multiprocessing import Pool

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .dataset import (BLUR_PROB, BLUR_SIGMAS, BOLD_SCALE_MAX, ROTATE_ANGLES, ROTATE_PROB,
                      SCALE_MAX)
from .obj import ObjFormatError, read_obj


def _decode(item: tuple[int, bytes]) -> np.ndarray:
    index, data = item
    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert("L"), dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"record {index} does not decode ({err})") from None
    h, w = array.shape
    # (2, H, W): channel 0 the target (left half), channel 1 the source (right half)
    return np.stack([array[:, : w // 2], array[:, w // 2:]])


class PairBank:
    """Every pair of an `.obj` decoded once: `pairs` uint8 (N, 2, H, W), `labels` (N,)."""

    def __init__(self, labels: torch.Tensor, pairs: torch.Tensor, source: str = ""):
        self.labels, self.pairs, self.source = labels, pairs, source

    @classmethod
    def from_obj(cls, obj_path, num_workers: int = 0, labels: set[int] | None = None) -> "PairBank":
        records = read_obj(obj_path)
        if labels is not None:
            records = [r for r in records if r.label in labels]
            if not records:
                raise ObjFormatError(f"{obj_path}: no record has a label in {sorted(labels)}")
        items = [(i, r.image_bytes) for i, r in enumerate(records)]
        progress = dict(total=len(items), desc=f"decode {Path(obj_path).name}", unit="pair", leave=False,
                        disable=len(items) < 2000)
        try:
            if num_workers > 0 and len(items) > 256:
                with Pool(num_workers) as pool:
                    arrays = list(tqdm(pool.imap(_decode, items, chunksize=64), **progress))
            else:
                arrays = [_decode(item) for item in tqdm(items, **progress)]
        except ValueError as err:
            raise ObjFormatError(f"{obj_path}: {err}") from None
        pairs = torch.from_numpy(np.stack(arrays))
        return cls(torch.tensor([r.label for r in records], dtype=torch.long), pairs, str(obj_path))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.pairs.shape[-1]

    def model_tensors(self, index=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(labels, target, source) of the chosen records, images (N, 1, H, W) in [-1, 1]."""
        index = slice(None) if index is None else index
        pairs = to_model_input(self.pairs[index], torch.device("cpu"))
        return self.labels[index], pairs[:, :1], pairs[:, 1:]

    @property
    def nbytes(self) -> int:
        return self.pairs.numel() * self.pairs.element_size()


def label_balanced(labels: list[int], count: int, seed: int | None = None) -> list[int]:
    """Up to `count` indices taking each label in turn (shuffled within a label when seeded)."""
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    if seed is not None:
        rng = random.Random(seed)
        for indices in by_label.values():
            rng.shuffle(indices)
    picked, rank = [], 0
    while len(picked) < min(count, len(labels)):
        for indices in by_label.values():
            if rank < len(indices) and len(picked) < count:
                picked.append(indices[rank])
        rank += 1
    return picked


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


def crop_theta(w: int, h: int, nw: torch.Tensor, nh: torch.Tensor, sx: torch.Tensor,
               sy: torch.Tensor) -> torch.Tensor:
    """affine_grid maps (align_corners=False) of "resize to (nw, nh), crop (w, h) at (sx, sy)".

    Enlarging by m (nw = int(m * w) + 1) and cropping at integer shift s maps output
    pixel j to input position (s + j + 0.5) * w / nw - 0.5: an affine map.
    """
    theta = torch.zeros(len(nw), 2, 3, device=nw.device)
    theta[:, 0, 0] = w / nw
    theta[:, 0, 2] = (w + 2 * sx) / nw - 1
    theta[:, 1, 1] = h / nh
    theta[:, 1, 2] = (h + 2 * sy) / nh - 1
    return theta


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
        theta = crop_theta(w, h, self.nw, self.nh, self.sx, self.sy)
        theta[self.turn] = -theta[self.turn]  # a 180 degree turn negates the map
        return theta


def augment_params(batch: int, h: int, w: int, bold: bool = False, rotate: bool = False,
                   blur: bool = False, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> AugmentDraw:
    """Draw zi2zi's augmentation for a batch, with the distributions of `augment_pair`."""
    def rand():
        return torch.rand(batch, generator=generator, device=device)

    scale_max = BOLD_SCALE_MAX if bold else SCALE_MAX
    m = 1.0 + (scale_max - 1.0) * rand()
    nw, nh = torch.floor(m * w) + 1, torch.floor(m * h) + 1
    sx = torch.floor(rand() * torch.clamp(nw - w, min=1))   # randint(0, max(nw - w - 1, 0))
    sy = torch.floor(rand() * torch.clamp(nh - h, min=1))
    turn = torch.zeros(batch, dtype=torch.bool, device=device)
    if rotate:
        share_180 = sum(a == 180 for a in ROTATE_ANGLES) / len(ROTATE_ANGLES)
        turn = (rand() < ROTATE_PROB) & (rand() < share_180)
    blur_index = torch.full((batch,), -1, dtype=torch.long, device=device)
    if blur:
        chosen = rand() < BLUR_PROB
        which = torch.floor(rand() * len(BLUR_SIGMAS)).long()
        blur_index = torch.where(chosen, which, blur_index)
    return AugmentDraw(nw, nh, sx, sy, turn, blur_index)


def blur_batch(pairs: torch.Tensor, blur_index: torch.Tensor) -> torch.Tensor:
    """Gaussian blur, in place, of the samples whose blur_index picks a sigma."""
    for i, sigma in enumerate(BLUR_SIGMAS):
        mask = blur_index == i
        if mask.any():
            pairs[mask] = _blur(pairs[mask], sigma)
    return pairs


def apply_augment(pairs: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    """The drawn augmentation on a float batch (B, 2, H, W) in [-1, 1], one `grid_sample`.

    The path for GPUs, where one fused resampling of the whole batch is nearly free.
    """
    b, c, h, w = pairs.shape
    grid = F.affine_grid(draw.theta(w, h).to(pairs.dtype), [b, c, h, w], align_corners=False)
    out = F.grid_sample(pairs, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return blur_batch(out, draw.blur_index)


def augment_uint8(pairs: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    """The drawn enlarge-crop-turn on uint8 pairs (B, 2, H, W) on the CPU (no blur).

    The path for CPUs: torch's uint8 bilinear resize (vectorised, 4x less memory
    traffic than float) per sample, then the crop. Same geometry as `apply_augment`
    (half-pixel centres; for enlarging, antialiasing changes nothing).
    """
    b, _, h, w = pairs.shape
    out = torch.empty_like(pairs)
    sizes = torch.stack([draw.nh, draw.nw, draw.sy, draw.sx], 1).long().tolist()
    turns = draw.turn.tolist()
    for i, (nh, nw, sy, sx) in enumerate(sizes):
        big = F.interpolate(pairs[i:i + 1], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        crop = big[0, :, sy:sy + h, sx:sx + w]
        out[i] = crop.flip(1, 2) if turns[i] else crop
    return out


def to_model_input(pairs_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 2, H, W) on the host -> float32 in [-1, 1] on `device`."""
    x = pairs_uint8.to(device, non_blocking=True)
    return x.float().mul_(1 / 127.5).sub_(1.0)


class BatchIterator:
    """Seeded epochs of (labels, real_A = source, real_B = target) batches on `device`.

    Epoch e's order and augmentation come from a generator seeded with (seed, e),
    so a run resumed mid-epoch sees the same remaining batches it would have seen.
    """

    def __init__(self, bank: PairBank, batch_size: int, device, input_nc: int = 1, augment: bool = True,
                 bold: bool = False, rotate: bool = False, blur: bool = False, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True):
        self.bank, self.batch_size, self.device = bank, batch_size, torch.device(device)
        self.input_nc, self.augment, self.bold, self.rotate, self.blur = input_nc, augment, bold, rotate, blur
        self.seed, self.shuffle = seed, shuffle
        self.drop_last = drop_last and len(bank) >= batch_size
        self.pairs, self.labels = bank.pairs, bank.labels
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            if bank.nbytes < total // 4:
                # The uint8 bank fits with room to spare: keep it on the GPU, no copies per step.
                # A larger one stays on the host and each batch (uint8, 4x smaller than
                # float) is gathered and copied over.
                # Labels stay on the host: checking them costs no device sync.
                self.pairs = bank.pairs.to(self.device)

    def __len__(self) -> int:
        n = len(self.bank)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _generators(self, epoch: int):
        seed = self.seed * 1_000_003 + epoch
        order = torch.Generator().manual_seed(seed)
        aug = torch.Generator(device=self.device).manual_seed(seed + 1)
        return order, aug

    def epoch(self, epoch: int, start_batch: int = 0):
        order_gen, aug_gen = self._generators(epoch)
        n = len(self.bank)
        order = torch.randperm(n, generator=order_gen) if self.shuffle else torch.arange(n)
        h = w = self.bank.image_size
        on_cpu = self.device.type == "cpu"
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            # Draw the augmentation of skipped batches too, so a resumed epoch stays in step.
            draw = (augment_params(len(index), h, w, self.bold, self.rotate, self.blur, aug_gen, self.device)
                    if self.augment else None)
            if i < start_batch:
                continue
            pairs = self.pairs[index.to(self.pairs.device)]
            if draw is None:
                pairs = to_model_input(pairs, self.device)
            elif on_cpu:  # resample in uint8 on the CPU, then convert
                pairs = blur_batch(to_model_input(augment_uint8(pairs, draw), self.device), draw.blur_index)
            else:  # convert on the GPU, resample the whole batch there
                pairs = apply_augment(to_model_input(pairs, self.device), draw)
            target, source = pairs[:, :1], pairs[:, 1:]
            if self.input_nc > 1:
                target = target.expand(-1, self.input_nc, -1, -1)
                source = source.expand(-1, self.input_nc, -1, -1)
            yield self.labels[index], source, target
