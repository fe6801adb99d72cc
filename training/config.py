"""Run settings and the one place where flag > checkpoint > default is resolved.

    flags = given_flags(args)                       # once, right after parsing
    settings = resolve_settings(flags, start)       # start: training.start.Start (None: a new run)
    settings.model, settings.train, settings.run, settings.device

Four dataclasses hold every setting of a run, each with its own rule for a resumed run
(stated in its docstring): `ModelConfig` (architecture), `TrainConfig` (losses and
optimiser), `RunConfig` (data order, augmentation, intervals) and `DeviceConfig`
(this machine's device and speed options). The defaults live in the dataclasses only;
train.py's flags default to None, meaning "not given".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from evaluation.metrics import METRICS
from model.loading import model_config_of
from model.config import (ARCH_FLAGS, ModelConfig, add_architecture_flags, config_from_dict, decide_architecture,
                          flag_name, given_architecture)
from utils.cli import add_config_flag as flag
from utils.cli import add_device_flags, add_experiment_flags, parse_int_list
from utils.device import check_amp, speed_defaults
from utils.errors import UserError

LOADERS = ("fast", "pil")


@dataclass(frozen=True)
class TrainConfig:
    """Loss weights and optimiser settings of one training run.

    Resolution rule: a resumed run keeps the checkpoint's values; a flag given again
    overrides one, the change is printed, and it takes effect (a new learning rate is
    set in the optimiser).
    """
    lr: float = 0.001
    lr_D: float | None = None     # None: same as lr; set apart for two-time-scale updates
    beta1: float = 0.5            # Adam's betas for both networks
    beta2: float = 0.999
    L1_penalty: float = 100.0     # weight of L1(fake_B, real_B)
    Lconst_penalty: float = 15.0  # weight of the encoding-constancy MSE
    Lcategory_penalty: float = 1.0
    schedule: int = 20            # halve both rates every this many epochs ...
    min_lr: float = 0.0002        # ... but never below this
    g_steps: int = 2              # generator updates per iteration
    freeze_encoder: bool = False
    flip_labels: bool = False

    def __post_init__(self):
        for name in ("lr", "lr_D"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise UserError(f"--{name} must be a finite number > 0; got {value}")
        for name in ("L1_penalty", "Lconst_penalty", "Lcategory_penalty"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"--{name} must be a finite number >= 0; got {value}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value < 1):
                raise UserError(f"--{name} must be in [0, 1); got {value}")
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
        return config_from_dict(cls, values)


@dataclass(frozen=True)
class RunConfig:
    """How a run goes through its data and what it records when.

    Resolution rule: a resumed run keeps the checkpoint's values (same data order,
    augmentation and intervals, so the resumed run is the run it continues); a flag
    given again overrides one, and the change is printed.
    """
    data_dir: str | None = None        # None: experiment_dir/data
    epoch: int = 100
    max_steps: int | None = None
    batch_size: int = 16
    random_seed: int = 777
    fine_tune: tuple[int, ...] | None = None
    augment: bool = True
    bold: bool = False
    rotate: bool = False
    blur: bool = False
    sample_steps: int = 200
    checkpoint_steps: int = 1000
    log_steps: int = 10
    keep_last: int = 0
    sample_count: int = 16
    collapse_window: int = 50          # steps the collapse watch averages over
    collapse_d_real: float = 0.99      # D(real) above this ...
    collapse_d_fake: float = 0.01      # ... and D(fake) below this, with L1 flat: a dead run
    stop_on_collapse: bool = False
    divergence_factor: float = 1000.0  # stop when a loss exceeds this many times its running median; 0: off
    eval_steps: int | None = None      # held-out metrics every this many steps; None: with each checkpoint; 0: off
    eval_count: int = 64               # val.obj pairs (label-balanced, fixed) the metrics are computed on
    keep_best: str | None = None       # a held-out metric; checkpoint/best.json points at its best checkpoint

    def __post_init__(self):
        for name in ("epoch", "batch_size", "sample_steps", "checkpoint_steps", "log_steps", "sample_count"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be >= 1; got {getattr(self, name)}")
        if self.collapse_window < 2:
            raise UserError(f"--collapse_window must be >= 2 steps; got {self.collapse_window}")
        for name in ("collapse_d_real", "collapse_d_fake"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"--{name} is a probability in [0, 1]; got {getattr(self, name)}")
        if not (self.divergence_factor == 0 or self.divergence_factor > 1):
            raise UserError(f"--divergence_factor must be > 1, or 0 to turn the guard off; got {self.divergence_factor}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max_steps must be >= 1; got {self.max_steps}")
        if self.keep_last < 0:
            raise UserError(f"--keep_last must be >= 0 (0 keeps every checkpoint); got {self.keep_last}")
        if self.eval_steps is not None and self.eval_steps < 0:
            raise UserError(f"--eval_steps must be >= 1, or 0 to turn validation off; got {self.eval_steps}")
        if self.eval_count < 2:
            raise UserError(f"--eval_count must be >= 2 pairs; got {self.eval_count}")
        if self.keep_best is not None:
            if self.keep_best not in METRICS:
                raise UserError(f"--keep_best must be one of {', '.join(METRICS)}; got {self.keep_best!r}")
            if self.eval_steps == 0:
                raise UserError("--keep_best needs validation: drop --eval_steps 0")
        if self.fine_tune is not None:
            object.__setattr__(self, "fine_tune", tuple(sorted(set(self.fine_tune))))
            if not self.fine_tune:
                raise UserError("--fine_tune needs at least one label")

    @property
    def eval_interval(self) -> int:
        """Steps between held-out evaluations (0: none)."""
        return self.checkpoint_steps if self.eval_steps is None else self.eval_steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        return config_from_dict(cls, values)


@dataclass(frozen=True)
class DeviceConfig:
    """Where and how fast this process runs.

    Resolution rule: never taken from a checkpoint (a run may resume on another
    machine); flags or these defaults.
    """
    device: str | None = None          # None: CUDA when available, else CPU
    gpu_ids: tuple[str, ...] | None = None  # zi2zi's way to name the GPU
    loader: str = "fast"
    num_workers: int = 0
    cache_dir: str | None = None       # None: a cache/ folder beside the .obj
    amp: str | None = None             # None: speed_defaults(device), bf16 on GPUs with bf16 tensor cores
    channels_last: bool | None = None  # None: likewise, on where bf16 is
    fused_adam: bool | None = None     # None: on CUDA (no flag: it changes no result, only speed)
    compile: bool = False
    deterministic: bool = False        # bit-identical CUDA runs, at some speed
    sync_bn: bool = False              # BatchNorm statistics over all processes (torchrun)
    # seconds a collective waits for a process that stopped answering (torchrun); rank 0
    # validates, samples and saves while the others wait, so it must outlast those
    dist_timeout: float = 1800.0

    def __post_init__(self):
        if self.loader not in LOADERS:
            raise UserError(f"--loader must be one of {', '.join(LOADERS)}; got {self.loader!r}")
        if self.amp is not None:
            check_amp(self.amp)
        if self.num_workers < 0:
            raise UserError(f"--num_workers must be >= 0; got {self.num_workers}")
        if self.cache_dir is not None and self.loader != "fast":
            raise UserError(f"--cache_dir is where --loader fast keeps the decoded data; --loader {self.loader} "
                            f"decodes every item as it goes and keeps none: drop one of the two")
        if not self.dist_timeout > 0:
            raise UserError(f"--dist_timeout is in seconds and must be > 0; got {self.dist_timeout}")

    def on(self, device) -> "DeviceConfig":
        """These settings with what was not given chosen for `device` (utils.device.speed_defaults)."""
        chosen = {k: v for k, v in speed_defaults(device).items() if getattr(self, k) is None}
        return dataclasses.replace(self, **chosen)

    def check_sync_bn(self, device, model: ModelConfig, world_size: int) -> None:
        """--sync_bn takes effect or says why it cannot."""
        if not self.sync_bn:
            return
        if "batch" not in (model.norm_G, model.norm_D):
            raise UserError(f"--sync_bn: neither network has BatchNorm (--norm_G {model.norm_G} --norm_D "
                            f"{model.norm_D}), so there is nothing to synchronise; drop --sync_bn")
        if world_size == 1:
            raise UserError("--sync_bn synchronises BatchNorm across torchrun processes; this is one process "
                            "(start it with torchrun --nproc_per_node N) or drop --sync_bn")
        if device.type != "cuda":
            raise UserError("--sync_bn needs CUDA: torch has no SyncBatchNorm for the CPU. On CPU processes use "
                            "--norm_G instance --norm_D none, whose statistics are per sample and need no sync")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Settings:
    model: ModelConfig
    train: TrainConfig
    run: RunConfig
    device: DeviceConfig

    def to_dict(self) -> dict:
        return {"model_config": self.model.to_dict(), "train_config": self.train.to_dict(),
                "run_config": self.run.to_dict(), "device_config": self.device.to_dict()}

    def describe(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


def _given(cls, flags: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` that the user gave on the command line (None means not given)."""
    return {f.name: flags[f.name] for f in dataclasses.fields(cls) if flags.get(f.name) is not None}


def _override(saved, given: dict[str, Any], what: str):
    """Saved values with the given flags applied; a real change is printed."""
    changed = {k: v for k, v in given.items() if getattr(saved, k) != v}
    if changed:
        shown = ", ".join(f"{flag_name(k)} {getattr(saved, k)} -> {v}" for k, v in changed.items())
        print(f"note: resuming with changed {what}: {shown}")
    return dataclasses.replace(saved, **changed)


def check_trainable(model: ModelConfig) -> None:
    """Refuse a new run with an architecture measured not to train (rather than spend a GPU-day on it).

    The measurements (scripts/layer_scales.py, README "Normalisation and spectral norm"):
    zi2zi's U-Net without norm layers in G dies within ~100 steps on real fonts whatever
    D is: with zi2zi's N(0, 0.02) init the activations shrink ~40x by the bottleneck and
    the deep path gets no gradient; with a variance-preserving (He) init it learns for
    ~60 steps, then its activations blow up (G loss 5e4) and it never recovers; with SN
    on G every layer's gain is capped at 1 and the signal fades the same way.
    """
    if model.norm_G == "none":
        raise UserError(
            "--norm_G none (or --norm none) does not train: without norm layers zi2zi's U-Net generator loses its "
            "signal (or, with SN or a larger init, first fades then blows up) and within ~100 steps its output "
            "goes blank while D(real) -> 1 and D(fake) -> 0. Keep --norm_G batch (or instance); for a "
            "discriminator that spectral norm strictly bounds use --sn-discriminator --norm_D none")


def device_settings(flags: dict[str, Any], device=None) -> DeviceConfig:
    """The device settings: flags or defaults, never a checkpoint's, so they are known before any is read;
    with `device`, what was not given is chosen for it (bf16 and channels_last on a GPU with bf16)."""
    config = DeviceConfig(**_given(DeviceConfig, flags))
    return config.on(device) if device is not None else config


def given_flags(args) -> dict[str, Any]:
    """train.py's command line as the settings read it, once, right after parsing: the architecture flags
    as ModelConfig fields (--norm / --inst_norm folded into norm_G / norm_D), the others as parsed."""
    flags = {k: v for k, v in vars(args).items() if k not in ("norm", "inst_norm")}
    return {**flags, **given_architecture(args, ARCH_FLAGS)}


def decide_model(flags: dict[str, Any], start=None) -> ModelConfig:
    """The architecture of the run, decided once from the flags given and where the run starts
    (training.start.Start): a new run's flags, the resumed checkpoint's config, or the weights it starts
    from (their config, or what zi2zi-pytorch's weights show); `--init_from` may add labels."""
    given = _given(ModelConfig, flags)
    if start is None or start.kind == "new":
        return decide_architecture(given)
    if start.kind == "resume":
        return decide_architecture(given, start.state.model_config.to_dict(), "the checkpoint being resumed")
    step = start.source_step if start.kind == "init_from" else start.step
    return model_config_of(start.weights_dir, step, given, grow_labels=start.kind == "init_from")


def resolve_settings(flags: dict[str, Any], start=None, device=None) -> Settings:
    """Flag > checkpoint > default for every setting, with each class's rule (see their docstrings).

    `flags` maps field names to the values given on the command line (`given_flags`),
    None where a flag was not given; `start` (training.start.Start) says where the run
    starts: None or a new run, a resumed checkpoint (its TrainingState), or weights a new
    run starts from; `device` (a torch.device) chooses the speed settings not given for it.
    """
    device = device_settings(flags, device)
    model = decide_model(flags, start)
    if start is None or start.kind != "resume":
        check_trainable(model)
        return Settings(model, TrainConfig(**_given(TrainConfig, flags)), RunConfig(**_given(RunConfig, flags)),
                        device)
    saved = start.state
    train = _override(saved.train_config, _given(TrainConfig, flags), "loss/optimiser settings")
    run = _override(saved.run_config, _given(RunConfig, flags), "run settings")
    return Settings(model, train, run, device)


def _labels(text: str) -> tuple[int, ...]:
    try:
        return tuple(parse_int_list(text, "--fine_tune"))
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser(doc: str) -> argparse.ArgumentParser:
    """train.py's flags: every setting flag defaults to None ("not given"); help shows the field default."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = add_experiment_flags(p, "holds data/, checkpoint/, sample/, logs/", required=True)
    g.add_argument("--resume", help="step number or 'latest': continue that checkpoint's run (or fine-tune "
                                    "zi2zi-pytorch's weights-only checkpoint of that step)")
    g.add_argument("--init_from", metavar="DIR[:STEP]",
                   help="start a new experiment from another run's or a pre-trained model's weights; STEP is a "
                        "step number, latest (default) or best (that run's --keep_best choice)")
    g.add_argument("--new_label_init", choices=["nearest", "random"],
                   help="--init_from with more labels: a new label's style embedding starts as the base style whose "
                        "output is nearest its training glyphs (nearest, the default) or from the usual random "
                        "initialisation (random)")
    g.add_argument("--recipe", choices=["few_shot"],
                   help="few_shot: fine-tune --init_from's base on the new style(s) in train.obj with the measured "
                        "rate, steps for the number of glyphs, new labels only (docs/few_shot.md); flags given win")
    g.add_argument("--dry_run", action="store_true", help="print the resolved settings and exit")
    g = p.add_argument_group("architecture (saved in the checkpoint; contradicting it on resume is an error)")
    add_architecture_flags(g)
    g = p.add_argument_group("losses and optimiser (a flag given on resume overrides the checkpoint)")
    flag(g, TrainConfig, "lr", "generator (and default discriminator) learning rate")
    flag(g, TrainConfig, "lr_D", "discriminator learning rate (default: --lr)", type=float)
    flag(g, TrainConfig, "beta1", "Adam's beta1 for both networks (zi2zi's 0.5; 0.9 makes GANs less steady)")
    flag(g, TrainConfig, "beta2", "Adam's beta2 for both networks")
    flag(g, TrainConfig, "schedule", "halve learning rates every this many epochs")
    flag(g, TrainConfig, "L1_penalty", "weight of the L1 loss")
    flag(g, TrainConfig, "Lconst_penalty", "weight of the encoding-constancy loss")
    flag(g, TrainConfig, "Lcategory_penalty", "weight of the style-category loss")
    flag(g, TrainConfig, "g_steps", "generator updates per iteration")
    flag(g, TrainConfig, "freeze_encoder", "keep the generator's encoder (down path) fixed")
    flag(g, TrainConfig, "flip_labels", "also train on shuffled labels (adversarial, category, const losses; no L1)")
    g = p.add_argument_group("run (a flag given on resume overrides the checkpoint)")
    flag(g, RunConfig, "data_dir", "folder with train.obj/val.obj (default: experiment_dir/data)", type=str)
    flag(g, RunConfig, "epoch", "epochs to train")
    flag(g, RunConfig, "max_steps", "stop after this many steps in total", type=int)
    flag(g, RunConfig, "batch_size", "pairs per step")
    flag(g, RunConfig, "random_seed", "seed of weights, data order and augmentation")
    flag(g, RunConfig, "fine_tune", "train only on these labels, e.g. 1,3",
         type=_labels)
    flag(g, RunConfig, "augment", "turn off zi2zi's random enlarge-and-crop", "--no_augment", action="store_false")
    flag(g, RunConfig, "bold", "enlarge up to 20%% instead of 5%% when augmenting")
    flag(g, RunConfig, "rotate", "occasionally turn pairs 180 degrees")
    flag(g, RunConfig, "blur", "occasionally blur pairs")
    flag(g, RunConfig, "sample_steps", "write a sample grid every this many steps")
    flag(g, RunConfig, "checkpoint_steps", "checkpoint interval in steps")
    flag(g, RunConfig, "log_steps", "train.jsonl interval in steps")
    flag(g, RunConfig, "keep_last", "keep only the newest N checkpoints (0: all; the best one is kept too)")
    g = p.add_argument_group("validation (held-out metrics during training, from val.obj)")
    flag(g, RunConfig, "eval_steps", "held-out L1/RMSE/PSNR/SSIM/ink IoU/diversity every this many steps "
         "(default: with each checkpoint; 0: off)", type=int)
    flag(g, RunConfig, "eval_count", "val.obj pairs evaluated, label-balanced and the same every time")
    flag(g, RunConfig, "keep_best", "keep the checkpoint with the best value of this metric (checkpoint/best.json; "
         "--resume best)", type=str, choices=list(METRICS))
    g = p.add_argument_group("collapse watch (warns once when D saturates and G stops improving)")
    flag(g, RunConfig, "collapse_window", "steps averaged")
    flag(g, RunConfig, "collapse_d_real", "D(real) above this counts as saturated")
    flag(g, RunConfig, "collapse_d_fake", "D(fake) below this counts as saturated")
    flag(g, RunConfig, "stop_on_collapse", "end the run when it collapses, keeping the checkpoints saved before")
    flag(g, RunConfig, "divergence_factor", "stop, saving nothing, when d_loss or g_loss exceeds this many times "
         "its median over the last 100 steps (0: off)")
    g = p.add_argument_group("device and speed (this machine's; never taken from a checkpoint)")
    add_device_flags(g, gpu_ids_help="zi2zi's way to pick GPUs: cuda:0, 0; several (0,1) under torchrun, one per "
                     "process", amp_default=None, amp_default_help="bf16 on GPUs with bf16 tensor cores, compute "
                     "capability 8 or newer; off elsewhere")
    flag(g, DeviceConfig, "loader", "fast: decode once per machine into --cache_dir, augment batches on the "
         "device; pil: zi2zi's per-item path",
         choices=["fast", "pil"])
    flag(g, DeviceConfig, "num_workers", "processes decoding the .obj (fast) or DataLoader workers (pil)")
    flag(g, DeviceConfig, "cache_dir", "where the fast loader keeps each .obj decoded once, shared by every process "
         "of the machine (default: cache/ beside the .obj)", type=str)
    flag(g, DeviceConfig, "channels_last", "NHWC activations, faster on tensor cores (default: on where --amp "
         "defaults to bf16; --no-channels_last turns it off)", action=argparse.BooleanOptionalAction,
         show_default=False)
    flag(g, DeviceConfig, "compile", "torch.compile both networks")
    flag(g, DeviceConfig, "sync_bn", "under torchrun: BatchNorm statistics over the global batch (CUDA)")
    flag(g, DeviceConfig, "dist_timeout", "under torchrun: seconds a collective waits for a process that stopped "
         "answering before the job fails")
    flag(g, DeviceConfig, "deterministic", "no cuDNN autotuning, no TF32, deterministic algorithms: CUDA runs "
         "and resumes are bit-identical (CPU runs always are)")
    return p
