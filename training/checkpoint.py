"""What a checkpoint holds besides the weights, described once: `TrainingState`.

    state = TrainingState.capture(model, epoch=3, batches_done_in_epoch=10, run_config=run)  # the loop's fields
    state.save(Checkpoints(folder), model)          # G, D and the state file, all or nothing
    state = TrainingState.load(Checkpoints(folder), step)
    state.restore(model)                             # weights, optimisers, step, RNG

The state file `{step}_state.pth` is `TrainingState.to_dict()`: plain types only, so it
loads with `weights_only=True`, and the keys the release before this class wrote, so
either reads the other's files. Older layouts are brought up to date in one place,
`upgrade`. Adding a field to the checkpoint means declaring it here (with the default a
file without it gets) and using it where it is made and read; nothing else changes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from model.checkpoint import CheckpointError, Checkpoints
from model.config import ModelConfig
from model.loading import load_weights
from utils.rng import capture_rng_state, restore_rng_state

from .config import RunConfig, TrainConfig

_CONFIGS = {"model_config": ModelConfig, "train_config": TrainConfig, "run_config": RunConfig}


@dataclass
class TrainingState:
    """Everything besides the weights that a resumed run needs, as one record."""
    model_config: ModelConfig
    train_config: TrainConfig
    optimizer_G: dict = field(default_factory=dict)   # empty before the first step
    optimizer_D: dict = field(default_factory=dict)
    scaler_G: dict = field(default_factory=dict)   # fp16's gradient scalers; empty without fp16
    scaler_D: dict = field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    rng: dict | None = None                  # utils.rng.capture_rng_state()
    run_config: RunConfig = field(default_factory=RunConfig)
    batches_done_in_epoch: int = 0           # a resumed epoch skips the batches it trained
    training_seconds: float = 0.0            # wall time spent training, summed over every start of the run

    @classmethod
    def capture(cls, model, **loop) -> "TrainingState":
        """The state of `model` (a TrainingStep) now and the RNGs', with the training loop's own fields
        given by name (`epoch`, `batches_done_in_epoch`, `run_config`, ...; the defaults otherwise)."""
        return cls(model.config, model.train_config, **model.optimizer_state(), step=model.step,
                   rng=capture_rng_state(), **loop)

    # ------------------------------------------------------------ the file
    def to_dict(self) -> dict:
        return {f.name: (value.to_dict() if f.name in _CONFIGS else value)
                for f in dataclasses.fields(self) for value in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, saved: dict) -> "TrainingState":
        saved = cls.upgrade(saved)
        values = {f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved}
        values["model_config"] = ModelConfig.from_state(saved)
        values["train_config"] = TrainConfig.from_dict(saved["train_config"])
        values["run_config"] = RunConfig.from_dict(saved["run_config"])
        values["step"], values["epoch"] = int(saved["step"]), int(saved["epoch"])
        values["batches_done_in_epoch"] = int(saved["batches_done_in_epoch"])
        return cls(**values)

    @staticmethod
    def upgrade(saved: dict) -> dict:
        """A state file of any earlier layout in today's: the one place that knows the old ones."""
        saved = dict(saved)
        extra = saved.pop("extra", {}) or {}   # the earliest files kept the loop's values here
        if "run_config" not in saved:
            old = dict(extra.get("resumed_settings", {}))
            old["augment"] = not old.pop("no_augment", False)
            known = {f.name for f in dataclasses.fields(RunConfig)}
            saved["run_config"] = {k: v for k, v in old.items() if k in known and v is not None}
        saved.setdefault("batches_done_in_epoch", extra.get("batches_done_in_epoch", 0))
        for name in ("scaler_G", "scaler_D"):   # files from before fp16 had no scalers
            saved[name] = saved.get(name) or {}
        return saved

    def save(self, checkpoints: Checkpoints, model) -> dict[str, Path]:
        """G, D and this state as step `self.step` in `checkpoints`, all or nothing; returns the paths."""
        return checkpoints.save(self.step, model.netG, model.netD, self.to_dict())

    @classmethod
    def load(cls, checkpoints: Checkpoints, step: int) -> "TrainingState | None":
        """The state of `step`, or None when the step has weights only (zi2zi-pytorch's files)."""
        saved = checkpoints.read_state(step)
        return None if saved is None else cls.from_dict(saved)

    # ------------------------------------------------------- into a model
    def restore(self, model, checkpoints: Checkpoints, restore_rng: bool = True) -> None:
        """Weights, optimisers and step into `model`, whose architecture must be this state's; then the RNGs."""
        if self.model_config != model.config:
            diffs = [f"{f}: checkpoint {getattr(self.model_config, f)!r}, this run {getattr(model.config, f)!r}"
                     for f in self.model_config.to_dict()
                     if getattr(self.model_config, f) != getattr(model.config, f)]
            raise CheckpointError(f"checkpoint step {self.step} in {checkpoints.folder} has a different "
                                  f"architecture ({'; '.join(diffs)})")
        files = checkpoints.files(self.step)
        load_weights(model.netG, files["G"], "G")
        load_weights(model.netD, files["D"], "D")
        model.restore_optimizers(self)
        if restore_rng and self.rng is not None:
            restore_rng_state(self.rng)


def save_checkpoint(model, ckpt_dir: str | Path, **loop) -> dict[str, Path]:
    """Save G, D and the training state of `model` at `model.step` (`loop`: the loop's fields, as
    TrainingState.capture takes them); returns the paths."""
    return TrainingState.capture(model, **loop).save(Checkpoints(ckpt_dir), model)


def load_checkpoint(model, ckpt_dir: str | Path, step: int, restore_rng: bool = True,
                    state: TrainingState | None = None) -> TrainingState:
    """Restore step `step` of `ckpt_dir` into `model`; returns its state (`state`: read already by the caller)."""
    checkpoints = Checkpoints(ckpt_dir)
    state = state if state is not None else TrainingState.load(checkpoints, step)
    if state is None:
        raise CheckpointError(f"{checkpoints.files(step)['state']} is missing: step {step} cannot be resumed "
                              f"(only its weights were saved)")
    state.restore(model, checkpoints, restore_rng)
    return state
