"""A training step's complete checkpoint: both networks' weights (zi2zi-pytorch's files) and the
training state beside them, saved all or nothing, and restored for `--resume`."""
from __future__ import annotations

from pathlib import Path

from model.checkpoint import CheckpointError, checkpoint_files, read_training_state, save_weights
from model.config import ModelConfig
from model.loading import load_weights
from utils.io import atomic_torch_save

from .step import TrainingStep


def save_checkpoint(model: TrainingStep, ckpt_dir: str | Path, **state_items) -> dict[str, Path]:
    """Save G, D and the training state (plus `state_items`) for `model.step`; returns the paths.

    The state file is written last, so a step with a state file is complete; when any
    of the three cannot be written (a full disk), none of the step's files is left.
    """
    files = checkpoint_files(ckpt_dir, model.step)
    try:
        save_weights(model.netG, model.netD, ckpt_dir, model.step)
        atomic_torch_save({**model.training_state(), **state_items}, files["state"])
    except BaseException:
        for path in files.values():
            path.unlink(missing_ok=True)
        raise
    return files


def load_checkpoint(model: TrainingStep, ckpt_dir: str | Path, step: int, restore_rng: bool = True,
                    state: dict | None = None) -> dict:
    """Restore weights, optimisers, step, epoch and RNG into `model`; returns the state.

    `state` is the step's training state when the caller has read it already.
    """
    files = checkpoint_files(ckpt_dir, step)
    state = state if state is not None else read_training_state(ckpt_dir, step)
    if state is None:
        raise CheckpointError(f"{files['state']} is missing: step {step} cannot be resumed "
                              f"(only its weights were saved)")
    saved = ModelConfig.from_dict(state["model_config"])
    if saved != model.config:
        diffs = [f"{f}: checkpoint {getattr(saved, f)!r}, this run {getattr(model.config, f)!r}"
                 for f in saved.to_dict() if getattr(saved, f) != getattr(model.config, f)]
        raise CheckpointError(f"checkpoint step {step} in {ckpt_dir} has a different architecture "
                              f"({'; '.join(diffs)})")
    load_weights(model.netG, files["G"], "G")
    load_weights(model.netD, files["D"], "D")
    model.load_training_state(state, restore_rng=restore_rng)
    return state
