"""Training statistics: collected in one place, handed to the writers.

`StatsWindow` averages the per-step stats between two log points into one record;
`LogWriters` sends a record to logs/train.jsonl and TensorBoard and draws
logs/losses.png from the JSONL file. The progress bar shows the latest step's stats.
"""
from __future__ import annotations

import time
from pathlib import Path

from utils.logs import JsonlLogger, plot_training_log, read_jsonl, truncate_after_step


class StatsWindow:
    """Sums of per-step stats since the last record, and the throughput over them."""

    def __init__(self, step: int):
        self.sums: dict[str, float] = {}
        self.start_step, self.start_time = step, time.perf_counter()

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def record(self, step: int, batch_size: int, **extra: float) -> dict:
        """The window's mean stats at `step` (with `extra` values), then start a new window."""
        now = time.perf_counter()
        n = max(step - self.start_step, 1)
        record = {"step": step, **{k: v / n for k, v in self.sums.items()}, **extra,
                  "img_per_s": n * batch_size / max(now - self.start_time, 1e-9)}
        self.sums, self.start_step, self.start_time = {}, step, now
        return record


def progress_postfix(stats: dict[str, float], epoch: int) -> dict[str, str]:
    return {"d": f"{stats['d_loss']:.3f}", "g": f"{stats['g_loss']:.2f}", "l1": f"{stats['l1_loss']:.2f}",
            "epoch": str(epoch)}


class LogWriters:
    """train.jsonl (append-only, cut back to the resumed step), TensorBoard if installed, losses.png."""

    def __init__(self, logs_dir: Path, run_name: str, resume_step: int):
        self.jsonl_path = logs_dir / "train.jsonl"
        self.plot_path = logs_dir / "losses.png"
        self.run_name = run_name
        truncate_after_step(self.jsonl_path, resume_step)  # a resumed run rewrites what came after it
        self.jsonl = JsonlLogger(self.jsonl_path)
        self.tensorboard = _tensorboard(logs_dir / "tensorboard")

    def write(self, record: dict) -> None:
        self.jsonl.write(record)
        if self.tensorboard is not None:
            for k, v in record.items():
                if k != "step":
                    self.tensorboard.add_scalar(k, v, record["step"])

    def close(self) -> None:
        self.jsonl.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        rows = read_jsonl(self.jsonl_path)
        if rows:
            plot_training_log({self.run_name: rows}, self.plot_path)


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional dependency
        return None
    return SummaryWriter(str(folder))
