"""The checkpoint folder: file names, which steps exist, best.json, damage, pruning.

Files in the checkpoint directory, per saved step:

    {step}_net_G.pth   plain generator state dict (zi2zi-pytorch's format)
    {step}_net_D.pth   plain discriminator state dict
    {step}_state.pth   training.checkpoint.TrainingState: configs, optimisers, step, epoch, RNG states

Each file is written to a temporary name and `os.replace`d into place; the state file
is written last, so a step with a state file is complete.

`Checkpoints(folder)` owns the folder: which steps exist, `latest` / `best` / a step
number, damaged files, all-or-nothing saves, best.json and pruning. What the state file
holds is `training.checkpoint.TrainingState`'s; loading weights into networks, with key
and shape checks, is model.loading's.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from utils.errors import UserError
from utils.io import atomic_torch_save, atomic_write_text

_NET_FILE = re.compile(r"^(\d+)_net_G\.pth$")


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or does not match the model."""


class Checkpoints:
    """The checkpoint folder of one run: everything else asks it which steps exist and where they are."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Checkpoints({str(self.folder)!r})"

    # ------------------------------------------------------------ the files
    def files(self, step: int) -> dict[str, Path]:
        return {"G": self.folder / f"{step}_net_G.pth", "D": self.folder / f"{step}_net_D.pth",
                "state": self.folder / f"{step}_state.pth"}

    def steps(self, complete: bool = False) -> list[int]:
        """Steps that have a generator file (and, with complete=True, D and state too)."""
        if not self.folder.is_dir():
            return []
        steps = sorted(int(m.group(1)) for m in map(_NET_FILE.match, os.listdir(self.folder)) if m)
        if complete:
            steps = [s for s in steps if all(p.exists() for p in self.files(s).values())]
        return steps

    def resolve(self, step: str | int, complete: bool = False) -> int:
        """`latest`, `best` (under --keep_best) or a step number -> a step that exists here."""
        steps = self.steps(complete)
        what = "complete checkpoint (G, D and state files)" if complete else "checkpoint"
        if not steps:
            raise CheckpointError(f"no {what} in {self.folder}; check --experiment_dir / --checkpoint_dir")
        if str(step) == "latest":
            return self.newest_readable(steps)
        if str(step) == "best":
            best = self.best()
            if best is None:
                raise CheckpointError(f"no {BEST_FILE} in {self.folder}: 'best' exists for runs trained with "
                                      f"--keep_best METRIC (and a val.obj); use 'latest' or a step number")
            if int(best["step"]) not in steps:
                raise CheckpointError(f"{self.folder / BEST_FILE} points at step {best['step']}, which is not in "
                                      f"{self.folder}; use 'latest' or a step number")
            return int(best["step"])
        try:
            step = int(step)
        except ValueError:
            raise CheckpointError(f"--resume expects a step number, 'latest' or 'best'; got {step!r}") from None
        if step not in steps:
            raise CheckpointError(f"no {what} for step {step} in {self.folder}; available: "
                                  f"{', '.join(map(str, steps[-10:]))}")
        return step

    def newest_readable(self, steps: list[int]) -> int:
        """The newest of `steps` whose files all read; a damaged newer one is named in a warning and skipped."""
        for step in reversed(steps):
            files = [p for p in self.files(step).values() if p.exists()]
            damage = next(((p, why) for p in files if (why := file_damage(p))), None)
            if damage is None:
                return step
            print(f"warning: skipping checkpoint step {step}: {damage[0]} cannot be read ({damage[1]}); "
                  f"'latest' falls back to an older step", file=sys.stderr)
        raise CheckpointError(f"no checkpoint in {self.folder} can be read (every one is damaged)")

    def last_good(self, before: int) -> str:
        """Where a run at step `before` can continue from: the newest complete checkpoint, and how many steps ago."""
        steps = [s for s in self.steps(complete=True) if s <= before]
        if not steps:
            return "no checkpoint of this run was saved yet"
        return (f"the last good checkpoint is step {steps[-1]} ({before - steps[-1]} steps ago), "
                f"earlier checkpoints are intact")

    # ------------------------------------------------------- read and write
    def read_state(self, step: int) -> dict | None:
        """The training state file of `step` as saved (TrainingState reads it), or None when only weights exist."""
        path = self.files(step)["state"]
        return read_checkpoint_file(path) if path.exists() else None

    def save_weights(self, step: int, netG: nn.Module, netD: nn.Module) -> dict[str, Path]:
        """`{step}_net_G.pth` and `{step}_net_D.pth`: plain state dicts, zi2zi-pytorch's files, written atomically."""
        files = self.files(step)
        atomic_torch_save(netG.state_dict(), files["G"])
        atomic_torch_save(netD.state_dict(), files["D"])
        return files

    def save(self, step: int, netG: nn.Module, netD: nn.Module, state: dict) -> dict[str, Path]:
        """G, D and the training state `state` of `step`, all or nothing; returns the paths.

        The state file is written last, so a step with a state file is complete; when any
        of the three cannot be written (a full disk), none of the step's files is left.
        """
        files = self.files(step)
        try:
            self.save_weights(step, netG, netD)
            atomic_torch_save(state, files["state"])
        except BaseException:
            for path in files.values():
                path.unlink(missing_ok=True)
            raise
        return files

    # ----------------------------------------------------- best and pruning
    def best(self) -> dict | None:
        """The best-checkpoint pointer written under --keep_best, or None."""
        path = self.folder / BEST_FILE
        if not path.exists():
            return None
        try:
            best = json.loads(path.read_text(encoding="utf-8"))
            int(best["step"]), float(best["value"]), str(best["metric"])
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{path} is damaged ({err}); delete it, and the next evaluation under --keep_best "
                                  f"writes it again") from None
        return best

    def write_best(self, step: int, metric: str, value: float, higher_is_better: bool) -> None:
        record = {"step": step, "metric": metric, "value": value, "higher_is_better": higher_is_better}
        atomic_write_text(self.folder / BEST_FILE, json.dumps(record) + "\n")

    def forget_best(self) -> None:
        (self.folder / BEST_FILE).unlink(missing_ok=True)

    def prune(self, keep_last: int) -> list[int]:
        """Delete all but the newest `keep_last` checkpoints, and the best one; returns the deleted steps."""
        steps = self.steps()
        best = self.best()
        doomed = [s for s in (steps[:-keep_last] if keep_last > 0 else []) if best is None or s != int(best["step"])]
        for step in doomed:
            for path in self.files(step).values():
                path.unlink(missing_ok=True)
        return doomed


class BestCheckpoint:
    """checkpoint/best.json: the step with the best held-out `metric`, kept across resumes.

    Created on every start (rank 0): a pointer past the resumed step names a checkpoint
    this run is about to overwrite, and one for another metric holds a value that cannot
    be compared, so both are dropped. `metric` None: only that clean-up. `higher_is_better`
    is the metric's direction (evaluation.metrics.METRICS; model/ does not import it).
    """

    def __init__(self, checkpoints: Checkpoints, metric: str | None, resumed_step: int | None,
                 higher_is_better: bool = True):
        self.checkpoints, self.metric, self.higher_is_better = checkpoints, metric, higher_is_better
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


BEST_FILE = "best.json"   # in the checkpoint folder: {"step", "metric", "value", "higher_is_better"}


def available_steps(ckpt_dir: str | Path, complete: bool = False) -> list[int]:
    """`Checkpoints(ckpt_dir).steps(complete)`, kept as `model.available_steps`."""
    return Checkpoints(ckpt_dir).steps(complete)


def resolve_step(ckpt_dir: str | Path, step: str | int, complete: bool = False) -> int:
    """`Checkpoints(ckpt_dir).resolve(step, complete)`, kept as `model.resolve_step`."""
    return Checkpoints(ckpt_dir).resolve(step, complete)


def file_damage(path: Path) -> str | None:
    """Why a checkpoint file cannot be read (a cut-short or corrupt archive), or None if it reads."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()  # reads every member and checks its CRC
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f"damaged archive ({err})"
        return f"damaged member {bad}" if bad else None
    try:
        read_checkpoint_file(path)
    except CheckpointError as err:
        return str(err)
    return None


def read_checkpoint_file(path: Path):
    """torch.load of one checkpoint file, weights only; any failure is a CheckpointError naming the file."""
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise CheckpointError(f"cannot read checkpoint {path}: it holds objects other than tensors and "
                                  f"plain data, which are refused because loading them could run code") from None
        raise CheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0][:200]}") from None
    except Exception as err:  # a cut-short file, a foreign format: many error types; name the file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]}") from None
