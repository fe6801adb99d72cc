"""The architecture, saved with every checkpoint, and its flags.

`ModelConfig` holds every architecture choice, so a checkpoint rebuilds the exact
network without the user repeating flags; the training state file keeps it beside
the training settings (`training.config`), so a resumed run continues as it was.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from utils.cli import add_config_flag
from utils.errors import UserError

NORMS = ("batch", "instance", "none")
STATE_KEY = "model_config"   # where a training state file keeps the architecture
ConfigT = TypeVar("ConfigT")


def flag_name(field: str) -> str:
    """The command-line flag of a config field (the SN switches are spelled with dashes)."""
    return "--" + field.replace("sn_", "sn-") if field.startswith("sn_") else "--" + field


def config_from_dict(cls: type[ConfigT], values: dict, source: str = "the checkpoint") -> ConfigT:
    """Rebuild a config dataclass from its saved dict; an unknown key is an error, not dropped."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{source} has {cls.__name__} settings {unknown} this version does not know; "
                        f"was it written by a newer version?")
    return cls(**values)


def decide_architecture(given: dict[str, Any], known: dict[str, Any] | None = None, source: str = "",
                        grow_labels: bool = False, error: type[UserError] = UserError) -> "ModelConfig":
    """The one decision of an architecture: the flags given against what a checkpoint says.

    `given`: architecture flags as `given_architecture` returns them (None = not given);
    `known`: what the checkpoint's config records or its weights show (None: a new run, so
    the flags and then ModelConfig's defaults decide). A given flag that contradicts
    `known` is an error naming the flag and `source`. With `grow_labels` (--init_from)
    --embedding_num may exceed the checkpoint's labels (new labels), never fall below.
    """
    given = {name: value for name, value in given.items() if value is not None}
    known = dict(known or {})
    wanted = given.get("embedding_num")
    if grow_labels and wanted is not None and "embedding_num" in known:
        if wanted < known["embedding_num"]:
            raise error(f"--embedding_num {wanted} is below the {known['embedding_num']} labels of {source}; it can "
                        f"only grow (new labels get new embedding and category rows)")
        known["embedding_num"] = wanted
    for name, value in given.items():
        if name in known and known[name] != value:
            raise error(f"{flag_name(name)} {value} contradicts {source} ({name}={known[name]}); "
                        f"the architecture comes from the checkpoint, so drop the flag"
                        f" (or start a new --experiment_dir to train another architecture)")
    return ModelConfig(**{**given, **known})


def _fold_norm_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Turn --norm (both networks) and zi2zi's --inst_norm into --norm_G / --norm_D.

    A network's own flag wins over --norm, so `--norm batch --norm_D none` means
    BatchNorm in G and none in D. None means "not given".
    """
    flags = dict(flags)
    norm = flags.pop("norm", None)
    if flags.pop("inst_norm", False):
        if norm not in (None, "instance"):
            raise UserError(f"--inst_norm contradicts --norm {norm} (--inst_norm is zi2zi's --norm instance)")
        norm = "instance"
    for name in ("norm_G", "norm_D"):
        if flags.get(name) is None:
            flags[name] = norm
    return flags


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
    """Architecture of the generator and discriminator (zi2zi defaults).

    Resolution rule: a resumed run takes the architecture from its checkpoint; a flag
    that contradicts it is an error (the weights could not load).
    """
    input_nc: int = 1             # image channels: 1 grayscale, 3 RGB
    embedding_num: int = 40       # style labels the embedding has rows for
    embedding_dim: int = 128
    ngf: int = 64                 # generator width
    ndf: int = 64                 # discriminator width
    image_size: int = 256         # a power of two >= 32
    norm_G: str = "batch"         # the generator's norm layers, one of NORMS
    norm_D: str = "batch"         # the discriminator's
    sn_generator: bool = False    # spectral norm on G's Conv/ConvTranspose/Linear layers
    sn_discriminator: bool = False
    use_dropout: bool = True      # dropout in G's inner decoder blocks, as zi2zi

    def __post_init__(self):
        for name in ("input_nc", "embedding_num", "embedding_dim", "ngf", "ndf"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be >= 1; got {getattr(self, name)}")
        if self.input_nc not in (1, 3):
            raise UserError(f"--input_nc must be 1 (grayscale) or 3 (RGB); got {self.input_nc}")
        for name in ("norm_G", "norm_D"):
            if getattr(self, name) not in NORMS:
                raise UserError(f"--{name} must be one of {', '.join(NORMS)}; got {getattr(self, name)!r}")
        num_downs_for(self.image_size)

    @property
    def num_downs(self) -> int:
        return num_downs_for(self.image_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        values = dict(values)
        if "norm" in values:  # saved before the norm was chosen per network: one norm for both
            norm = values.pop("norm")
            values.setdefault("norm_G", norm)
            values.setdefault("norm_D", norm)
        return config_from_dict(cls, values)

    @classmethod
    def from_state(cls, state: dict) -> "ModelConfig":
        """The architecture a training state file records (its one reader, for training and inference alike)."""
        return cls.from_dict(state[STATE_KEY])

    def check_labels(self, low: int, high: int, source: str = "the data") -> None:
        """Raise if a style label in [low, high] has no row in the embedding."""
        if low < 0 or high >= self.embedding_num:
            bad = low if low < 0 else high
            raise UserError(f"{source} has style label {bad}, outside 0..{self.embedding_num - 1}: the model has "
                            f"embedding_num={self.embedding_num}; raise --embedding_num above the largest "
                            f"label (new runs) or relabel the data")

    def check_chosen_labels(self, labels, what: str) -> None:
        """Raise if a style the user asked for (`what`: --label, --interpolate, ...) is not in this checkpoint."""
        bad = [label for label in labels if not 0 <= label < self.embedding_num]
        if bad:
            raise UserError(f"{what} {bad[0]} is outside the checkpoint's labels 0..{self.embedding_num - 1} "
                            f"(embedding_num={self.embedding_num})")

    def check_data(self, source: str, image_size: int, labels) -> None:
        """The one data-vs-model check: glyph size and label range of `source` fit this model."""
        if image_size != self.image_size:
            raise UserError(f"{source} holds {image_size}px glyphs but the model works on {self.image_size}px; "
                            f"pass --image_size {image_size} (new runs) or re-render the data with "
                            f"--canvas_size {self.image_size}")
        labels = [int(x) for x in labels]
        if labels:
            self.check_labels(min(labels), max(labels), source)


# The architecture flags, one per ModelConfig field a user chooses (use_dropout is zi2zi's fixed
# choice), plus --norm for both networks and zi2zi's --inst_norm, which given_architecture folds
# into norm_G / norm_D. train.py offers them all; infer.py those of the generator.
_ARCH_HELP = {
    "norm": "norm layers of both networks",
    "inst_norm": "zi2zi's name for --norm instance",
    "image_size": "glyph side in pixels, a power of two >= 32",
    "input_nc": "image channels: 1 grayscale, 3 RGB",
    "embedding_num": "number of style labels",
    "embedding_dim": "style embedding size",
    "ngf": "generator width",
    "ndf": "discriminator width",
    "norm_G": "the generator's norm layers (overrides --norm)",
    "norm_D": "the discriminator's norm layers (overrides --norm)",
    "sn_generator": "spectral norm on every Conv/ConvTranspose/Linear of G",
    "sn_discriminator": "spectral norm on every Conv/Linear of D",
}
_NOT_FLAGS = ("use_dropout",)
ARCH_FLAGS = ("norm", "inst_norm") + tuple(f.name for f in dataclasses.fields(ModelConfig)
                                           if f.name not in _NOT_FLAGS)
GENERATOR_FLAGS = ("norm", "inst_norm", "input_nc", "embedding_num", "embedding_dim", "ngf", "image_size", "norm_G",
                   "sn_generator")


def given_architecture(args, names: tuple[str, ...] = GENERATOR_FLAGS) -> dict[str, Any]:
    """The architecture flags `names` as ModelConfig fields (None = not given), --norm and --inst_norm folded
    into norm_G / norm_D: how every script reads them, once, right after parsing."""
    values = vars(args) if not isinstance(args, dict) else args
    folded = _fold_norm_flags({name: values.get(name) for name in names})
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    return {name: value for name, value in folded.items() if name in fields}


def add_architecture_flags(group: argparse._ActionsContainer, names: tuple[str, ...] = ARCH_FLAGS,
                           show_defaults: bool = True) -> None:
    """The architecture flags `names`, each defaulting to None ("not given": the checkpoint decides)."""
    for name in names:
        if name == "norm":   # not a field: it sets norm_G and norm_D, whose defaults are zi2zi's batch
            shown = " (default: batch, as zi2zi)" if show_defaults else ""
            group.add_argument("--norm", choices=NORMS, help=_ARCH_HELP[name] + shown)
        elif name == "inst_norm":
            group.add_argument("--inst_norm", action="store_true", help=_ARCH_HELP[name])
        else:
            extra = {"choices": NORMS} if name in ("norm_G", "norm_D") else \
                {"choices": [1, 3]} if name == "input_nc" else {}
            aliases = (flag_name(name), "--" + name) if name.startswith("sn_") else ()
            add_config_flag(group, ModelConfig, name, _ARCH_HELP[name], *aliases, show_default=show_defaults, **extra)
