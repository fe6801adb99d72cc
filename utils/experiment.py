"""The experiment folder's layout, written down once; every script finds its files through it.

    experiment/
      data/          train.obj, val.obj, split.json (package.py)           moved by --data_dir
      checkpoint/    {step}_net_G.pth, {step}_net_D.pth, {step}_state.pth,  moved by --checkpoint_dir
                     best.json, train.lock
      sample/        step_0000100.png (train.py's sample grids)
      logs/          train.jsonl, losses.png, tensorboard/
      config.json    the run's resolved settings
      infer/{step}/  infer.py's glyphs and grids (infer/ with --layout zi2zi)
      font/          export_font.py's font when --out is not given

With only --checkpoint_dir (zi2zi-pytorch's way to name a checkpoint folder), the experiment
is the folder around it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class Experiment:
    root: Path
    data: Path
    checkpoint: Path

    @classmethod
    def at(cls, experiment_dir: str | Path | None = None, data_dir: str | Path | None = None,
           checkpoint_dir: str | Path | None = None) -> "Experiment":
        """The layout under --experiment_dir, with the --data_dir / --checkpoint_dir overrides."""
        if experiment_dir is None and checkpoint_dir is None:
            raise UserError("give --experiment_dir (or --checkpoint_dir) to find the checkpoint")
        root = Path(experiment_dir) if experiment_dir is not None else Path(checkpoint_dir).parent
        return cls(root, Path(data_dir) if data_dir else root / "data",
                   Path(checkpoint_dir) if checkpoint_dir else root / "checkpoint")

    @classmethod
    def from_args(cls, args) -> "Experiment":
        """From parsed flags made by `utils.cli.add_experiment_flags` (an absent flag counts as not given)."""
        return cls.at(getattr(args, "experiment_dir", None), getattr(args, "data_dir", None),
                      getattr(args, "checkpoint_dir", None))

    @classmethod
    def holds_run(cls, folder: Path) -> bool:
        """Whether `folder` is an experiment of a training run (as opposed to a folder of experiments)."""
        layout = cls.at(folder)
        return layout.checkpoint.is_dir() or layout.logs.is_dir()

    # what train.py writes
    @property
    def sample(self) -> Path:
        return self.root / "sample"

    def sample_file(self, step: int) -> Path:
        return self.sample / f"step_{step:07d}.png"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def train_log(self) -> Path:
        return self.logs / "train.jsonl"

    @property
    def loss_plot(self) -> Path:
        return self.logs / "losses.png"

    @property
    def tensorboard(self) -> Path:
        return self.logs / "tensorboard"

    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def lock_file(self) -> Path:
        return self.checkpoint / "train.lock"

    # what package.py writes
    @property
    def train_obj(self) -> Path:
        return self.data / "train.obj"

    @property
    def val_obj(self) -> Path:
        return self.data / "val.obj"

    @property
    def split_file(self) -> Path:
        return self.data / "split.json"

    # what infer.py and export_font.py write
    @property
    def infer(self) -> Path:
        return self.root / "infer"

    def infer_step(self, step: int) -> Path:
        return self.infer / str(step)

    @property
    def font(self) -> Path:
        return self.root / "font"

    def output_folders(self) -> list[Path]:
        """The folders a training run writes into."""
        return [self.checkpoint, self.sample, self.logs]
