"""Weights into networks: strict key and shape checks that name the flag which disagrees,
the architecture of a checkpoint (its config, or inferred from zi2zi-pytorch's weights),
and the generator ready for inference."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, Checkpoints, read_checkpoint_file
from .config import ModelConfig, decide_architecture
from .networks import build_generator
from .spectral import uses_spectral_norm

_SN_FLAG = {"G": "--sn-generator", "D": "--sn-discriminator"}


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
    state_dict = read_checkpoint_file(Path(path))
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
    key = LABEL_ROWS[net_name][0]
    labels_before = int(state_dict[key].shape[0]) if key in state_dict else -1
    own = net.state_dict()
    grown = {k: v for k, v in state_dict.items() if k in LABEL_ROWS[net_name] and k in own
             and v.shape[0] < own[k].shape[0] and v.shape[1:] == own[k].shape[1:]}
    for key, value in grown.items():
        padded = own[key].clone()
        padded[:value.shape[0]] = value
        state_dict[key] = padded
    check_state_dict(net, state_dict, net_name, path)
    net.load_state_dict(state_dict)
    return labels_before


def infer_model_config(g_state: dict, d_state: dict | None = None, given: dict | None = None,
                       grow_labels: bool = False) -> ModelConfig:
    """Rebuild the architecture of a config-less (zi2zi-pytorch) checkpoint from its keys.

    `given` holds the architecture flags (model.config.given_architecture; None = not
    given); one that contradicts the keys is an error naming the flag.
    """
    def weight(sd, prefix):
        return sd.get(prefix + "weight", sd.get(prefix + "weight_orig"))

    given = given or {}
    first = weight(g_state, "model.down.0.")
    if first is None or "embedder.weight" not in g_state:
        raise CheckpointError("generator checkpoint has no model.down.0.weight / embedder.weight: "
                              "it is not a zi2zi UNetGenerator state dict")
    depth = max(k.count("submodule.") for k in g_state) + 1
    known = {
        "input_nc": first.shape[1], "ngf": first.shape[0],
        "embedding_num": g_state["embedder.weight"].shape[0],
        "embedding_dim": g_state["embedder.weight"].shape[1],
        "image_size": 2 ** depth, "sn_generator": uses_spectral_norm(g_state),
    }
    if any(k.endswith("running_mean") for k in g_state):
        known["norm_G"] = "batch"
    if d_state is not None:
        known["ndf"] = weight(d_state, "model.0.").shape[0]
        known["sn_discriminator"] = uses_spectral_norm(d_state)
        if any(k.endswith("running_mean") for k in d_state):
            known["norm_D"] = "batch"
    source = "the checkpoint's weights"
    decide_architecture(given, known, source, grow_labels, CheckpointError)   # a contradiction first
    if "norm_G" not in known and given.get("norm_G") is None:
        raise CheckpointError("the generator checkpoint has no BatchNorm statistics, so its norm is instance "
                              "or none (their weights look alike): pass --norm instance or --norm none")
    if "norm_D" not in known and given.get("norm_D") is None:
        if d_state is not None:
            raise CheckpointError("the discriminator checkpoint has no BatchNorm statistics, so its norm is "
                                  "instance or none: pass --norm_D instance or --norm_D none")
        known["norm_D"] = known.get("norm_G", given.get("norm_G"))  # no D to build: inference uses G alone
    return decide_architecture(given, known, source, grow_labels, CheckpointError)


def model_config_of(ckpt_dir: str | Path, step: int, given: dict | None = None,
                    grow_labels: bool = False) -> ModelConfig:
    """The architecture of a checkpoint, from its state file or else inferred from its keys, with the
    architecture flags `given` checked against it (model.config.decide_architecture)."""
    checkpoints = Checkpoints(ckpt_dir)
    state = checkpoints.read_state(step)
    if state is not None:
        return decide_architecture(given or {}, ModelConfig.from_state(state).to_dict(),
                                   f"the config of checkpoint step {step} in {ckpt_dir}", grow_labels,
                                   CheckpointError)
    files = checkpoints.files(step)
    d_state = read_state_dict(files["D"]) if files["D"].exists() else None
    return infer_model_config(read_state_dict(files["G"]), d_state, given, grow_labels)


def load_generator(ckpt_dir: str | Path, step: str | int = "latest",
                   device: str | torch.device = "cpu", given: dict | None = None) -> tuple[nn.Module, ModelConfig, int]:
    """Generator in eval mode, its config and step, ready for inference (`given`: the architecture flags)."""
    checkpoints = Checkpoints(ckpt_dir)
    step = checkpoints.resolve(step)
    config = model_config_of(ckpt_dir, step, given)
    net = build_generator(config)
    load_weights(net, checkpoints.files(step)["G"], "G")
    return net.to(device).eval(), config, step
