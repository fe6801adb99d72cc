"""Held-out quality while training: the A/B report's metrics on a fixed slice of val.obj
(the pointer to the best checkpoint, `--keep_best`, is model.checkpoint.BestCheckpoint)."""
from __future__ import annotations

import time
from pathlib import Path

from data.loader import PairBank, label_balanced
from evaluation.metrics import copy_source_scores, held_out_record


class Validator:
    """The generator, in eval mode, on the same label-balanced `count` pairs of val.obj every time."""

    def __init__(self, val_obj: Path, count: int, seed: int = 0, labels: set[int] | None = None):
        # --fine_tune: the labels being trained; only the pairs evaluated are decoded
        bank = PairBank.from_obj(val_obj, labels=labels, choose=lambda found: label_balanced(found, count, seed=seed))
        self.labels, self.sources, self.targets = bank.batch()
        self.description = f"{len(bank)} pairs of {val_obj}"
        self.floor = copy_source_scores(self.sources, self.targets)   # the same pairs every time: scored once

    def evaluate(self, model) -> dict[str, float]:
        """`val_l1`, `val_rmse`, `val_psnr`, `val_ssim`, `val_ink_iou`, `val_diversity_ratio`, ..., and
        the copy-the-source floor `val_floor_*` with each metric's gain over it, `val_*_gain`."""
        start = time.perf_counter()
        fake = model.generate(self.sources, self.labels)
        record = held_out_record(fake, self.targets, self.labels, self.floor)
        record["val_seconds"] = time.perf_counter() - start   # what validation costs, for choosing --eval_steps
        return record
