"""The fast training data path: decode once, augment whole batches on the device.

    bank = PairBank.from_obj("experiment/data/train.obj", num_workers=4)
    batches = BatchIterator(bank, batch_size=64, device="cuda", augment=True, seed=777)
    for labels, real_A, real_B in batches.epoch(0):   # real_A: source, real_B: target
        ...

zi2zi-pytorch decodes a JPEG and resizes it with PIL for every item of every epoch.
Here every record is decoded once into a uint8 tensor. On a GPU, only uint8 pairs
travel to the device (or the whole bank lives there) and one `grid_sample` applies
zi2zi's augmentation to the whole batch; on a CPU, the resampling runs on uint8.
Both apply the draw of `data.augment`, the same for both halves of a pair.
`PilBatches` is zi2zi's own path (PIL decode and augment per item, DataLoader workers).
"""
from __future__ import annotations

import io
import math
import random
import multiprocessing
from typing import Callable

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from utils.errors import UserError

from .augment import augment_float, augment_params, augment_uint8, blur_batch
from .dataset import DatasetFromObj
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


def decoder_context():
    """Processes for decoding: forked, unless CUDA is already initialised in this process.

    A forked child inherits a CUDA context it cannot use; then the forkserver starts
    clean children instead (slower to start, safe).
    """
    return multiprocessing.get_context("forkserver" if torch.cuda.is_initialized() else "fork")


class PairBank:
    """Every pair of an `.obj` decoded once: `pairs` uint8 (N, 2, H, W), `labels` (N,)."""

    def __init__(self, labels: torch.Tensor, pairs: torch.Tensor):
        self.labels, self.pairs = labels, pairs

    @classmethod
    def from_obj(cls, obj_path, num_workers: int = 0, labels: set[int] | None = None,
                 choose: Callable[[list[int]], list[int]] | None = None) -> "PairBank":
        """Decode the records of `obj_path` (those with `labels`); `choose` maps their labels to the
        indices to keep, in order, and only those are decoded (a sample grid, a validation slice)."""
        records = read_obj(obj_path)
        if labels is not None:
            records = [r for r in records if r.label in labels]
            if not records:
                raise ObjFormatError(f"{obj_path}: no record has a label in {sorted(labels)}")
        if choose is not None:
            records = [records[i] for i in choose([r.label for r in records])]
        items = [(i, r.image_bytes) for i, r in enumerate(records)]
        progress = dict(total=len(items), desc=f"decode {Path(obj_path).name}", unit="pair", leave=False,
                        disable=len(items) < 2000)
        try:
            if num_workers > 0 and len(items) > 256:
                with decoder_context().Pool(num_workers) as pool:
                    arrays = list(tqdm(pool.imap(_decode, items, chunksize=64), **progress))
            else:
                arrays = [_decode(item) for item in tqdm(items, **progress)]
        except ValueError as err:
            raise ObjFormatError(f"{obj_path}: {err}") from None
        pairs = torch.from_numpy(np.stack(arrays))
        return cls(torch.tensor([r.label for r in records], dtype=torch.long), pairs)

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


def to_model_input(pairs_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 2, H, W) on the host -> float32 in [-1, 1] on `device`."""
    x = pairs_uint8.to(device, non_blocking=True)
    return x.float().mul_(1 / 127.5).sub_(1.0)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The order of epoch `epoch`: the same on every process and for every world size."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)) if shuffle \
        else torch.arange(n)


def check_shardable(n: int, batch_size: int, world_size: int) -> None:
    """Several processes split every global batch evenly, so each must be full and divisible."""
    if world_size == 1:
        return
    if batch_size % world_size:
        raise UserError(f"--batch_size {batch_size} is the global batch and must split evenly over the "
                        f"{world_size} processes; use a multiple of {world_size}")
    if n < batch_size:
        raise UserError(f"the training data has {n} pairs, fewer than --batch_size {batch_size}; with several "
                        f"processes every batch must be full: lower --batch_size")


class BatchIterator:
    """Seeded epochs of (labels, real_A = source, real_B = target) batches on `device`.

    Epoch e's order and augmentation come from a generator seeded with (seed, e),
    so a run resumed mid-epoch sees the same remaining batches it would have seen.
    `batch_size` is the global batch: with `world_size` processes, process `rank` gets
    its contiguous share of every global batch, augmented as that share of the global
    batch's draw. So no pair is seen twice in an epoch, an epoch is the same set of
    pairs whatever the world size, and N processes see exactly what one process would.
    """

    def __init__(self, bank: PairBank, batch_size: int, device, input_nc: int = 1, augment: bool = True,
                 bold: bool = False, rotate: bool = False, blur: bool = False, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, rank: int = 0, world_size: int = 1):
        check_shardable(len(bank), batch_size, world_size)
        self.rank, self.world_size = rank, world_size
        self.bank, self.batch_size, self.device = bank, batch_size, torch.device(device)
        self.input_nc, self.augment, self.bold, self.rotate, self.blur = input_nc, augment, bold, rotate, blur
        self.seed, self.shuffle = seed, shuffle
        self.drop_last = drop_last and len(bank) >= batch_size
        self.pairs, self.labels, self.image_size = bank.pairs, bank.labels, bank.image_size
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if bank.nbytes < free // 4:
                # The uint8 bank fits in a quarter of the free memory: keep it on the GPU, no
                # copies per step, and drop the host copy (40 styles x GB2312 at 256 px is
                # 30 GiB of host RAM). A larger one stays on the host and each batch (uint8,
                # 4x smaller than float) is gathered and copied over.
                # Labels stay on the host: checking them costs no device sync.
                self.pairs = bank.pairs.to(self.device)
                bank.pairs = self.pairs

    def __len__(self) -> int:
        n = len(self.bank)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0):
        aug_gen = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + epoch + 1)
        order = epoch_order(len(self.bank), self.seed, epoch, self.shuffle)
        # The order goes to the bank's device once per epoch: a per-batch copy of the
        # index from pageable host memory would block the host every step.
        bank_order = order.to(self.pairs.device)
        h = w = self.bank.image_size
        on_cpu = self.device.type == "cpu"
        for i in range(len(self)):
            first = i * self.batch_size
            size = len(order[first:first + self.batch_size])
            # Draw the augmentation of skipped batches too, so a resumed epoch stays in step.
            draw = (augment_params(size, h, w, self.bold, self.rotate, self.blur, aug_gen, self.device)
                    if self.augment else None)
            if i < start_batch:
                continue
            share = size // self.world_size
            lo, hi = self.rank * share, (self.rank + 1) * share
            index = order[first + lo:first + hi]
            draw = draw.part(lo, hi) if draw is not None else None
            pairs = self.pairs[bank_order[first + lo:first + hi]]
            if draw is None:
                pairs = to_model_input(pairs, self.device)
            elif on_cpu:  # resample in uint8 on the CPU, then convert
                pairs = blur_batch(to_model_input(augment_uint8(pairs, draw), self.device), draw.blur_index)
            else:  # convert on the GPU, resample the whole batch there
                pairs = augment_float(to_model_input(pairs, self.device), draw)
            target, source = pairs[:, :1], pairs[:, 1:]
            if self.input_nc > 1:
                target = target.expand(-1, self.input_nc, -1, -1)
                source = source.expand(-1, self.input_nc, -1, -1)
            yield self.labels[index], source, target


class PilBatches:
    """zi2zi-pytorch's data path (PIL decode and augment per item, DataLoader workers).

    Epochs are ordered and sharded like `BatchIterator`'s, so a resumed epoch sees the
    same order and several processes split each global batch.
    """

    def __init__(self, obj_path, batch_size: int, device, input_nc: int = 1, augment: bool = True,
                 bold: bool = False, rotate: bool = False, blur: bool = False, seed: int = 0,
                 num_workers: int = 0, labels: set[int] | None = None, rank: int = 0, world_size: int = 1):
        dataset = DatasetFromObj(obj_path, input_nc, augment, bold, rotate, blur)
        self.labels = torch.tensor(dataset.labels, dtype=torch.long)
        self.image_size = dataset.image_size
        if labels is not None:
            keep = [i for i, label in enumerate(dataset.labels) if label in labels]
            if not keep:
                raise ObjFormatError(f"{obj_path}: no record has a label in {sorted(labels)}")
            dataset, self.labels = torch.utils.data.Subset(dataset, keep), self.labels[keep]
        check_shardable(len(dataset), batch_size, world_size)
        self.dataset, self.batch_size, self.device = dataset, batch_size, torch.device(device)
        self.seed, self.num_workers, self.rank, self.world_size = seed, num_workers, rank, world_size
        self.drop_last = len(dataset) >= batch_size

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def _shares(self, epoch: int, start_batch: int) -> list[list[int]]:
        """This process's indices of each global batch from `start_batch` on."""
        order = epoch_order(len(self.dataset), self.seed, epoch).tolist()
        out = []
        for i in range(start_batch, len(self)):
            batch = order[i * self.batch_size:(i + 1) * self.batch_size]
            share = len(batch) // self.world_size
            out.append(batch[self.rank * share:(self.rank + 1) * share])
        return out

    def epoch(self, epoch: int, start_batch: int = 0):
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self._shares(epoch, start_batch), num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda")
        for labels, target, source in loader:
            yield labels, source, target
