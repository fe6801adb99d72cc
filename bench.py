"""Measure training, inference and data-pipeline speed; print it and write JSON.

    python bench.py --out bench.json                 # everything, on CUDA when available
    python bench.py --device cpu --quick             # the small config only
    python bench.py --check                          # also: AMP / channels_last / compile vs plain losses

Every speed-up is a ratio to a baseline path measured in the same run: zi2zi-pytorch's
way (PIL decode and augment per item in the main process, fp32, no channels_last).
Numbers are medians over timed steps after warm-up steps. Memory as the data grows (the
decoded cache, 1 and 2 processes) is measured by scripts/data_memory.py, which needs
fresh processes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from data.augment import augment_float, augment_params, augment_uint8
from data.dataset import DatasetFromObj
from data.loader import BatchIterator, PairBank, to_model_input
from data.synthetic import synthetic_obj
from model import ModelConfig, TrainConfig, build_generator
from model.inference import generate
from training.step import TrainingStep, replica_buffers
from utils.cli import run
from utils.device import resolve_device
from utils.io import atomic_write_text, check_output_file

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for model FLOPs
# utilisation; the first name fragment found in torch.cuda.get_device_name() wins.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
                    "A6000": 155.0, "A10G": 70.0, "A10": 125.0, "L4": 121.0, "4090": 165.0, "3090": 71.0}
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


def peak_bf16_tflops(gpu_name: str) -> float | None:
    return next((peak for part, peak in PEAK_BF16_TFLOPS.items() if part in gpu_name), None)


def flops_per_step(model: TrainingStep) -> int:
    """Model FLOPs of one training iteration (forward and backward of G and D, SN included)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model.train_step()
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


def _rate(fn, items_per_call: int, seconds: float) -> float:
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
    baseline = _rate(lambda: ds[next(counter) % len(ds)], 1, seconds)
    start = time.perf_counter()
    bank = PairBank.from_obj(obj)
    decode_s = time.perf_counter() - start
    g = torch.Generator().manual_seed(0)
    h = bank.image_size

    def draw_and_gather():
        index = torch.randint(0, len(bank), (batch,), generator=g)
        return bank.pairs[index], augment_params(batch, h, h, generator=g)
    gather_only = _rate(draw_and_gather, batch, seconds)   # host work per batch when a GPU augments
    uint8_aug = _rate(lambda: augment_uint8(*draw_and_gather()), batch, seconds)
    batches = BatchIterator(bank, batch, "cpu", augment=True, seed=0)
    epochs = iter(range(10 ** 9))
    model_ready = _rate(lambda: sum(1 for _ in batches.epoch(next(epochs))), len(batches) * batch, seconds)
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
                channels_last=False, compile=False) -> dict:
    """Training step time of several configs, measured in turns (A, B, C, A, B, C, ...)
    so that drifting machine speed affects them alike."""
    models, times, flops = {}, {}, {}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = TrainingStep(config, TrainConfig(), device, amp=amp, channels_last=channels_last, compile=compile)
        labels = torch.randint(0, config.embedding_num, (batch,))
        x = torch.rand(batch, config.input_nc, config.image_size, config.image_size) * 2 - 1
        model.set_input(labels, x, torch.rand_like(x) * 2 - 1)
        for _ in range(warmup):
            model.train_step()
        models[name], times[name] = model, []
        flops[name] = flops_per_step(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        for name, model in models.items():
            times[name] += timed(model.train_step, device, 1, 0)
    out = {}
    for name in models:
        step = statistics.median(times[name])
        out[name] = {"step_s": step, "it_per_s": 1 / step, "img_per_s": batch / step,
                     "tflop_per_step": flops[name] / 1e12, "tflop_per_s": flops[name] / step / 1e12}
        peak = peak_bf16_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
        if peak:
            out[name]["mfu_vs_bf16_peak"] = out[name]["tflop_per_s"] / peak
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
                   amp: str, channels_last: bool) -> dict:
    """Whole training steps fed from an .obj: the baseline (zi2zi) path or the fast one."""
    torch.manual_seed(0)
    model = TrainingStep(config, TrainConfig(), device, amp=amp, channels_last=channels_last)
    if fast:
        batches = BatchIterator(PairBank.from_obj(obj), batch, device, config.input_nc, augment=True, seed=0)
        source = endless(batches.epoch)
    else:
        ds = DatasetFromObj(obj, config.input_nc, augment=True)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
        source = endless(lambda epoch: ((l, s, t) for l, t, s in loader))

    def step():
        labels, real_A, real_B = next(source)
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


def check_equivalence(device, steps: int = 3) -> list[dict]:
    """Losses of a few steps with each speed option vs the plain fp32 path, same seed and data.

    fp16's GradScaler may skip an update while its scale settles (normal at the start);
    the losses after a skipped update come from other weights, so they are compared up
    to the first skip only and the skips are reported.
    """
    config = ModelConfig(image_size=64, ngf=16, ndf=16, embedding_num=4, use_dropout=False,
                         sn_generator=True, sn_discriminator=True)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 4, (8,), generator=g), torch.rand(8, 1, 64, 64, generator=g) * 2 - 1,
                torch.rand(8, 1, 64, 64, generator=g) * 2 - 1) for _ in range(steps)]

    def losses(config=config, **options):
        torch.manual_seed(0)
        model = TrainingStep(config, TrainConfig(), device, **options)
        out, skipped = [], []
        for i, b in enumerate(batches):
            scales = (model.scaler_G.get_scale(), model.scaler_D.get_scale())
            out.append(model.train_step(*b))
            if any(after < before for after, before in
                   zip((model.scaler_G.get_scale(), model.scaler_D.get_scale()), scales)):
                skipped.append(i)   # the scaler lowers its scale when it skips an update
        return out, skipped

    plain, _ = losses()
    # train.py refuses --compile with SN (see training.config.check_compile): compile is
    # checked on the networks it is allowed for, against their own fp32 losses.
    no_sn = replace(config, sn_generator=False, sn_discriminator=False)
    plain_no_sn, _ = losses(no_sn)
    variants = {"channels_last": dict(channels_last=True), "amp bf16": dict(amp="bf16"),
                "amp fp16": dict(amp="fp16"), "compile": dict(compile=True, config=no_sn)}
    # GAN losses amplify reordered float arithmetic step by step: these bound 3 steps.
    tolerance = {"channels_last": 1e-2, "amp bf16": 5e-2, "amp fp16": 5e-2, "compile": 1e-2}
    results = []
    for name, options in variants.items():
        if name == "amp fp16" and device.type != "cuda":
            continue
        try:
            got, skipped = losses(**options)
        except Exception as err:  # a backend that can't run here is reported, not fatal
            results.append({"option": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"})
            continue
        compared = (skipped[0] + 1) if skipped else steps
        reference = plain_no_sn if "config" in options else plain
        worst = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-3) for a, b in zip(reference[:compared], got[:compared])
                    for k in ("d_loss", "g_loss", "l1_loss"))
        results.append({"option": name, "max_relative_loss_difference": worst, "tolerance": tolerance[name],
                        "steps_compared": compared, "skipped_updates": skipped, "ok": worst <= tolerance[name]})
    return results


def _scaling_worker(rank: int, world: int, store: str, device_type: str, batch: int, steps: int, warmup: int,
                    amp: str, out: str) -> None:
    """One process of the scaling measurement: DDP training steps on its share of the global batch."""
    import torch.distributed as dist

    from utils.distributed import SINGLE, Distributed
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))   # the same cores, split over the processes
    device = torch.device(f"cuda:{rank % torch.cuda.device_count()}" if device_type == "cuda" else "cpu")
    ctx = SINGLE
    if world > 1:
        # NCCL needs a GPU per process; processes sharing one GPU (a one-GPU check) use gloo.
        shared = device_type == "cuda" and torch.cuda.device_count() < world
        backend = "nccl" if device_type == "cuda" and not shared else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
        ctx = Distributed(rank, world, rank)
    try:
        torch.manual_seed(0)
        config = ModelConfig(embedding_num=4, sn_discriminator=True, norm_D="none", **CONFIGS["small"])
        model = TrainingStep(config, TrainConfig(), device, amp=amp, channels_last=device.type == "cuda", dist=ctx)
        share = batch // world
        x = torch.rand(share, 1, config.image_size, config.image_size) * 2 - 1
        model.set_input(torch.randint(0, 4, (share,)), x, torch.rand_like(x) * 2 - 1)
        step = statistics.median(timed(model.train_step, device, steps, warmup))
        # the iteration's one collective on its own: statistics, buffers (BN statistics, SN u/v) and stop flag
        averaged, from_main = replica_buffers(model.netG, model.netD)
        stats = torch.zeros(len(model.last_stats), device=device)   # one value per logged statistic
        sync = statistics.median(timed(lambda: ctx.synchronise([stats, *averaged], from_main, False), device,
                                       steps, warmup))
        floats = stats.numel() + sum(t.numel() for t in [*averaged, *from_main]) + 1
        if rank == 0:
            atomic_write_text(out, json.dumps({"processes": world, "step_s": step, "img_per_s": batch / step,
                                               "sync_ms": sync * 1e3, "sync_floats": floats}))
    finally:
        if world > 1:
            dist.barrier()   # gloo on torch 2.3 can hang leaving while another rank still talks to it
            dist.destroy_process_group()


def bench_scaling(device: torch.device, processes: int, batch: int, steps: int, warmup: int, amp: str) -> list[dict]:
    """img/s of DDP training at 1 and `processes` processes, the global batch fixed (small config)."""
    import torch.multiprocessing as mp
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in sorted({1, processes}):
            out = Path(tmp) / f"scaling_{world}.json"
            args = (world, str(Path(tmp) / f"store_{world}"), device.type, batch, steps, warmup, amp, str(out))
            mp.spawn(_scaling_worker, args=args, nprocs=world)
            results.append(json.loads(out.read_text()))
    return results


def bench_trace(count: int = 24) -> dict:
    """export_font.py's tracing, one process: bundled-font glyphs at 256 px -> font outlines."""
    from data.render import Font, RenderSettings, render_char
    from export.trace import GlyphBox, trace_raster
    root = Path(__file__).resolve().parent / "fonts"
    font = Font(root / "WenKai-Subset.ttf", 256)
    chars = [c for c in (root / "charset_demo.txt").read_text(encoding="utf-8") if font.has_char(c)][:count]
    rasters = [np.asarray(render_char(font, c, RenderSettings(256, 256))) for c in chars]
    box = GlyphBox(500, 380, 1000)
    start = time.perf_counter()
    for raster in rasters:
        trace_raster(raster, box, clockwise=True)
    return {"glyphs": len(rasters), "trace_glyphs_per_s_per_process": len(rasters) / (time.perf_counter() - start)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--quick", action="store_true", help="small config only, fewer steps")
    p.add_argument("--check", action="store_true", help="check AMP/channels_last/compile losses against fp32")
    p.add_argument("--skip", nargs="*", default=[], choices=["train", "pipeline", "inference", "data", "scaling", "export"],
                   help="sections to leave out")
    p.add_argument("--batch_size", type=int, help="training batch (default: 64 on CUDA, 4 on CPU)")
    p.add_argument("--steps", type=int, help="timed steps per measurement (default: 10 on CUDA, 3 on CPU)")
    p.add_argument("--processes", type=int, default=2,
                   help="scaling section: DDP processes compared with one (default 2; several per GPU use gloo)")
    p.add_argument("--out", default="bench.json", help="JSON file for the results")
    return p.parse_args(argv)


def section_train(results, names, device, batch, steps, warmup, fast_amp) -> None:
    cuda = device.type == "cuda"
    for name in names:
        configs = {f"{name} SN {sn_name}": ModelConfig(embedding_num=4, sn_generator=sn_g,
                                                       sn_discriminator=sn_d, **CONFIGS[name])
                   for sn_name, (sn_g, sn_d) in SN_VARIANTS.items()}
        measured = bench_train(configs, device, batch, steps, warmup, amp=fast_amp, channels_last=cuda)
        results[f"{name}_peak_mem_mb"] = measured.pop("peak_mem_mb")
        results["train"].update(measured)
        for key, r in measured.items():
            mfu = f", MFU {r['mfu_vs_bf16_peak']:.1%}" if "mfu_vs_bf16_peak" in r else ""
            print(f"train {key}: {r['img_per_s']:.1f} img/s ({r['step_s'] * 1000:.0f} ms/step, "
                  f"{r['tflop_per_s']:.2f} TFLOP/s{mfu})")
        off = results["train"][f"{name} SN off"]["step_s"]
        results[f"{name}_sn_cost"] = {k: results["train"][f"{name} SN {k}"]["step_s"] / off - 1 for k in ("D", "G+D")}
        print(f"{name}: SN step-time cost D {results[f'{name}_sn_cost']['D']:+.1%}, "
              f"G+D {results[f'{name}_sn_cost']['G+D']:+.1%}")
    if cuda and "default" in names:  # does batch 16 of the full model fit in 8 GB?
        torch.cuda.empty_cache()
        config = ModelConfig(embedding_num=40, sn_generator=True, sn_discriminator=True)
        peak = bench_train({"b16": config}, device, 16, 2, 1, amp=fast_amp, channels_last=True)["peak_mem_mb"]
        results["default_batch16_peak_mem_mb"] = peak
        results["default_batch16_in_8gib"] = fit = fits_in_memory(config, device, 16, 8.0, fast_amp)
        print(f"default config, batch 16, SN G+D: peak allocated {peak:.0f} MiB; "
              f"with the process capped at 8 GiB: {'runs' if fit['fits'] else 'out of memory'}")


def section_pipeline(results, names, device, batch, steps, warmup, fast_amp, tmp: Path) -> None:
    cuda = device.type == "cuda"
    for name in names:
        obj = synthetic_obj(tmp / f"{name}.obj", max(4 * batch, 64), CONFIGS[name]["image_size"])
        config = ModelConfig(embedding_num=4, **CONFIGS[name])
        base = bench_pipeline(config, obj, device, batch, steps, warmup, fast=False, amp="off", channels_last=False)
        fast = bench_pipeline(config, obj, device, batch, steps, warmup, fast=True, amp=fast_amp, channels_last=cuda)
        results["pipeline"][name] = {"baseline_img_per_s": base["img_per_s"], "fast_img_per_s": fast["img_per_s"],
                                     "speedup": fast["img_per_s"] / base["img_per_s"],
                                     "fast_syncs_per_step": fast["syncs_per_step"]}
        print(f"pipeline {name}: baseline (PIL, fp32) {base['img_per_s']:.1f} img/s, fast {fast['img_per_s']:.1f} "
              f"img/s ({results['pipeline'][name]['speedup']:.2f}x)"
              + (f", {fast['syncs_per_step']:.1f} host syncs per fast step" if cuda else ""))


def section_inference(results, name, device) -> None:
    config = ModelConfig(embedding_num=4, use_dropout=False, **CONFIGS[name])
    count = 256 if device.type == "cuda" else 32
    results["inference_chars_per_s"] = {
        "fp32 NCHW (zi2zi-pytorch's path)": bench_infer(config, device, 16, count, channels_last=False),
        "fp32 (infer.py default)": bench_infer(config, device, 16, count),
        "bf16 (infer.py --amp bf16)": bench_infer(config, device, 16, count, amp="bf16"),
    }
    print(f"inference, {name} config, batch 16: " + ", ".join(
        f"{k} {v:.1f} char/s" for k, v in results["inference_chars_per_s"].items()))


def section_data(results, device, steps, tmp: Path) -> None:
    data_obj = synthetic_obj(tmp / "data.obj", 512, 256)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the data target is per CPU core
    results["data_pipeline_1_core"] = d = bench_data(data_obj)
    torch.set_num_threads(threads)
    print(f"data, one CPU core, 256 px pairs/s: zi2zi PIL path {d['baseline_pil_pairs_per_s']:.0f}; "
          f"uint8 augmented {d['uint8_augmented_pairs_per_s']:.0f}; float model-ready "
          f"{d['float_model_ready_pairs_per_s']:.0f}; host work when the GPU augments "
          f"{d['gpu_path_host_pairs_per_s']:.0f}; decode once {d['decode_once_s']:.2f} s for {d['pairs']} pairs")
    if device.type == "cuda":
        results["gpu_augment_pairs_per_s"] = bench_device_augment(device, 256, 256, steps)
        print(f"augmentation on {device}: {results['gpu_augment_pairs_per_s']:.0f} pairs/s")


def section_export(results) -> None:
    results["export"] = e = bench_trace()
    generated = results.get("inference_chars_per_s", {})
    if generated:
        e["generate_glyphs_per_s"] = max(generated.values())
    print(f"export: tracing {e['trace_glyphs_per_s_per_process']:.1f} glyphs/s per process (256 px)"
          + (f", generation {e['generate_glyphs_per_s']:.1f} glyphs/s (the inference section's best)"
             if generated else ""))


def section_scaling(results, device, processes, batch, steps, warmup, fast_amp) -> None:
    scaling = bench_scaling(device, processes, max(batch, 2 * processes), steps, warmup, fast_amp)
    results["scaling_small_sn_d"] = scaling
    base = scaling[0]["img_per_s"]
    print("DDP scaling, small config, SN on D, global batch fixed: " + ", ".join(
        f"{r['processes']} process(es) {r['img_per_s']:.1f} img/s ({r['img_per_s'] / base:.2f}x)" for r in scaling))
    for r in scaling[1:]:
        print(f"  per-iteration sync of statistics, buffers and stop flag: {r['sync_floats']} floats, "
              f"{r['sync_ms']:.3f} ms ({100 * r['sync_ms'] / 1e3 / r['step_s']:.2f}% of a step)")
    # what the same collective carries at zi2zi's default sizes with SN on both networks
    from model import build_discriminator
    config = ModelConfig(sn_generator=True, sn_discriminator=True)
    averaged, from_main = replica_buffers(build_generator(config), build_discriminator(config))
    results["sync_floats_default_sn_both"] = sum(t.numel() for t in [*averaged, *from_main])


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.out, "--out")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (64 if cuda else 4)
    steps = args.steps or (10 if cuda else 3)
    warmup = 3 if cuda else 1
    fast_amp = "bf16" if cuda else "off"
    names = ["small"] if args.quick else ["small", "default"]
    results = {"machine": machine(device), "batch_size": batch, "steps": steps, "train": {}, "pipeline": {}}
    print(json.dumps(results["machine"]))
    sections = {
        "train": lambda tmp: section_train(results, names, device, batch, steps, warmup, fast_amp),
        "pipeline": lambda tmp: section_pipeline(results, names, device, batch, steps, warmup, fast_amp, tmp),
        "inference": lambda tmp: section_inference(results, names[-1], device),
        "data": lambda tmp: section_data(results, device, steps, tmp),
        "export": lambda tmp: section_export(results),
        "scaling": lambda tmp: section_scaling(results, device, args.processes, batch, steps, warmup, fast_amp),
    }
    if args.check:
        sections["equivalence"] = lambda tmp: results.update(equivalence=check_equivalence(device))
    with tempfile.TemporaryDirectory() as tmp:
        for name, section in sections.items():
            if name in args.skip:
                continue
            # each section's numbers are on disk the moment it ends; one that fails is recorded, the rest still run
            try:
                section(Path(tmp))
            except Exception as err:   # noqa: BLE001 - a benchmark reports what broke and goes on
                results.setdefault("errors", {})[name] = f"{type(err).__name__}: {str(err).strip()[:300]}"
                print(f"section {name} failed: {results['errors'][name]}")
            atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    for r in results.get("equivalence", []):
        print("check " + json.dumps(r))
    results["peak_memory_mb"] = peak_memory_mb(device)
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
