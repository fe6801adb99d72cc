"""The fast training data path: decode once, augment whole batches on the device.

    bank = PairBank.from_obj("experiment/data/train.obj", num_workers=4)
    batches = BatchIterator(bank, batch_size=64, device="cuda", augment=True, seed=777)
    for labels, real_A, real_B in batches.epoch(0):   # real_A: source, real_B: target
        ...

zi2zi-pytorch decodes a JPEG and resizes it with PIL for every item of every epoch.
Here every record is decoded once into a uint8 tensor; per batch only the uint8
pairs travel to the device, where one `grid_sample` applies zi2zi's augmentation
(the same enlarge-and-crop, 180 degree turn and blur distributions as
`data.dataset.augment_pair`, shared by both halves) to the whole batch.
"""
from __future__ import annotations

import io
import math
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

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
        try:
            if num_workers > 0 and len(items) > 256:
                with Pool(num_workers) as pool:
                    arrays = pool.map(_decode, items, chunksize=64)
            else:
                arrays = [_decode(item) for item in items]
        except ValueError as err:
            raise ObjFormatError(f"{obj_path}: {err}") from None
        pairs = torch.from_numpy(np.stack(arrays))
        return cls(torch.tensor([r.label for r in records], dtype=torch.long), pairs, str(obj_path))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.pairs.shape[-1]

    @property
    def nbytes(self) -> int:
        return self.pairs.numel() * self.pairs.element_size()


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
    """affine_grid maps (align_corners=False) of "resize to (nw, nh), crop (w, h) at (sx, sy)"."""
    theta = torch.zeros(len(nw), 2, 3, device=nw.device)
    theta[:, 0, 0] = w / nw
    theta[:, 0, 2] = (w + 2 * sx) / nw - 1
    theta[:, 1, 1] = h / nh
    theta[:, 1, 2] = (h + 2 * sy) / nh - 1
    return theta


def augment_params(batch: int, h: int, w: int, bold: bool = False, rotate: bool = False,
                   blur: bool = False, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Draw zi2zi's augmentation for a batch: affine maps (B, 2, 3) and blur choices (B,).

    Enlarging by m (nw = int(m * w) + 1) and cropping at integer shift s maps output
    pixel j to input position (s + j + 0.5) * w / nw - 0.5: an affine map, so the
    whole batch is one `grid_sample`. A 180 degree turn negates that map. The blur
    choice is an index into BLUR_SIGMAS, or -1 for none.
    """
    def rand():
        return torch.rand(batch, generator=generator, device=device)

    scale_max = BOLD_SCALE_MAX if bold else SCALE_MAX
    m = 1.0 + (scale_max - 1.0) * rand()
    nw, nh = torch.floor(m * w) + 1, torch.floor(m * h) + 1
    sx = torch.floor(rand() * torch.clamp(nw - w, min=1))   # randint(0, max(nw - w - 1, 0))
    sy = torch.floor(rand() * torch.clamp(nh - h, min=1))
    theta = crop_theta(w, h, nw, nh, sx, sy)
    if rotate:
        share_180 = sum(a == 180 for a in ROTATE_ANGLES) / len(ROTATE_ANGLES)
        turn = (rand() < ROTATE_PROB) & (rand() < share_180)
        theta[turn] = -theta[turn]
    blur_index = torch.full((batch,), -1, dtype=torch.long, device=device)
    if blur:
        chosen = rand() < BLUR_PROB
        which = torch.floor(rand() * len(BLUR_SIGMAS)).long()
        blur_index = torch.where(chosen, which, blur_index)
    return theta, blur_index


def apply_augment(pairs: torch.Tensor, theta: torch.Tensor, blur_index: torch.Tensor) -> torch.Tensor:
    """Apply drawn augmentation to a float batch (B, 2, H, W) in [-1, 1]; both halves alike."""
    grid = F.affine_grid(theta.to(pairs.dtype), list(pairs.shape), align_corners=False)
    out = F.grid_sample(pairs, grid, mode="bilinear", padding_mode="border", align_corners=False)
    for i, sigma in enumerate(BLUR_SIGMAS):
        mask = blur_index == i
        if mask.any():
            out[mask] = _blur(out[mask], sigma)
    return out


def augment_batch(pairs: torch.Tensor, bold: bool = False, rotate: bool = False, blur: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """zi2zi's augmentation for a float batch (B, 2, H, W) in [-1, 1]."""
    b, _, h, w = pairs.shape
    return apply_augment(pairs, *augment_params(b, h, w, bold, rotate, blur, generator, pairs.device))


def to_model_input(pairs_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 2, H, W) on the host -> float32 in [-1, 1] on `device`."""
    x = pairs_uint8.to(device, non_blocking=True)
    return x.float().div_(127.5).sub_(1.0)


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
                self.pairs, self.labels = bank.pairs.to(self.device), bank.labels.to(self.device)

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
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            # Draw the augmentation of skipped batches too, so a resumed epoch stays in step.
            params = (augment_params(len(index), h, w, self.bold, self.rotate, self.blur, aug_gen,
                                     self.device) if self.augment else None)
            if i < start_batch:
                continue
            pairs = to_model_input(self.pairs[index.to(self.pairs.device)], self.device)
            if params is not None:
                pairs = apply_augment(pairs, *params)
            target, source = pairs[:, :1], pairs[:, 1:]
            if self.input_nc > 1:
                target = target.expand(-1, self.input_nc, -1, -1)
                source = source.expand(-1, self.input_nc, -1, -1)
            yield self.labels[index.to(self.labels.device)], source, target
