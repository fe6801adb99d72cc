"""Typed configuration saved with every checkpoint.

`ModelConfig` holds every architecture choice, so a checkpoint rebuilds the exact
network without the user repeating flags. `TrainConfig` holds the loss weights and
optimiser settings of a run; it is saved with the training state so a resumed run
continues with the same settings.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from utils.errors import UserError

NORMS = ("batch", "instance", "none")


def num_downs_for(image_size: int) -> int:
    """Number of U-Net down-samplings that take `image_size` to a 1x1 bottleneck.

    The style embedding is concatenated as a (B, embedding_dim, 1, 1) tensor at the
    bottleneck, so the image must halve exactly down to one pixel, and the U-Net has
    five fixed levels, hence a power of two of at least 32.
    """
    if image_size < 32 or image_size & (image_size - 1):
        raise UserError(
            f"--image_size must be a power of two >= 32 (the U-Net halves it down to a "
            f"1x1 bottleneck where the style vector is joined); got {image_size}")
    return int(math.log2(image_size))


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the generator and discriminator (zi2zi defaults)."""
    input_nc: int = 1
    embedding_num: int = 40
    embedding_dim: int = 128
    ngf: int = 64
    ndf: int = 64
    image_size: int = 256
    norm: str = "batch"
    sn_generator: bool = False
    sn_discriminator: bool = False
    use_dropout: bool = True

    def __post_init__(self):
        for name in ("input_nc", "embedding_num", "embedding_dim", "ngf", "ndf"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be >= 1; got {getattr(self, name)}")
        if self.input_nc not in (1, 3):
            raise UserError(f"--input_nc must be 1 (grayscale) or 3 (RGB); got {self.input_nc}")
        if self.norm not in NORMS:
            raise UserError(f"--norm must be one of {', '.join(NORMS)}; got {self.norm!r}")
        num_downs_for(self.image_size)

    @property
    def num_downs(self) -> int:
        return num_downs_for(self.image_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"unknown model config keys {sorted(unknown)}; "
                             f"was this checkpoint written by a newer version?")
        return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Loss weights and optimiser settings of one training run."""
    lr: float = 0.001
    lr_D: float | None = None  # None: same as lr
    beta1: float = 0.5
    beta2: float = 0.999
    L1_penalty: float = 100.0
    Lconst_penalty: float = 15.0
    Lcategory_penalty: float = 1.0
    schedule: int = 20
    min_lr: float = 0.0002
    g_steps: int = 2
    freeze_encoder: bool = False
    flip_labels: bool = False

    def __post_init__(self):
        if self.lr <= 0 or (self.lr_D is not None and self.lr_D <= 0):
            raise UserError(f"--lr and --lr_D must be > 0; got {self.lr} and {self.lr_D}")
        if self.g_steps < 1:
            raise UserError(f"--g_steps must be >= 1; got {self.g_steps}")
        if self.schedule < 1:
            raise UserError(f"--schedule must be >= 1 epoch; got {self.schedule}")

    @property
    def discriminator_lr(self) -> float:
        return self.lr if self.lr_D is None else self.lr_D

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
