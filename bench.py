"""Measure training, inference and data-pipeline speed; print it and write JSON.

    python bench.py --out bench.json                 # everything, on CUDA when available
    python bench.py --device cpu --quick             # the small config only
    python bench.py --anchor ../zi2zi-pytorch        # also zi2zi-pytorch's own step, timed beside ours

Every speed-up is a ratio to a baseline measured in the same run: zi2zi-pytorch's own
training iteration where `--anchor` points at a checkout of it (its model.Zi2ZiModel,
fp32, as it runs; ours ÷ theirs is printed), and zi2zi's data path (PIL decode and
augment per item in the main process, fp32, no channels_last).
Numbers are medians over timed steps after warm-up steps. That the speed options keep the
losses is a test (tests/test_fast_path.py, on CUDA too in scripts/gpu_check.sh). Memory as
the data grows (the decoded cache, 1 and 2 processes) is measured by scripts/data_memory.py,
which needs fresh processes.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from benchmarks import sections
from benchmarks.anchor import load_anchor_class
from benchmarks.measure import machine, peak_memory_mb
from utils.cli import add_device_flags, run
from utils.device import choose_device
from utils.io import atomic_write_text, check_output_file

# In this order: the numbers wanted most first, the compiling (minutes) last. The JSON is written
# after each section, so a run cut short keeps what it measured.
SECTIONS = ("train", "anchor", "pipeline", "inference", "data", "export", "scaling", "compiled")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_flags(p, amp_help=None)   # each section chooses its precision and says which
    p.add_argument("--quick", action="store_true", help="small config only, fewer steps")
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    p.add_argument("--batch_size", type=int, help="training batch (default: 64 on CUDA, 4 on CPU)")
    p.add_argument("--steps", type=int, help="timed steps per measurement (default: 10 on CUDA, 3 on CPU)")
    p.add_argument("--anchor", metavar="DIR", help="a checkout of zi2zi-pytorch: time its training iteration "
                                                   "beside ours (its model.Zi2ZiModel; needs torchvision)")
    p.add_argument("--processes", type=int, default=2,
                   help="scaling section: DDP processes compared with one (default 2; several per GPU use gloo)")
    p.add_argument("--out", default="bench.json", help="JSON file for the results")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.out, "--out")
    if args.anchor is not None:
        load_anchor_class(args.anchor)   # a folder that is not zi2zi-pytorch fails now, in one line
    device = choose_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (64 if cuda else 4)
    steps = args.steps or (10 if cuda else 3)
    warmup = 3 if cuda else 1
    names = ["small"] if args.quick else ["small", "default"]
    skip = set(args.skip) | ({"anchor"} if args.anchor is None else set())
    results = {"machine": machine(device), "batch_size": batch, "steps": steps, "train": {}, "pipeline": {}}
    print(json.dumps(results["machine"]))
    measure = {
        "train": lambda tmp: sections.section_train(results, names, device, batch, steps, warmup),
        # zi2zi-pytorch's networks are built for 256 px only: the anchor runs the default config
        "anchor": lambda tmp: sections.section_anchor(results, args.anchor, "default", device, batch, steps, warmup,
                                                      compile="compiled" not in skip),
        "pipeline": lambda tmp: sections.section_pipeline(results, names, device, batch, steps, warmup, tmp),
        "inference": lambda tmp: sections.section_inference(results, names[-1], device),
        "data": lambda tmp: sections.section_data(results, device, steps, tmp),
        "export": lambda tmp: sections.section_export(results),
        "scaling": lambda tmp: sections.section_scaling(results, device, args.processes, batch, steps, warmup),
        "compiled": lambda tmp: sections.section_compiled(results, names, device, batch, steps, warmup),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in (s for s in SECTIONS if s not in skip):
            # each section's numbers are on disk the moment it ends; one that fails is recorded, the rest still run
            try:
                measure[name](Path(tmp))
            except Exception as err:   # noqa: BLE001 - a benchmark reports what broke and goes on
                results.setdefault("errors", {})[name] = f"{type(err).__name__}: {str(err).strip()[:300]}"
                print(f"section {name} failed: {results['errors'][name]}")
            atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    results["peak_memory_mb"] = peak_memory_mb(device)
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
