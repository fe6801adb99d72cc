"""Decoding `.obj` records into uint8 pairs, a bounded chunk at a time, in worker processes or here."""
from __future__ import annotations

import io
import multiprocessing
from collections import deque
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .obj import ObjFormatError, ObjIndex


def decode_pair(index: int, data: bytes) -> np.ndarray:
    """One record's image -> uint8 (2, H, W): channel 0 the target (left half), 1 the source (right half)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert("L"), dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"record {index} does not decode ({err})") from None
    h, w = array.shape
    return np.stack([array[:, : w // 2], array[:, w // 2:]])


def _decode_chunk(items: list[tuple[int, bytes]]) -> np.ndarray:
    return np.stack([decode_pair(i, data) for i, data in items])


def decoder_context():
    """Processes for decoding: forked, unless CUDA is already initialised in this process.

    A forked child inherits a CUDA context it cannot use; then the forkserver starts
    clean children instead (slower to start, safe).
    """
    return multiprocessing.get_context("forkserver" if torch.cuda.is_initialized() else "fork")


def decode_records(index: ObjIndex, chunks: Iterable[Sequence[int]], num_workers: int = 0) -> Iterator[np.ndarray]:
    """uint8 (len(chunk), 2, H, W) for each chunk of record numbers, in order.

    Only the chunks being decoded are read from the file: at most two per worker are
    in flight (a Pool's imap would read every record ahead into its queue).
    """
    def items(chunk):
        return [(i, record.image_bytes) for i, record in zip(chunk, index.read(chunk))]
    try:
        if num_workers == 0:
            for chunk in chunks:
                yield _decode_chunk(items(chunk))
            return
        with decoder_context().Pool(num_workers) as pool:
            pending = deque()
            for chunk in chunks:
                pending.append(pool.apply_async(_decode_chunk, (items(chunk),)))
                if len(pending) >= 2 * num_workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    except ValueError as err:
        raise ObjFormatError(f"{index.path}: {err}") from None
