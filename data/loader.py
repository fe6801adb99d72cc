"""The fast training data path: decode once, augment whole batches on the device.

    bank = PairBank.from_cache("experiment/data/train.obj", num_workers=4)
    batches = BatchIterator(bank, batch_size=64, device="cuda", augment=True, seed=777)
    for labels, real_A, real_B in batches.epoch(0):   # real_A: source, real_B: target
        ...

zi2zi-pytorch decodes a JPEG and resizes it with PIL for every item of every epoch.
Here every record is decoded once per machine into the decoded cache (`data.cache`),
a uint8 file every process maps, so the data's one host copy is the page cache. On a
GPU, only uint8 pairs travel to the device (gathered into pinned memory by a
background thread), or the whole bank lives there when it fits, and one `grid_sample`
applies zi2zi's augmentation to the whole batch; on a CPU, the resampling runs on
uint8. Both apply the draw of `data.augment`, the same for both halves of a pair.
`PilBatches` is zi2zi's own path (PIL decode and augment per item, DataLoader workers).
"""
from __future__ import annotations

import math
import queue
import random
import threading
from typing import Callable, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from utils.errors import UserError

from .augment import augment_float, augment_params, augment_uint8, blur_batch
from .cache import DecodedCache, decoded_cache
from .dataset import DatasetFromObj, signed_unit
from .decode import decode_records
from .obj import ObjFormatError, scan_obj

DECODE_CHUNK = 256


class PairBank:
    """Decoded pairs: `pairs` uint8 (M, 2, H, W), in memory or mapped from the decoded cache; `labels` (N,).

    `rows` (N,) picks the bank's pairs out of `pairs` (a label subset of a mapped
    cache, which is not copied); without it the bank is all of `pairs`.
    """

    def __init__(self, labels: torch.Tensor, pairs: torch.Tensor, rows: torch.Tensor | None = None,
                 cache: DecodedCache | None = None):
        self.labels, self.pairs, self.rows = labels, pairs, rows
        self.cache = cache   # the mapped file behind `pairs`, when there is one

    @classmethod
    def from_obj(cls, obj_path, num_workers: int = 0, labels: set[int] | None = None,
                 choose: Callable[[list[int]], list[int]] | None = None) -> "PairBank":
        """Decode the records of `obj_path` (those with `labels`) into memory; `choose` maps their labels to
        the indices to keep, in order, and only those are read and decoded (a sample grid, a validation slice)."""
        index = scan_obj(obj_path)
        keep = _with_labels(index.labels, labels, obj_path)
        if choose is not None:
            keep = [keep[i] for i in choose([index.labels[i] for i in keep])]
        pairs = np.empty((len(keep), 2, index.height, index.width // 2), np.uint8)
        chunks = [keep[i:i + DECODE_CHUNK] for i in range(0, len(keep), DECODE_CHUNK)]
        progress = tqdm(total=len(keep), desc=f"decode {index.path.name}", unit="pair", leave=False,
                        disable=len(keep) < 2000)
        done = 0
        for arrays in decode_records(index, chunks, num_workers if len(keep) > DECODE_CHUNK else 0):
            pairs[done:done + len(arrays)] = arrays
            done += len(arrays)
            progress.update(len(arrays))
        progress.close()
        return cls(torch.tensor([index.labels[i] for i in keep], dtype=torch.long), torch.from_numpy(pairs))

    @classmethod
    def from_cache(cls, obj_path, num_workers: int = 0, labels: set[int] | None = None, cache_dir=None,
                   say: Callable[[str], None] = print, build: bool = True) -> "PairBank":
        """The records of `obj_path` (those with `labels`) mapped from its decoded cache, built first if need be."""
        cache = decoded_cache(obj_path, cache_dir, num_workers, say, build)
        keep = _with_labels(cache.labels.tolist(), labels, obj_path)
        rows = None if len(keep) == len(cache.labels) else torch.tensor(keep, dtype=torch.long)
        return cls(torch.from_numpy(cache.labels[keep]), torch.from_numpy(cache.pairs), rows, cache)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.pairs.shape[-1]

    def rows_of(self, index: torch.Tensor) -> torch.Tensor:
        """Positions in `pairs` of the bank's pairs `index`."""
        return index if self.rows is None else self.rows[index]

    def gather(self, index: torch.Tensor, pin: bool = False) -> torch.Tensor:
        """uint8 (len(index), 2, H, W) of the bank's pairs `index`, in that order (in pinned memory if `pin`)."""
        rows = self.rows_of(index).to(self.pairs.device)
        if self.cache is not None:
            self.cache.will_need(rows.tolist())
        if self.pairs.device.type == "cpu":
            # numpy copies on the calling thread. A torch gather on the prefetch thread would start a
            # second OpenMP team there, whose threads spin between batches on the cores the training
            # step's convolutions use (measured: a 2-core CPU step took 2.3x as long).
            out = torch.empty((len(rows), *self.pairs.shape[1:]), dtype=torch.uint8, pin_memory=pin)
            np.take(self.pairs.numpy(), rows.numpy(), axis=0, out=out.numpy())
            return out
        return self.pairs[rows]

    def batch(self, index=None) -> Batch:
        """The chosen records (all by default) as one Batch on the CPU, images (N, 1, H, W) in [-1, 1]."""
        index = torch.arange(len(self)) if index is None else torch.as_tensor(index)
        pairs = to_model_input(self.gather(index), torch.device("cpu"))
        return Batch(self.labels[index], source=pairs[:, 1:], target=pairs[:, :1])

    @property
    def nbytes(self) -> int:
        return len(self) * self.pairs[0].numel() * self.pairs.element_size()

    def to(self, device: torch.device, chunk: int = 1024) -> "PairBank":
        """The bank's pairs copied to `device`, a chunk at a time (no second host copy of a mapped cache)."""
        out = torch.empty((len(self), *self.pairs.shape[1:]), dtype=torch.uint8, device=device)
        for first in range(0, len(self), chunk):
            index = torch.arange(first, min(first + chunk, len(self)))
            out[first:first + len(index)] = self.gather(index).to(device)
        return PairBank(self.labels, out)


class Batch(NamedTuple):
    """Pairs as the model takes them, from the loaders to the training step, the samples and the
    evaluations: style labels (N,), source and target glyphs (N, C, H, W) in [-1, 1].

    (zi2zi-pytorch's DatasetFromObj keeps its own item order, (label, target, source).)
    """
    labels: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor


def _with_labels(found: list[int], labels: set[int] | None, obj_path) -> list[int]:
    """Record numbers whose label is in `labels` (all when None); an error when none is."""
    if labels is None:
        return list(range(len(found)))
    keep = [i for i, label in enumerate(found) if label in labels]
    if not keep:
        raise ObjFormatError(f"{obj_path}: no record has a label in {sorted(labels)}")
    return keep


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
    return signed_unit(pairs_uint8.to(device, non_blocking=True))


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The order of epoch `epoch`: the same on every process and for every world size."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)) if shuffle \
        else torch.arange(n)


def batch_shares(order: torch.Tensor, batch_size: int, batches: int, rank: int,
                 world_size: int) -> list[tuple[int, int, torch.Tensor]]:
    """(lo, hi, this process's indices) of each global batch of `order`: the batch split evenly over the
    processes, rank r taking its [lo, hi) slice; the one split both loaders use, so they shard alike."""
    shares = []
    for i in range(batches):
        batch = order[i * batch_size:(i + 1) * batch_size]
        share = len(batch) // world_size
        lo, hi = rank * share, (rank + 1) * share
        shares.append((lo, hi, batch[lo:hi]))
    return shares


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
        self.labels, self.image_size = bank.labels, bank.image_size
        self.pin = self.device.type == "cuda"
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if bank.nbytes < free // 4:
                # The uint8 bank fits in a quarter of the free memory: keep it on the GPU, no
                # copies per step. A larger one stays in the host's page cache and each batch
                # (uint8, 4x smaller than float) is gathered into pinned memory and copied over.
                # Labels stay on the host: checking them costs no device sync.
                self.bank = bank.to(self.device)

    def __len__(self) -> int:
        n = len(self.bank)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0):
        aug_gen = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + epoch + 1)
        order = epoch_order(len(self.bank), self.seed, epoch, self.shuffle)
        h = w = self.bank.image_size
        on_cpu = self.device.type == "cpu"
        shares = batch_shares(order, self.batch_size, len(self), self.rank, self.world_size)
        gathered = self.gathered([index for _, _, index in shares[start_batch:]])
        try:
            for i, (lo, hi, index) in enumerate(shares):
                size = len(order[i * self.batch_size:(i + 1) * self.batch_size])
                # Draw the augmentation of skipped batches too, so a resumed epoch stays in step.
                draw = (augment_params(size, h, w, self.bold, self.rotate, self.blur, aug_gen, self.device)
                        if self.augment else None)
                if i < start_batch:
                    continue
                draw = draw.part(lo, hi) if draw is not None else None
                pairs = next(gathered)
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
                yield Batch(self.labels[index], source, target)
        finally:
            gathered.close()

    def gathered(self, indices: list[torch.Tensor]):
        """The uint8 pairs of each index in turn: from the GPU bank directly, else by a background thread
        a few batches ahead, so reading pages from disk and copying overlap the training step."""
        if self.bank.pairs.device.type == "cuda":
            return self._gather_on_device(indices)
        return Prefetcher(lambda index: self.bank.gather(index, pin=self.pin), indices)


    def _gather_on_device(self, indices: list[torch.Tensor]):
        if not indices:
            return
        # The epoch's order goes to the GPU in one copy: a per-batch copy of each index
        # from pageable host memory would block the host every step.
        on_device = torch.cat(indices).to(self.bank.pairs.device)
        for part in on_device.split([len(i) for i in indices]):
            yield self.bank.gather(part)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """`fetch(item)` of each item in order, computed by a background thread up to `depth` items ahead."""

    _END = object()

    def __init__(self, fetch: Callable, items: list, depth: int = 2):
        self.queue: queue.Queue = queue.Queue(depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fetch, items), daemon=True, name="prefetch")
        self.thread.start()

    def _put(self, value) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, fetch, items) -> None:
        try:
            for item in items:
                if not self._put(fetch(item)):
                    return
        except BaseException as err:   # handed to the consumer, raised there
            self._put(_Failed(err))
            return
        self._put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        value = self.queue.get()
        if value is self._END:
            self.queue.put(self._END)
            raise StopIteration
        if isinstance(value, _Failed):
            raise value.error
        return value

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()


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
            keep = _with_labels(dataset.labels, labels, obj_path)
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
        order = epoch_order(len(self.dataset), self.seed, epoch)
        shares = batch_shares(order, self.batch_size, len(self), self.rank, self.world_size)
        return [index.tolist() for _, _, index in shares[start_batch:]]

    def epoch(self, epoch: int, start_batch: int = 0):
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self._shares(epoch, start_batch), num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda")
        for labels, target, source in loader:   # zi2zi's item order
            yield Batch(labels, source, target)
