"""The measurements behind bench.py: timing, FLOPs and MFU, memory, and each path's speed."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from data.augment import augment_float, augment_params, augment_uint8
from data.dataset import DatasetFromObj
from data.loader import BatchIterator, PairBank, to_model_input
from model import ModelConfig, build_generator
from training.config import TrainConfig
from model.inference import generate
from training.step import TrainingStep

FONTS = Path(__file__).resolve().parents[1] / "fonts"

CONFIGS = {"default": dict(image_size=256, ngf=64, ndf=64), "small": dict(image_size=64, ngf=32, ndf=32)}


SN_VARIANTS = {"off": (False, False), "D": (False, True), "G+D": (True, True)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def in_turns(runs: dict, device, steps: int) -> dict[str, float]:
    """Median seconds per call of each of `runs` (name -> function), called in turns (A, B, C, A, B,
    C, ...) so that a drifting machine speed affects them alike."""
    times = {name: [] for name in runs}
    for _ in range(steps):
        for name, fn in runs.items():
            times[name] += timed(fn, device, 1, 0)
    return {name: statistics.median(measured) for name, measured in times.items()}


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for model FLOPs
# utilisation; the first name fragment found in torch.cuda.get_device_name() wins.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
                    "A6000": 155.0, "A10G": 70.0, "A10": 125.0, "L4": 121.0, "4090": 165.0, "3090": 71.0}


def peak_bf16_tflops(gpu_name: str) -> float | None:
    return next((peak for part, peak in PEAK_BF16_TFLOPS.items() if part in gpu_name), None)


def flops_per_step(model: TrainingStep) -> int:
    """Model FLOPs of one training iteration (forward and backward of G and D, SN included)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model.step_on_device()
    return counter.get_total_flops()


def count_syncs(fn, device: torch.device, calls: int) -> float | None:
    """Host-device synchronisations per call of `fn`, from CUDA's sync debug mode (None off CUDA)."""
    if device.type != "cuda":
        return None
    import warnings
    fn()
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(calls):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / calls


def fits_in_memory(config: ModelConfig, device: torch.device, batch: int, gib: float, amp: str) -> dict:
    """Do a few training steps run with the process capped at `gib` GiB of GPU memory?

    max_memory_allocated alone misses the CUDA context, cuDNN workspaces and allocator
    slack; capping the allocator and running the steps does not.
    """
    device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2 ** 30 / total), device)
    try:
        bench_train({"capped": config}, device, batch, 2, 1, amp=amp, channels_last=True)
        return {"cap_gib": gib, "batch": batch, "fits": True}
    except torch.cuda.OutOfMemoryError as err:
        return {"cap_gib": gib, "batch": batch, "fits": False, "error": str(err).splitlines()[0][:160]}
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()


def rate(fn, items_per_call: int, seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += items_per_call
    return n / (time.perf_counter() - start)


def bench_data(obj: Path, batch: int = 64, seconds: float = 3.0) -> dict:
    """Augmented 256 px pairs per second on the CPU: zi2zi's per-item PIL path vs ours."""
    ds = DatasetFromObj(obj, 1, augment=True)
    counter = iter(range(10 ** 9))
    baseline = rate(lambda: ds[next(counter) % len(ds)], 1, seconds)
    start = time.perf_counter()
    bank = PairBank.from_obj(obj)
    decode_s = time.perf_counter() - start
    g = torch.Generator().manual_seed(0)
    h = bank.image_size

    def draw_and_gather():
        index = torch.randint(0, len(bank), (batch,), generator=g)
        return bank.pairs[index], augment_params(batch, h, h, generator=g)
    gather_only = rate(draw_and_gather, batch, seconds)   # host work per batch when a GPU augments
    uint8_aug = rate(lambda: augment_uint8(*draw_and_gather()), batch, seconds)
    batches = BatchIterator(bank, batch, "cpu", augment=True, seed=0)
    epochs = iter(range(10 ** 9))
    model_ready = rate(lambda: sum(1 for _ in batches.epoch(next(epochs))), len(batches) * batch, seconds)
    return {"baseline_pil_pairs_per_s": baseline, "uint8_augmented_pairs_per_s": uint8_aug,
            "float_model_ready_pairs_per_s": model_ready, "gpu_path_host_pairs_per_s": gather_only,
            "decode_once_s": decode_s, "pairs": len(bank), "image_size": h}


def bench_device_augment(device: torch.device, size: int, batch: int, steps: int) -> float:
    """Pairs per second through the batched grid_sample augmentation on `device`."""
    x = torch.randint(0, 256, (batch, 2, size, size), dtype=torch.uint8, device=device)
    g = torch.Generator(device=device).manual_seed(0)

    def once():
        augment_float(to_model_input(x, device), augment_params(batch, size, size, blur=True, rotate=True,
                                                                generator=g, device=device))
    return batch / statistics.median(timed(once, device, steps, 2))


def bench_train(configs: dict[str, ModelConfig], device, batch: int, steps: int, warmup: int, amp="off",
                channels_last=False, fused_adam=False, compiled: tuple[str, ...] = ()) -> dict:
    """Training step time of several configs, measured in turns (`in_turns`). The configs named in
    `compiled` run through torch.compile; their warm-up time (the compiling) is reported as compile_s."""
    models, flops, compile_s = {}, {}, {}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = TrainingStep(config, TrainConfig(), device, amp=amp, channels_last=channels_last,
                             fused_adam=fused_adam, compile=name in compiled)
        labels = torch.randint(0, config.embedding_num, (batch,))
        x = torch.rand(batch, config.input_nc, config.image_size, config.image_size) * 2 - 1
        model.set_input(labels, x, torch.rand_like(x) * 2 - 1)
        start = time.perf_counter()
        timed(model.step_on_device, device, 0, max(warmup, 1) if name in compiled else warmup)
        if name in compiled:
            compile_s[name] = time.perf_counter() - start
        models[name] = model
        # the FLOP counter does not see inside compiled graphs: a compiled config takes its eager twin's count
        twin = next((flops[n] for n, c in configs.items() if c == config and n in flops), None)
        flops[name] = twin if name in compiled else flops_per_step(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s = in_turns({name: model.step_on_device for name, model in models.items()}, device, steps)
    out = {}
    peak = peak_bf16_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    for name, step in step_s.items():
        out[name] = {"step_s": step, "it_per_s": 1 / step, "img_per_s": batch / step}
        if flops[name]:
            out[name].update(tflop_per_step=flops[name] / 1e12, tflop_per_s=flops[name] / step / 1e12)
        if peak and flops[name]:
            out[name]["mfu_vs_bf16_peak"] = out[name]["tflop_per_s"] / peak
        if name in compile_s:
            out[name]["compile_s"] = compile_s[name]
    out["peak_mem_mb"] = peak_memory_mb(device)
    return out


def endless(epoch_batches):
    """Batches of epoch 0, 1, 2, ... one after another: warm-up and timed steps may outrun one epoch."""
    epoch = 0
    while True:
        empty = True
        for batch in epoch_batches(epoch):
            empty = False
            yield batch
        if empty:
            raise ValueError("the benchmark data has fewer pairs than one batch")
        epoch += 1


def bench_pipeline(config: ModelConfig, obj: Path, device, batch: int, steps: int, warmup: int, fast: bool,
                   amp: str, channels_last: bool, fused_adam: bool = False) -> dict:
    """Whole training steps fed from an .obj: the baseline (zi2zi) path or the fast one (train.py's loader
    and step: statistics stay on the device)."""
    torch.manual_seed(0)
    model = TrainingStep(config, TrainConfig(), device, amp=amp, channels_last=channels_last, fused_adam=fused_adam)
    if fast:
        batches = BatchIterator(PairBank.from_obj(obj), batch, device, config.input_nc, augment=True, seed=0)
        source = endless(batches.epoch)
    else:
        ds = DatasetFromObj(obj, config.input_nc, augment=True)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
        source = endless(lambda epoch: ((l, s, t) for l, t, s in loader))

    def step():
        labels, real_A, real_B = next(source)
        if fast:
            model.step_on_device(labels, real_A, real_B, labels_checked=True)
        else:
            model.train_step(labels, real_A, real_B)
    times = timed(step, device, steps, warmup)
    return {"img_per_s": batch / statistics.median(times), "syncs_per_step": count_syncs(step, device, 3)}


def bench_infer(config: ModelConfig, device, batch: int, count: int, amp: str = "off",
                channels_last: bool = True) -> float:
    """Characters per second through infer.py's generate()."""
    torch.manual_seed(0)
    netG = build_generator(config).to(device).eval()
    if not channels_last:  # the baseline: zi2zi-pytorch's plain NCHW forward
        def forward(x, y):
            return netG(x.contiguous(), y)
    sources = torch.rand(count, config.input_nc, config.image_size, config.image_size) * 2 - 1
    labels = torch.zeros(count, dtype=torch.long)

    @torch.no_grad()
    def once():
        if channels_last:
            generate(netG, sources, labels, batch, device, progress=False, amp=amp)
        else:
            for start in range(0, count, batch):
                forward(sources[start:start + batch].to(device), labels[start:start + batch].to(device))
    once()  # warm-up
    times = timed(once, device, 3, 0)
    return count / statistics.median(times)


def bench_trace(count: int = 24) -> dict:
    """export_font.py's tracing, one process: bundled-font glyphs at 256 px -> font outlines."""
    from data.render import Font, RenderSettings, render_char
    from export.trace import GlyphBox, trace_raster
    font = Font(FONTS / "WenKai-Subset.ttf", 256)
    chars = [c for c in (FONTS / "charset_demo.txt").read_text(encoding="utf-8") if font.has_char(c)][:count]
    rasters = [np.asarray(render_char(font, c, RenderSettings(256, 256))) for c in chars]
    box = GlyphBox(500, 380, 1000)
    start = time.perf_counter()
    for raster in rasters:
        trace_raster(raster, box, clockwise=True)
    return {"glyphs": len(rasters), "trace_glyphs_per_s_per_process": len(rasters) / (time.perf_counter() - start)}
