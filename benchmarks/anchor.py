"""zi2zi-pytorch's own training iteration timed beside ours (bench.py --anchor DIR).

The user points at their own checkout of zi2zi-pytorch; nothing of it is shipped here. Its
`model.Zi2ZiModel` is imported from that folder beside this project's packages of the same
names (`model`, `utils`, `data`), then the two iterations run in turns at the same sizes on
the same device: theirs as it runs (fp32, `set_input` + `optimize_parameters`), ours plain
(fp32, the same work), ours as `train.py` runs it on that device by default, and ours compiled.
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import torch

from model import ModelConfig
from training.config import TrainConfig
from training.step import TrainingStep
from utils.errors import UserError

from .measure import in_turns, timed


def _top_level_names(folder: Path) -> set[str]:
    """The importable top-level modules and packages of `folder`."""
    return {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir()
            if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file()}


def load_anchor_class(checkout: str | Path):
    """zi2zi-pytorch's `model.Zi2ZiModel` from `checkout`, with this project's modules of the same names
    put back in place afterwards (the class keeps its own modules through its globals)."""
    folder = Path(checkout).resolve()
    if not (folder / "model" / "__init__.py").is_file():
        raise UserError(f"--anchor {checkout}: no model/__init__.py there; point --anchor at a checkout of "
                        f"zi2zi-pytorch (the folder holding its model/ and train.py)")
    names = _top_level_names(folder)
    ours = {n: m for n, m in sys.modules.items() if n.split(".")[0] in names}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        anchor = importlib.import_module("model").Zi2ZiModel
    except Exception as err:   # noqa: BLE001 - whatever their import needs and lacks, said in one line
        raise UserError(f"--anchor {checkout}: importing its model.Zi2ZiModel failed ({type(err).__name__}: "
                        f"{err}); it needs what zi2zi-pytorch needs (torchvision among them)") from None
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n.split(".")[0] in names]:
            del sys.modules[name]
        sys.modules.update(ours)
    return anchor


def anchor_model(anchor_class, config: ModelConfig, device: torch.device):
    """zi2zi-pytorch's model at `config`'s sizes on `device`, as its train.py builds it."""
    gpu_ids = [str(device)] if device.type == "cuda" else None
    theirs = anchor_class(input_nc=config.input_nc, embedding_num=config.embedding_num,
                          embedding_dim=config.embedding_dim, ngf=config.ngf, ndf=config.ndf,
                          gpu_ids=gpu_ids, image_size=config.image_size)
    theirs.setup()
    return theirs


def bench_anchor(checkout: str | Path, config: ModelConfig, device: torch.device, batch: int, steps: int,
                 warmup: int, default_speed: dict, compile: bool = True) -> dict:
    """Median seconds per training iteration of zi2zi-pytorch's model and of ours, measured in turns.

    `default_speed` is what train.py runs on `device` by default (amp, channels_last);
    `compile` adds ours under torch.compile, its compile time (the first steps) reported apart.
    """
    anchor_class = load_anchor_class(checkout)
    torch.manual_seed(0)
    labels = torch.randint(0, config.embedding_num, (batch,))
    source = torch.rand(batch, config.input_nc, config.image_size, config.image_size) * 2 - 1
    target = torch.rand_like(source) * 2 - 1
    theirs = anchor_model(anchor_class, config, device)

    def their_step():
        # their set_input moves nothing when gpu_ids is empty; the batch must be on the device first
        theirs.set_input(labels.to(device), source.to(device), target.to(device))
        theirs.optimize_parameters()

    runs = {"zi2zi-pytorch (fp32)": their_step}
    variants = {"ours fp32": {}}
    if default_speed:
        variants[f"ours default ({describe_speed(default_speed)})"] = default_speed
    if compile:
        variants["ours compiled" + (f" ({describe_speed(default_speed)})" if default_speed else " (fp32)")] = \
            {**default_speed, "compile": True}
    compile_s = {}
    for name, options in variants.items():
        torch.manual_seed(0)
        ours = TrainingStep(config, TrainConfig(), device, **options)
        ours.set_input(labels, source, target)
        runs[name] = ours.step_on_device
        if options.get("compile"):
            start = time.perf_counter()
            timed(ours.step_on_device, device, 1, 0)
            compile_s[name] = time.perf_counter() - start
    for fn in runs.values():
        timed(fn, device, 0, warmup)
    step_s = in_turns(runs, device, steps)
    theirs_s = step_s["zi2zi-pytorch (fp32)"]
    out = {}
    for name, step in step_s.items():
        out[name] = {"step_s": step, "img_per_s": batch / step, "speed_vs_zi2zi_pytorch": theirs_s / step}
        if name in compile_s:
            out[name]["compile_s"] = compile_s[name]
    return out


def describe_speed(options: dict) -> str:
    parts = [options["amp"]] if options.get("amp", "off") != "off" else ["fp32"]
    if options.get("channels_last"):
        parts.append("channels_last")
    return " + ".join(parts)
