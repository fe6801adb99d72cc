"""Atomic, complete checkpoints that zi2zi-pytorch can still read.

Files in the checkpoint directory, per saved step:

    {step}_net_G.pth   plain generator state dict (zi2zi-pytorch's format)
    {step}_net_D.pth   plain discriminator state dict
    {step}_state.pth   ModelConfig, TrainConfig, optimisers, step, epoch, LRs, RNG states

Each file is written to a temporary name and `os.replace`d into place; the state file
is written last, so a step with a state file is complete. Loading checks the keys
and shapes against the model and says which flag disagrees instead of loading part.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from utils.errors import UserError
from utils.io import atomic_torch_save, atomic_write_text

from .config import ModelConfig, check_given_flags, expand_norm_flags
from .networks import build_generator
from .spectral import fold_spectral_norm, uses_spectral_norm

if TYPE_CHECKING:  # the training step is only a type here: loading weights must not import it
    from training.step import TrainingStep

_NET_FILE = re.compile(r"^(\d+)_net_G\.pth$")
_SN_FLAG = {"G": "--sn-generator", "D": "--sn-discriminator"}


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


def save_checkpoint(model: "TrainingStep", ckpt_dir: str | Path, **state_items) -> dict[str, Path]:
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
        _load(path)
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


def _load(path: Path):
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


def _shape_hint(net_name: str, key: str) -> str:
    if key.startswith("embedder"):
        return "--embedding_num / --embedding_dim"
    if key.startswith("catagory"):
        return "--embedding_num"
    if key.startswith("binary"):
        return "--image_size"
    if key in ("model.down.0.weight", "model.down.0.weight_orig", "model.up.1.weight",
               "model.up.1.weight_orig", "model.up.1.bias", "model.0.weight", "model.0.weight_orig"):
        return "--input_nc (or --ngf / --ndf)"
    return "--ngf" if net_name == "G" else "--ndf"


def check_state_dict(net: nn.Module, state_dict: dict, net_name: str, source: str | Path) -> None:
    """Raise CheckpointError naming the disagreeing flag if `state_dict` doesn't fit `net`."""
    expected = net.state_dict()
    net_label = "generator" if net_name == "G" else "discriminator"
    ckpt_sn, model_sn = uses_spectral_norm(state_dict), uses_spectral_norm(expected)
    if ckpt_sn != model_sn:
        flag = _SN_FLAG[net_name]
        if ckpt_sn:
            raise CheckpointError(f"checkpoint {source} was trained with {flag}; this run has it off "
                                  f"(add {flag})")
        raise CheckpointError(f"checkpoint {source} was trained without {flag}; this run has it on "
                              f"(drop {flag})")
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        def depth(keys):
            return max((k.count("submodule.") for k in keys), default=0)
        if depth(expected) != depth(state_dict):
            hint = (f"the checkpoint's U-Net is for {2 ** (depth(state_dict) + 1)}px images, "
                    f"this model for {2 ** (depth(expected) + 1)}px: check --image_size")
        elif any("running_mean" in k for k in unexpected):
            hint = "the checkpoint uses BatchNorm: use --norm batch"
        elif any("running_mean" in k for k in missing):
            hint = "the checkpoint has no BatchNorm statistics: use --norm instance or none"
        else:
            hint = "the architectures differ"
        raise CheckpointError(f"{net_label} checkpoint {source} does not match the model ({hint}); "
                              f"missing keys: {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                              f"unexpected keys: {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{net_label} checkpoint {source}: {key} has shape {list(state_dict[key].shape)}, "
                f"this model expects {list(tensor.shape)}; check {_shape_hint(net_name, key)}")


def read_state_dict(path: str | Path) -> dict:
    state_dict = _load(Path(path))
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"checkpoint {path} is not a state dict")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint {path}: key {key!r} holds a {type(value).__name__}, not a tensor; "
                                  f"the file is not a network's state dict")
    return state_dict


def load_weights(net: nn.Module, path: str | Path, net_name: str) -> None:
    state_dict = read_state_dict(path)
    check_state_dict(net, state_dict, net_name, path)
    net.load_state_dict(state_dict)  # strict: every key checked above


# Tensors whose first dimension is the number of style labels.
LABEL_ROWS = {"G": ("embedder.weight",), "D": ("catagory.weight", "catagory.bias", "catagory.weight_orig",
                                              "catagory.weight_u")}


@torch.no_grad()
def load_weights_growing_labels(net: nn.Module, path: str | Path, net_name: str) -> int:
    """Load weights into `net`, which may have more style labels than the checkpoint.

    The label rows the checkpoint has (G's embedding, D's category head) are copied;
    the rows of new labels keep `net`'s fresh initialisation. Returns how many labels
    the checkpoint had. Any other difference is an error naming the flag.
    """
    state_dict = dict(read_state_dict(path))
    own = net.state_dict()
    grown = {k: v for k, v in state_dict.items() if k in LABEL_ROWS[net_name] and k in own
             and v.shape[0] < own[k].shape[0] and v.shape[1:] == own[k].shape[1:]}
    for key, value in grown.items():
        padded = own[key].clone()
        padded[:value.shape[0]] = value
        state_dict[key] = padded
    check_state_dict(net, state_dict, net_name, path)
    net.load_state_dict(state_dict)
    key = LABEL_ROWS[net_name][0]
    return int(read_state_dict(path)[key].shape[0]) if key in state_dict else -1


def read_training_state(ckpt_dir: str | Path, step: int) -> dict | None:
    path = checkpoint_files(ckpt_dir, step)["state"]
    return _load(path) if path.exists() else None


def infer_model_config(g_state: dict, d_state: dict | None = None, **given) -> ModelConfig:
    """Rebuild the architecture of a config-less (zi2zi-pytorch) checkpoint from its keys.

    `given` holds values the user passed on the command line (None = not given); one
    that contradicts the keys is an error naming the flag.
    """
    def weight(sd, prefix):
        return sd.get(prefix + "weight", sd.get(prefix + "weight_orig"))

    first = weight(g_state, "model.down.0.")
    if first is None or "embedder.weight" not in g_state:
        raise CheckpointError("generator checkpoint has no model.down.0.weight / embedder.weight: "
                              "it is not a zi2zi UNetGenerator state dict")
    depth = max(k.count("submodule.") for k in g_state) + 1
    inferred = {
        "input_nc": first.shape[1], "ngf": first.shape[0],
        "embedding_num": g_state["embedder.weight"].shape[0],
        "embedding_dim": g_state["embedder.weight"].shape[1],
        "image_size": 2 ** depth, "sn_generator": uses_spectral_norm(g_state),
    }
    if any(k.endswith("running_mean") for k in g_state):
        inferred["norm_G"] = "batch"
    if d_state is not None:
        inferred["ndf"] = weight(d_state, "model.0.").shape[0]
        inferred["sn_discriminator"] = uses_spectral_norm(d_state)
        if any(k.endswith("running_mean") for k in d_state):
            inferred["norm_D"] = "batch"
    given = expand_norm_flags(given)
    check_given_flags(inferred, given, "the checkpoint's weights", CheckpointError)
    inferred = {**{k: v for k, v in given.items() if v is not None}, **inferred}
    if "norm_G" not in inferred:
        raise CheckpointError("the generator checkpoint has no BatchNorm statistics, so its norm is instance "
                              "or none (their weights look alike): pass --norm instance or --norm none")
    if "norm_D" not in inferred:
        if d_state is not None:
            raise CheckpointError("the discriminator checkpoint has no BatchNorm statistics, so its norm is "
                                  "instance or none: pass --norm_D instance or --norm_D none")
        inferred["norm_D"] = inferred["norm_G"]  # no D to build: inference uses G alone
    return ModelConfig(**inferred)


def model_config_of(ckpt_dir: str | Path, step: int, **given) -> ModelConfig:
    """The architecture of a checkpoint: from its state file, else inferred from its keys."""
    state = read_training_state(ckpt_dir, step)
    if state is not None:
        config = ModelConfig.from_dict(state["model_config"])
        config.check_flags(expand_norm_flags(given), f"the config of checkpoint step {step} in {ckpt_dir}", CheckpointError)
        return config
    files = checkpoint_files(ckpt_dir, step)
    d_state = read_state_dict(files["D"]) if files["D"].exists() else None
    return infer_model_config(read_state_dict(files["G"]), d_state, **given)


def load_generator(ckpt_dir: str | Path, step: str | int = "latest",
                   device: str | torch.device = "cpu", **given) -> tuple[nn.Module, ModelConfig, int]:
    """Generator in eval mode, its config and step, ready for inference."""
    step = resolve_step(ckpt_dir, step)
    config = model_config_of(ckpt_dir, step, **given)
    net = build_generator(config)
    load_weights(net, checkpoint_files(ckpt_dir, step)["G"], "G")
    return net.to(device).eval(), config, step


def load_checkpoint(model: "TrainingStep", ckpt_dir: str | Path, step: int, restore_rng: bool = True,
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


def prune_checkpoints(ckpt_dir: str | Path, keep_last: int) -> list[int]:
    """Delete all but the newest `keep_last` checkpoints, and the best one; returns the deleted steps."""
    steps = available_steps(ckpt_dir)
    best = read_best(ckpt_dir)
    doomed = [s for s in (steps[:-keep_last] if keep_last > 0 else []) if best is None or s != int(best["step"])]
    for step in doomed:
        for path in checkpoint_files(ckpt_dir, step).values():
            path.unlink(missing_ok=True)
    return doomed


def export_plain_generator(net: nn.Module, path: str | Path) -> dict:  # G or D
    """Save `net` with spectral norm folded into plain weights, for zi2zi-pytorch.

    The copy is put in eval mode first, so folding does no further power iteration
    and the exported network gives the same outputs as `net` in eval mode.
    """
    plain = fold_spectral_norm(copy.deepcopy(net).eval())
    state_dict = plain.state_dict()
    atomic_torch_save(state_dict, path)
    return state_dict


def export_plain(ckpt_dir: str | Path, step: int, netG: nn.Module, out_dir: str | Path) -> list[str]:
    """Write `{step}_net_G.pth` and `{step}_net_D.pth` with SN folded into plain weights to `out_dir`.

    zi2zi-pytorch's `load_networks(step)` with `save_dir=out_dir` reads both. Returns
    lines saying what was written (and what zi2zi-pytorch can build).
    """
    from .networks import build_discriminator
    out = checkpoint_files(out_dir, step)
    export_plain_generator(netG, out["G"])
    lines = [f"wrote {out['G']}: generator of step {step} as a plain zi2zi-pytorch state dict"]
    d_file = checkpoint_files(ckpt_dir, step)["D"]
    if d_file.exists():
        config = model_config_of(ckpt_dir, step)
        netD = build_discriminator(config)
        load_weights(netD, d_file, "D")
        export_plain_generator(netD, out["D"])
        lines.append(f"wrote {out['D']}: its discriminator, likewise")
        if config.image_size != 256:
            lines.append(f"note: zi2zi-pytorch builds only 256 px networks (--image_size is parsed but unused "
                         f"there); these {config.image_size} px weights load in a zi2zi-pytorch model only if "
                         f"its code is changed to build that size")
    else:
        lines.append(f"note: {d_file} does not exist, so only the generator was exported")
    return lines
