"""Held-out quality while training: the A/B report's metrics on a fixed slice of val.obj,
and the pointer to the best checkpoint so far (`--keep_best`)."""
from __future__ import annotations

import math
import time
from pathlib import Path

from data.loader import PairBank, label_balanced
from evaluation.metrics import METRICS, copy_source_scores, held_out_record
from model.checkpoint import Checkpoints


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


class BestCheckpoint:
    """checkpoint/best.json: the step with the best held-out `metric`, kept across resumes.

    Created on every start (rank 0): a pointer past the resumed step names a checkpoint
    this run is about to overwrite, and one for another metric holds a value that cannot
    be compared, so both are dropped. `metric` None: only that clean-up.
    """

    def __init__(self, checkpoints: Checkpoints, metric: str | None, resumed_step: int | None):
        self.checkpoints, self.metric = checkpoints, metric
        self.higher_is_better = METRICS[metric] if metric else True
        best = checkpoints.best()
        if best is not None and (resumed_step is None or best["step"] > resumed_step
                                 or (metric is not None and best["metric"] != metric)):
            checkpoints.forget_best()
            best = None
        self.value = best["value"] if best is not None and metric else None
        self.step = best["step"] if best is not None and metric else None

    @property
    def active(self) -> bool:
        return self.metric is not None

    def improves(self, value: float) -> bool:
        if not self.active or not math.isfinite(value):
            return False
        if self.value is None:
            return True
        return value > self.value if self.higher_is_better else value < self.value

    def record(self, step: int, value: float) -> None:
        """Point best.json at `step` (whose checkpoint is on disk)."""
        self.checkpoints.write_best(step, self.metric, value, self.higher_is_better)
        self.value, self.step = value, step
