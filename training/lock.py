"""One training run per experiment: an exclusive lock in its checkpoint folder.

Two runs on one experiment (a requeued job starting before the old one has exited, a
second `--resume latest` by mistake) would write the same checkpoint names, samples and
logs over each other. The run's first process takes `checkpoint/train.lock` before it
writes anything and holds it to the end; a second run exits at once naming the holder.
Readers (infer.py, compare.py, export_font.py) take no lock and read a running
experiment's checkpoints as before.
"""
from __future__ import annotations

import argparse
import os
import sys

from utils.errors import UserError
from utils.experiment import Experiment
from utils.io import check_output_dir
from utils.locking import FileLock


def lock_experiment(experiment: Experiment) -> FileLock:
    """The experiment's lock, held until the returned lock is released (or this process ends)."""
    checkpoint_dir = experiment.checkpoint
    lock = FileLock(experiment.lock_file)
    try:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        taken = lock.acquire()
    except OSError as err:
        raise UserError(f"cannot write to {checkpoint_dir} ({err.strerror or err}); choose another "
                        f"--experiment_dir / --checkpoint_dir or fix its permissions") from None
    if not taken:
        raise UserError(f"{checkpoint_dir} is in use by another training run ({lock.holder}): wait for it to end "
                        f"or stop it, or train into another --experiment_dir / --checkpoint_dir")
    return lock


def lock_before_imports(argv: list[str]) -> FileLock | None:
    """train.py run as one process: the lock taken from the raw flags before torch is imported.

    Importing torch and the training code takes seconds; a second run on a busy
    experiment should say so at once. Under torchrun (RANK set) this returns None: rank 0
    locks after the processes have joined, so its refusal reaches every rank. Flags it
    cannot read here are left to train.py's full parser.
    """
    if "RANK" in os.environ or {"-h", "--help", "--dry_run"} & set(argv):
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--experiment_dir")
    parser.add_argument("--checkpoint_dir")
    try:
        known, _ = parser.parse_known_args(argv)
    except SystemExit:
        return None
    if not known.experiment_dir:
        return None
    try:
        check_output_dir(known.experiment_dir, "--experiment_dir")
        if known.checkpoint_dir:
            check_output_dir(known.checkpoint_dir, "--checkpoint_dir")
        return lock_experiment(Experiment.from_args(known))
    except UserError as err:
        if os.environ.get("ZI2ZI_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
