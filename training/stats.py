"""Training statistics: collected in one place, handed to the writers.

`StatsWindow` averages the per-step stats between two log points into one record;
`LogWriters` sends a record to logs/train.jsonl and TensorBoard and draws
logs/losses.png from the JSONL file. The progress bar shows the latest step's stats.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from evaluation.curves import plot_training_log
from utils.experiment import Experiment
from utils.logs import JsonlLogger, read_jsonl, truncate_after_step


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
    """train.jsonl (append-only, cut back to the resumed step), TensorBoard if installed, losses.png.

    `enabled=False` (every process but rank 0 under torchrun) writes nothing.
    """

    def __init__(self, experiment: Experiment, resume_step: int, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        self.jsonl_path = experiment.train_log
        self.plot_path = experiment.loss_plot
        self.run_name = experiment.root.name
        truncate_after_step(self.jsonl_path, resume_step)  # a resumed run rewrites what came after it
        self.jsonl = JsonlLogger(self.jsonl_path)
        self.tensorboard = _tensorboard(experiment.tensorboard)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.jsonl.write(record)
        if self.tensorboard is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):   # events carry text: the log keeps it
                    self.tensorboard.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if not self.enabled:
            return
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


BLANK_INK_SHARE = 0.05  # generated glyphs with under 5% of the real targets' ink count as blank


class CollapseWatch:
    """Notices a dead run while it happens: D saturated while the generator stops improving.

    A run is reported once, when over the last `window` steps D's mean sigmoid on real
    pairs stays above `d_real` and on generated pairs below `d_fake` while the L1 loss
    of the second half of the window is no better than the first half's; or when the
    generator's sample glyphs have almost no ink (`blank_samples`). Both are what a run
    that has died looks like: D wins outright and G's gradients vanish.
    """

    def __init__(self, window: int, d_real: float, d_fake: float):
        self.window, self.d_real, self.d_fake = window, d_real, d_fake
        self.recent: list[tuple[float, float, float]] = []
        self.reported = False

    def update(self, stats: dict[str, float]) -> str | None:
        """Add one step's stats; returns a message the first time the run looks dead."""
        self.recent = (self.recent + [(stats["d_real_prob"], stats["d_fake_prob"], stats["l1_loss"])])[-self.window:]
        if self.reported or len(self.recent) < self.window:
            return None
        real, fake, l1 = (sum(column) / len(column) for column in zip(*self.recent))
        half = self.window // 2
        l1_first = sum(r[2] for r in self.recent[:half]) / half
        l1_second = sum(r[2] for r in self.recent[half:]) / (self.window - half)
        if real > self.d_real and fake < self.d_fake and l1_second >= 0.99 * l1_first:
            return self._report(f"over the last {self.window} steps D(real) = {real:.3f} and D(fake) = {fake:.3f} "
                                f"while the L1 loss stayed at {l1:.3g}")
        return None

    def blank_samples(self, fake_ink: float, real_ink: float) -> str | None:
        """Report generated samples with almost none of the real targets' ink."""
        if self.reported or real_ink <= 0 or fake_ink >= BLANK_INK_SHARE * real_ink:
            return None
        return self._report(f"the sample glyphs are blank ({fake_ink:.2%} ink pixels where the targets "
                            f"have {real_ink:.2%})")

    def _report(self, what: str) -> str:
        self.reported = True
        return (f"the run looks collapsed: {what}. The discriminator wins and the generator gets no useful "
                f"gradient. Likely causes: a generator without normalisation (--norm_G none), a learning rate "
                f"too high for D; try --norm_G batch, --sn-discriminator with --norm_D none, or a lower --lr_D")


def ink_share(images: torch.Tensor) -> float:
    """Share of dark (ink) pixels in images in [-1, 1], ink black."""
    return (images < 0).float().mean().item()


class DivergenceGuard:
    """Notices losses that explode while staying finite (a far too high --lr, say).

    Rule: a step whose d_loss or g_loss exceeds `factor` times that loss's median over
    the last `window` steps (once `warmup` steps are seen), or exceeds ABSOLUTE_LIMIT at
    any step, has diverged. Healthy zi2zi losses stay below a few hundred (the weighted
    L1 is at most 2 x --L1_penalty) with spikes of a few times the median; a run with a
    far too high learning rate reaches 1e20 from its first step.
    """

    ABSOLUTE_LIMIT = 1e8

    def __init__(self, factor: float, window: int = 100, warmup: int = 20):
        self.factor, self.window, self.warmup = factor, window, warmup
        self.history: dict[str, list[float]] = {"d_loss": [], "g_loss": []}

    def check(self, stats: dict[str, float]) -> str | None:
        """Returns what diverged, or None; a diverged step is not added to the history."""
        if not self.factor:
            return None
        for key in self.history:
            if stats[key] > self.ABSOLUTE_LIMIT:
                return f"{key} {stats[key]:.3g} is over {self.ABSOLUTE_LIMIT:.0e}, far beyond any healthy zi2zi loss"
        for key, past in self.history.items():
            if len(past) >= self.warmup:
                median = sorted(past)[len(past) // 2]
                if stats[key] > self.factor * max(median, 1e-8):
                    return (f"{key} {stats[key]:.3g} is over {self.factor:g}x its median {median:.3g} over the "
                            f"last {len(past)} steps (--divergence_factor)")
        for key, past in self.history.items():
            past.append(stats[key])
            del past[:-self.window]
        return None
