"""The training loop behind train.py: data, samples, checkpoints, logs, resume, clean stops.

Layout of an experiment directory (zi2zi's, plus logs/ and config.json):

    experiment/data/{train,val}.obj
    experiment/data/cache/train-<hash>/       train.obj decoded once (--loader fast; --cache_dir moves it)
    experiment/checkpoint/{step}_net_G.pth, {step}_net_D.pth, {step}_state.pth
    experiment/sample/step_{step:07d}.png     source | target | generated
    experiment/logs/train.jsonl               one line per log interval
    experiment/logs/losses.png                curves drawn from train.jsonl
    experiment/config.json                    the resolved settings of the latest start
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from data.loader import Batch, BatchIterator, PairBank, PilBatches, label_balanced
from data.obj import existing_obj, scan_obj
from evaluation.metrics import METRICS
from model.checkpoint import BestCheckpoint, Checkpoints
from model.spectral import largest_singular_value
from utils.errors import UserError, WriteError
from utils.images import save_sample_grid
from utils.distributed import SINGLE, Distributed
from utils.experiment import Experiment
from utils.io import atomic_write_text, describe_write_failure, write_failure
from utils.rng import seed_everything

from .checkpoint import TrainingState
from .config import Settings
from .start import Start, apply_start
from .stats import CollapseWatch, DivergenceGuard, LogWriters, StatsWindow, ink_share, progress_postfix
from .step import NonFiniteLossError, PendingStats, TrainingStep
from .validation import Validator


def open_batches(train_obj: Path, settings: Settings, device: torch.device, dist: Distributed = SINGLE):
    """The training batches (this process's share of them), by the fast path or zi2zi's PIL path (`--loader`)."""
    run, cfg = settings.run, settings.model
    labels = set(run.fine_tune) if run.fine_tune is not None else None
    options = dict(input_nc=cfg.input_nc, augment=run.augment, bold=run.bold, rotate=run.rotate, blur=run.blur,
                   seed=run.random_seed, rank=dist.rank, world_size=dist.world_size)
    if settings.device.loader == "pil":
        return PilBatches(train_obj, run.batch_size, device, num_workers=settings.device.num_workers,
                          labels=labels, **options)
    return BatchIterator(decoded_bank(train_obj, settings, labels, dist), run.batch_size, device, **options)


def decoded_bank(train_obj: Path, settings: Settings, labels: set[int] | None, dist: Distributed) -> PairBank:
    """The training pairs mapped from the decoded cache: the first process of each machine builds it if need
    be while the others wait, so the machine decodes the file once and holds one copy, in its page cache."""
    options = dict(num_workers=settings.device.num_workers, labels=labels, cache_dir=settings.device.cache_dir,
                   say=tqdm.write)
    builder = dist.local_rank == 0
    bank = PairBank.from_cache(train_obj, **options) if builder else None
    dist.barrier()
    return bank if bank is not None else PairBank.from_cache(train_obj, build=False, **options)


def sample_batch(obj_path: Path, count: int) -> Batch:
    """A fixed, label-balanced batch of pairs, not augmented, for sample grids."""
    return PairBank.from_obj(obj_path, choose=lambda labels: label_balanced(labels, count)).batch()


class RunDiverged(UserError):
    """The losses exploded; the run ends without saving the broken weights."""


class RunCollapsed(UserError):
    """--stop_on_collapse: the run looks dead; it ends without saving over what came before."""


# Ctrl-C; SIGTERM, which schedulers (and torchrun, passing it on) send before they kill a
# job; SIGUSR1, which SLURM can be asked to send ahead of the time limit (--signal).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class StopRequested(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGUSR1 arrived; the loop stopped between two steps."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum  # what the shell reports for a process ended by that signal


@contextmanager
def stop_on_signals(request_stop: Callable[[int], None]):
    """Ctrl-C, SIGTERM and SIGUSR1 (a scheduler preempting the job) call `request_stop` instead of raising.

    The loop then stops between two steps, so the checkpoint it saves is consistent.
    A second Ctrl-C stops at once, as Python normally does. Outside the main thread
    signals cannot be caught, and this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def handle(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        request_stop(signum)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Runs `model` over the data to the end of the run, saving and logging on the way."""

    def __init__(self, model: TrainingStep, settings: Settings, experiment: Experiment,
                 start: Start | None = None):
        self.model, self.settings, self.experiment = model, settings, experiment
        self.dist = model.dist
        self.run_config = settings.run
        train_obj, val_obj = experiment.train_obj, experiment.val_obj
        existing_obj(train_obj, f"run package.py --save_dir {experiment.data} first, or point --data_dir at the "
                                f"folder holding train.obj")
        self.batches = open_batches(train_obj, settings, model.device, self.dist)
        model.config.check_data(str(train_obj), self.batches.image_size, self.batches.labels.unique())
        self.data_labels = sorted(set(self.batches.labels.tolist()))
        self.num_pairs = len(self.batches.labels)
        # zi2zi writes an empty val.obj at --split_ratio 0; the samples then come from train.obj
        self.sample_obj = val_obj if val_obj.exists() and val_obj.stat().st_size > 0 else train_obj
        # Rank 0 alone samples and validates, so only it decodes those pairs.
        self.sample = self.validator = None
        if self.dist.is_main:
            self.sample = sample_batch(self.sample_obj, self.run_config.sample_count)
            model.config.check_data(str(self.sample_obj), self.sample.source.shape[-1], self.sample.labels.unique())
            self.validator = self.open_validation(val_obj, self.sample_obj == val_obj)
        start = start or Start("new")
        self.checkpoints = Checkpoints(experiment.checkpoint)
        resumed, notes = apply_start(model, start, train_obj)
        # the loop's fields of the checkpoint (training.checkpoint.TrainingState), or a new run's
        loop = resumed or TrainingState(model.config, model.train_config)
        self.epoch = loop.epoch
        self.batches_done = loop.batches_done_in_epoch   # a resumed epoch skips the batches it trained
        self.seconds_before, self.run_start = loop.training_seconds, None
        if loop.training_seconds:
            notes.append(f"note: this run has trained for {loop.training_seconds / 60:.1f} min before this start")
        for note in notes:
            self.say(note)
        if self.dist.enabled:
            # Every rank starts from the same weights (the same seed, then DDP's broadcast);
            # from here each draws its own dropout and label flips, reproducibly per step.
            seed_everything(self.run_config.random_seed + 7919 * (self.dist.rank + 1) + model.step)
        # a run fine-tuned from weights alone trains its --epoch budget from the step it starts at
        self.first_step = model.step if start.kind == "weights" else 0
        self.stop_signal: int | None = None
        self.saved_step = self.sampled_step = None  # what this process last wrote, so nothing is written twice
        run = self.run_config
        self.watch = CollapseWatch(run.collapse_window, run.collapse_d_real, run.collapse_d_fake)
        self.guard = DivergenceGuard(run.divergence_factor)
        self.evaluated_step: int | None = None
        self.pending = PendingStats()   # steps' statistics still on the device
        resumed_step = model.step if start.kind in ("resume", "weights") else None
        self.best = BestCheckpoint(self.checkpoints, run.keep_best, resumed_step, METRICS.get(run.keep_best, True)) \
            if self.dist.is_main else None

    def open_validation(self, val_obj: Path, has_val: bool) -> Validator | None:
        """The held-out evaluation, or None when it is off; asking for it without val.obj is an error."""
        run = self.run_config
        if run.eval_interval == 0:
            return None
        labels = set(run.fine_tune) if run.fine_tune is not None else None
        if has_val and labels is not None:
            has_val = any(label in labels for label in scan_obj(val_obj).labels)
        if not has_val:
            asked = "--keep_best" if run.keep_best else ("--eval_steps" if run.eval_steps else None)
            what = f"{val_obj} is missing or empty" if labels is None else \
                f"{val_obj} is missing or holds no pair of the --fine_tune labels {sorted(labels)}"
            if asked:
                raise UserError(f"{asked} needs held-out pairs, and {what}: package with --split_ratio > 0 (or "
                                f"point --data_dir at a folder with a val.obj)")
            self.say(f"note: no held-out metrics during training: {what}")
            return None
        validator = Validator(val_obj, run.eval_count, run.random_seed, labels)
        self.model.config.check_data(str(val_obj), validator.sources.shape[-1], validator.labels.unique())
        return validator

    @property
    def total_steps(self) -> int:
        total = self.first_step + self.run_config.epoch * len(self.batches)
        return min(total, self.run_config.max_steps) if self.run_config.max_steps is not None else total

    # ------------------------------------------------------------------ outputs
    def say(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message)

    def write_config(self) -> None:
        record = {**self.settings.to_dict(),
                  "data": {"train_pairs": self.num_pairs, "labels": self.data_labels,
                           "sample_source": str(self.sample_obj)},
                  "device": str(self.model.device), "processes": self.dist.world_size,
                  "start_step": self.model.step, "torch": torch.__version__, "command": sys.argv}
        atomic_write_text(self.experiment.config_file, json.dumps(record, indent=1, ensure_ascii=False) + "\n")

    def save_samples(self) -> torch.Tensor:
        """Write the sample grid of this step (rank 0 only); returns the generated glyphs."""
        fake = self.model.generate(self.sample.source, self.sample.labels)
        save_sample_grid(self.sample.source, self.sample.target, fake, self.experiment.sample_file(self.model.step))
        self.sampled_step = self.model.step
        return fake

    def on_collapse(self, message: str | None, step: int | None = None) -> None:
        """Say once, in the bar and the log, that the run looks dead (at `step`, default the current one);
        end it with --stop_on_collapse."""
        if message is None:
            return
        step = self.model.step if step is None else step
        self.bar.set_description("COLLAPSED?")
        self.say(f"warning at step {step}: {message}")
        self.writers.write({"step": step, "event": "collapse", "message": message})
        if self.run_config.stop_on_collapse:
            before = [s for s in self.checkpoints.steps() if s <= step - self.run_config.collapse_window]
            kept = f"the last checkpoint before it is step {before[-1]}" if before else "no checkpoint predates it"
            raise RunCollapsed(f"stopped at step {step} (--stop_on_collapse): {message}; nothing was saved over "
                               f"the earlier checkpoints, and {kept} in {self.experiment.checkpoint}")

    def save(self) -> None:
        """Save a checkpoint (rank 0); a failed save (full disk, read-only folder) says what was lost and what is kept.

        The pending statistics are read first: weights after a non-finite loss are never saved.
        """
        self.read_stats(self.total_steps)
        self.saved_step = self.model.step
        if not self.dist.is_main:
            return
        state = TrainingState.capture(self.model, epoch=self.epoch, batches_done_in_epoch=self.batches_done,
                                      run_config=self.run_config, training_seconds=self.training_seconds())
        try:
            state.save(self.checkpoints, self.model)
        except OSError as err:
            raise WriteError(f"could not save checkpoint step {self.model.step} in {self.experiment.checkpoint} "
                             f"({describe_write_failure(err)}); {self.last_good()}. Then --resume latest") from None
        if self.run_config.keep_last > 0:
            self.checkpoints.prune(self.run_config.keep_last)

    def training_seconds(self) -> float:
        """Wall time spent training, over every start of this run (saved in each checkpoint)."""
        return self.seconds_before + (time.perf_counter() - self.run_start if self.run_start is not None else 0.0)

    def last_good(self) -> str:
        """Where the run can continue from: the newest complete checkpoint, and how many steps ago."""
        return self.checkpoints.last_good(self.model.step)

    def check_writable(self) -> None:
        """Fail before the first step, not after hours, if an output folder cannot be written."""
        for folder in self.experiment.output_folders():
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / ".write_test.tmp"
                probe.write_bytes(b"0")
                probe.unlink()
            except OSError as err:
                raise UserError(f"cannot write to {folder} ({err.strerror or err}); choose another "
                                f"--experiment_dir / --checkpoint_dir or fix its permissions") from None

    def log_record(self, window: StatsWindow, step: int) -> dict:
        model = self.model
        extra = {"epoch": self.epoch, **model.learning_rates, "train_seconds": round(self.training_seconds(), 2)}
        if model.config.sn_generator:
            extra["sigma_G"] = largest_singular_value(model.netG)
        if model.config.sn_discriminator:
            extra["sigma_D"] = largest_singular_value(model.netD)
        return window.record(step, self.run_config.batch_size, **extra)

    # ------------------------------------------------------------------ loop
    def request_stop(self, signum: int) -> None:
        self.stop_signal = signum

    def run(self) -> int | None:
        """Train to the end; returns the final step, or None if there was nothing to do."""
        total = self.total_steps
        if self.model.step >= total:
            print(f"nothing to do: step {self.model.step} already reaches {total} "
                  f"(raise --epoch or --max_steps to train further)")
            return None
        self.model.train()
        self.run_start = time.perf_counter()
        main = self.dist.is_main
        if main:
            self.check_writable()
            self.write_config()
        self.writers = LogWriters(self.experiment, self.model.step, enabled=main)
        self.bar = tqdm(total=total, initial=self.model.step, unit="step", dynamic_ncols=True, disable=not main)
        outcome = "failed"
        try:
            with stop_on_signals(self.request_stop):
                while self.model.step < total and self.epoch < self.run_config.epoch:
                    self.train_epoch(total)
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        except NonFiniteLossError as err:
            self.writers.write({"step": self.model.step, "event": "diverged", "message": str(err)})
            raise NonFiniteLossError(f"{err}; {self.last_good()}") from None
        except (OSError, RuntimeError) as err:
            self.raise_write_failure(err)
            raise
        finally:
            try:
                self.shutdown(outcome)
            except (OSError, RuntimeError) as err:
                if outcome != "failed":   # a failed run's own error says more than its curves' failure
                    self.raise_write_failure(err)
                    raise
        return self.model.step

    def raise_write_failure(self, err: BaseException) -> None:
        """A sample, log or plot the disk refused ends the run in one line saying what is kept."""
        cause = write_failure(err)
        if cause is not None:
            raise WriteError(f"could not write {cause.filename} at step {self.model.step} "
                             f"({describe_write_failure(cause)}); {self.last_good()}. Then --resume latest") from None

    def train_epoch(self, total: int) -> None:
        """The rest of the current epoch, or up to step `total`."""
        model = self.model
        self.window = StatsWindow(model.step)
        for batch in self.batches.epoch(self.epoch, self.batches_done):
            # the loader's labels were checked against --embedding_num when the data was opened
            values = model.step_on_device(*batch, stop_requested=self.stop_signal is not None, labels_checked=True)
            self.pending.add(model.step, values)
            self.batches_done += 1
            self.after_step(total)
            if model.step >= total:
                return
            # Every rank stops at the same step, whichever of them got the signal (agreed in the step).
            if model.stop_agreed:
                raise StopRequested(self.stop_signal or signal.SIGTERM)
        self.read_stats(total)   # the epoch's last steps belong to its window
        self.end_epoch()

    def must_read(self, step: int, total: int) -> bool:
        """Whether step `step` reads the pending statistics: at log steps, and before anything is written
        or decided from the weights (samples, checkpoints, validation, a stop, the last step)."""
        run = self.run_config
        return (step % run.log_steps == 0 or step % run.sample_steps == 0 or step % run.checkpoint_steps == 0
                or (self.validator is not None and step % run.eval_interval == 0)
                or step >= total or self.model.stop_agreed)

    def read_stats(self, total: int) -> None:
        """Read every pending step's statistics in one copy and act on them in step order: a non-finite or
        exploding loss ends the run (nothing after it is saved), the collapse watch, the log and the bar."""
        if not len(self.pending):   # e.g. a resumed run that starts at the end of an epoch
            return
        read = self.pending.read(self.model.stat_names)   # raises NonFiniteLossError at the first bad step
        run = self.run_config
        for step, stats in read:
            diverged = self.guard.check(stats)
            if diverged:
                self.writers.write({"step": step, "event": "diverged", "message": diverged})
                raise RunDiverged(f"step {step}: {diverged}; training stopped without saving these weights, and "
                                  f"{self.last_good()}. Try a lower --lr / --lr_D")
            self.window.add(stats)
            self.on_collapse(self.watch.update(stats), step)
            if (step % run.log_steps == 0 or step == total) and self.dist.is_main:
                self.writers.write(self.log_record(self.window, step))
        if read:
            self.bar.update(len(read))
            self.bar.set_postfix(progress_postfix(read[-1][1], self.epoch))

    def after_step(self, total: int) -> None:
        step, run = self.model.step, self.run_config
        if not self.must_read(step, total):
            return
        self.read_stats(total)
        if step % run.sample_steps == 0:
            blank = None
            if self.dist.is_main:
                fake = self.save_samples()
                blank = self.watch.blank_samples(ink_share(fake), ink_share(self.sample.target))
            self.on_collapse(self.dist.from_main(blank, self.model.device))
        if step % run.checkpoint_steps == 0:
            self.save()
        if self.validator is not None and step % run.eval_interval == 0:
            self.validate()

    def validate(self) -> None:
        """Held-out metrics of this step into the logs (rank 0); under --keep_best, a new best is
        checkpointed (if this step was not) and best.json points at it."""
        step = self.evaluated_step = self.model.step
        if not self.dist.is_main:
            return
        record = self.validator.evaluate(self.model)
        self.writers.write({"step": step, **record})
        self.say(f"step {step} held-out ({self.validator.description}): L1 {record['val_l1']:.4f}, "
                 f"SSIM {record['val_ssim']:.4f} (copying the source: {record['val_floor_ssim']:.4f}), "
                 f"ink IoU {record['val_ink_iou']:.4f}, "
                 f"diversity {record['val_diversity_ratio']:.2f}")
        value = record.get(f"val_{self.run_config.keep_best}", float("nan"))
        if self.best.improves(value):
            if self.saved_step != step:
                self.save()
            self.best.record(step, value)
            if self.run_config.keep_last > 0:   # the previous best is no longer protected
                self.checkpoints.prune(self.run_config.keep_last)

    def end_epoch(self) -> None:
        """The trainer owns the epoch and the schedule: every --schedule epochs both rates halve."""
        self.batches_done = 0
        self.epoch += 1
        if self.epoch % self.model.train_config.schedule == 0:
            rates = self.model.update_lr()
            self.say(f"epoch {self.epoch}: learning rates now G {rates['lr_G']:.6f}, D {rates['lr_D']:.6f}")

    def shutdown(self, outcome: str) -> None:
        """The one way out: close the bar, save unless the run failed, close the logs, draw the curves.

        A step the loop has just checkpointed (or sampled) is not written again. The logs
        are closed even when the last save fails, so what was logged is kept.
        """
        self.bar.close()
        try:
            if outcome != "failed" and self.saved_step != self.model.step:
                self.save()
            if outcome == "finished" and self.sampled_step != self.model.step and self.dist.is_main:
                self.save_samples()
            if outcome == "finished" and self.validator is not None and self.evaluated_step != self.model.step:
                self.validate()
        finally:
            self.writers.close()
        if outcome != "failed":
            self.dist.barrier()   # the checkpoint is on disk before any process exits
        if outcome == "finished":
            self.say(f"trained for {self.training_seconds() / 60:.1f} min over every start of this run")
        if outcome == "interrupted" and self.dist.is_main:
            signal_name = signal.Signals(self.stop_signal or signal.SIGINT).name
            print(f"stopped by {signal_name}: checkpoint saved at step {self.model.step} in "
                  f"{self.experiment.checkpoint}; continue with --resume latest")
