"""The checkpoint folder: file names, which steps exist, best.json, damage, pruning.

Files in the checkpoint directory, per saved step:

    {step}_net_G.pth   plain generator state dict (zi2zi-pytorch's format)
    {step}_net_D.pth   plain discriminator state dict
    {step}_state.pth   ModelConfig, TrainConfig, optimisers, step, epoch, LRs, RNG states

Each file is written to a temporary name and `os.replace`d into place; the state file
is written last (training.checkpoint), so a step with a state file is complete. Loading
weights into networks, with key and shape checks, is model.loading's job.
"""
from __future__ import annotations

import json
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


def checkpoint_files(ckpt_dir: str | Path, step: int) -> dict[str, Path]:
    ckpt_dir = Path(ckpt_dir)
    return {"G": ckpt_dir / f"{step}_net_G.pth", "D": ckpt_dir / f"{step}_net_D.pth",
            "state": ckpt_dir / f"{step}_state.pth"}


def save_weights(netG: nn.Module, netD: nn.Module, ckpt_dir: str | Path, step: int) -> dict[str, Path]:
    """`{step}_net_G.pth` and `{step}_net_D.pth`: plain state dicts, zi2zi-pytorch's files, written atomically."""
    files = checkpoint_files(ckpt_dir, step)
    atomic_torch_save(netG.state_dict(), files["G"])
    atomic_torch_save(netD.state_dict(), files["D"])
    return files


def available_steps(ckpt_dir: str | Path, complete: bool = False) -> list[int]:
    """Steps that have a generator file (and, with complete=True, D and state too)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    steps = sorted(int(m.group(1)) for m in map(_NET_FILE.match, os.listdir(ckpt_dir)) if m)
    if complete:
        steps = [s for s in steps if all(p.exists() for p in checkpoint_files(ckpt_dir, s).values())]
    return steps


BEST_FILE = "best.json"   # in the checkpoint folder: {"step", "metric", "value", "higher_is_better"}


def read_best(ckpt_dir: str | Path) -> dict | None:
    """The best-checkpoint pointer written under --keep_best, or None."""
    path = Path(ckpt_dir) / BEST_FILE
    if not path.exists():
        return None
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        int(best["step"]), float(best["value"]), str(best["metric"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is damaged ({err}); delete it, and the next evaluation under --keep_best "
                              f"writes it again") from None
    return best


def write_best(ckpt_dir: str | Path, step: int, metric: str, value: float, higher_is_better: bool) -> None:
    record = {"step": step, "metric": metric, "value": value, "higher_is_better": higher_is_better}
    atomic_write_text(Path(ckpt_dir) / BEST_FILE, json.dumps(record) + "\n")


def forget_best(ckpt_dir: str | Path) -> None:
    (Path(ckpt_dir) / BEST_FILE).unlink(missing_ok=True)


def resolve_step(ckpt_dir: str | Path, step: str | int, complete: bool = False) -> int:
    """`latest`, `best` (under --keep_best) or a step number -> a step that exists in `ckpt_dir`."""
    steps = available_steps(ckpt_dir, complete)
    what = "complete checkpoint (G, D and state files)" if complete else "checkpoint"
    if not steps:
        raise CheckpointError(f"no {what} in {ckpt_dir}; check --experiment_dir / --checkpoint_dir")
    if str(step) == "latest":
        return newest_readable(ckpt_dir, steps)
    if str(step) == "best":
        best = read_best(ckpt_dir)
        if best is None:
            raise CheckpointError(f"no {BEST_FILE} in {ckpt_dir}: 'best' exists for runs trained with --keep_best "
                                  f"METRIC (and a val.obj); use 'latest' or a step number")
        if int(best["step"]) not in steps:
            raise CheckpointError(f"{Path(ckpt_dir) / BEST_FILE} points at step {best['step']}, which is not in "
                                  f"{ckpt_dir}; use 'latest' or a step number")
        return int(best["step"])
    try:
        step = int(step)
    except ValueError:
        raise CheckpointError(f"--resume expects a step number, 'latest' or 'best'; got {step!r}") from None
    if step not in steps:
        raise CheckpointError(f"no {what} for step {step} in {ckpt_dir}; available: "
                              f"{', '.join(map(str, steps[-10:]))}")
    return step


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


def newest_readable(ckpt_dir: str | Path, steps: list[int]) -> int:
    """The newest of `steps` whose files all read; a damaged newer one is named in a warning and skipped."""
    for step in reversed(steps):
        files = [p for p in checkpoint_files(ckpt_dir, step).values() if p.exists()]
        damage = next(((p, why) for p in files if (why := file_damage(p))), None)
        if damage is None:
            return step
        print(f"warning: skipping checkpoint step {step}: {damage[0]} cannot be read ({damage[1]}); "
              f"'latest' falls back to an older step", file=sys.stderr)
    raise CheckpointError(f"no checkpoint in {ckpt_dir} can be read (every one is damaged)")


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


def read_training_state(ckpt_dir: str | Path, step: int) -> dict | None:
    path = checkpoint_files(ckpt_dir, step)["state"]
    return read_checkpoint_file(path) if path.exists() else None


def prune_checkpoints(ckpt_dir: str | Path, keep_last: int) -> list[int]:
    """Delete all but the newest `keep_last` checkpoints, and the best one; returns the deleted steps."""
    steps = available_steps(ckpt_dir)
    best = read_best(ckpt_dir)
    doomed = [s for s in (steps[:-keep_last] if keep_last > 0 else []) if best is None or s != int(best["step"])]
    for step in doomed:
        for path in checkpoint_files(ckpt_dir, step).values():
            path.unlink(missing_ok=True)
    return doomed
