"""bench.py's sections: each measures one part, prints it and adds it to the results."""
from __future__ import annotations

from pathlib import Path

import torch

from data.synthetic import synthetic_obj
from model import ModelConfig, build_discriminator, build_generator
from training.step import replica_buffers
from utils.device import cpu_has_bf16, speed_defaults

from .measure import (CONFIGS, SN_VARIANTS, bench_data, bench_device_augment, bench_infer, bench_pipeline,
                      bench_trace, bench_train, fits_in_memory)
from .anchor import bench_anchor
from .scaling import bench_scaling


def train_grid(device: torch.device, batch: int) -> tuple[list[int], dict[str, dict]]:
    """The batches and speed settings the train section measures on `device`: on a GPU with bf16, batch
    16 and `batch`, each in train.py's default (bf16 + channels_last) and in fp32 NCHW; elsewhere `batch`
    in the device's default."""
    default = speed_defaults(device)
    if default["amp"] == "off":
        return [batch], {"fp32": default}
    return sorted({16, batch}), {"bf16+CL": default, "fp32": {**default, "amp": "off", "channels_last": False}}


def section_train(results, names, device, batch, steps, warmup) -> None:
    batches, speeds = train_grid(device, batch)
    for name in names:
        for size in batches:
            for speed_name, speed in speeds.items():
                configs = {f"{name} b{size} {speed_name} SN {sn_name}": ModelConfig(
                    embedding_num=4, sn_generator=sn_g, sn_discriminator=sn_d, **CONFIGS[name])
                    for sn_name, (sn_g, sn_d) in SN_VARIANTS.items()}
                measured = bench_train(configs, device, size, steps, warmup, **speed)
                results[f"{name}_b{size}_{speed_name}_peak_mem_mb"] = measured.pop("peak_mem_mb")
                results["train"].update(measured)
                for key, r in measured.items():
                    mfu = f", MFU {r['mfu_vs_bf16_peak']:.1%}" if "mfu_vs_bf16_peak" in r else ""
                    print(f"train {key}: {r['img_per_s']:.1f} img/s ({r['step_s'] * 1000:.1f} ms/step, "
                          f"{r['tflop_per_s']:.2f} TFLOP/s{mfu})")
                prefix = f"{name} b{size} {speed_name} SN"
                off = results["train"][f"{prefix} off"]["step_s"]
                cost = {k: results["train"][f"{prefix} {k}"]["step_s"] / off - 1 for k in ("D", "G+D")}
                results.setdefault("sn_cost", {})[prefix[:-3]] = cost
                print(f"{prefix[:-3]}: SN step-time cost D {cost['D']:+.1%}, G+D {cost['G+D']:+.1%}")
    if device.type == "cuda" and "default" in names:  # does batch 16 of the full model fit in 8 GB?
        torch.cuda.empty_cache()
        config = ModelConfig(embedding_num=40, sn_generator=True, sn_discriminator=True)
        fast = speed_defaults(device)
        peak = bench_train({"b16": config}, device, 16, 2, 1, **fast)["peak_mem_mb"]
        results["default_batch16_peak_mem_mb"] = peak
        results["default_batch16_in_8gib"] = fit = fits_in_memory(config, device, 16, 8.0, fast["amp"])
        print(f"default config, batch 16, SN G+D: peak allocated {peak:.0f} MiB; "
              f"with the process capped at 8 GiB: {'runs' if fit['fits'] else 'out of memory'}")


def section_compiled(results, names, device, batch, steps, warmup) -> None:
    """Eager against torch.compile at train.py's default speed settings, SN off and on both networks;
    the compile time (the first step) apart."""
    speed = speed_defaults(device)
    for name, sn_name in ((name, sn_name) for name in names for sn_name in ("off", "G+D")):
        sn_g, sn_d = SN_VARIANTS[sn_name]
        # zi2zi's 40 styles, as the anchor's model: the same graphs, so the compile cache serves both
        config = ModelConfig(sn_generator=sn_g, sn_discriminator=sn_d, **CONFIGS[name])
        measured = bench_train({"eager": config, "compiled": config}, device, batch, steps, warmup, **speed,
                               compiled=("compiled",))
        measured.pop("peak_mem_mb")
        key = f"{name} b{batch} SN {sn_name}"
        results.setdefault("compiled", {})[key] = measured
        eager, compiled = measured["eager"], measured["compiled"]
        print(f"compiled {key}: eager {eager['img_per_s']:.1f} img/s, compiled {compiled['img_per_s']:.1f} img/s "
              f"({compiled['img_per_s'] / eager['img_per_s']:.2f}x) after {compiled['compile_s']:.0f} s of compiling")


def section_anchor(results, checkout, name, device, batch, steps, warmup, compile) -> None:
    config = ModelConfig(embedding_num=40, **CONFIGS[name])
    speed = speed_defaults(device)
    default = {k: v for k, v in speed.items() if v not in (False, "off")}
    results["anchor"] = measured = {"config": name, "batch": batch, **bench_anchor(
        checkout, config, device, batch, steps, warmup, default, compile=compile)}
    for key, r in measured.items():
        if isinstance(r, dict):
            extra = f", compiled in {r['compile_s']:.0f} s" if "compile_s" in r else ""
            print(f"anchor {name} b{batch} {key}: {r['img_per_s']:.1f} img/s, "
                  f"{r['speed_vs_zi2zi_pytorch']:.2f}x zi2zi-pytorch{extra}")


def section_pipeline(results, names, device, batch, steps, warmup, tmp: Path) -> None:
    cuda = device.type == "cuda"
    fast_speed = speed_defaults(device)
    for name in names:
        obj = synthetic_obj(tmp / f"{name}.obj", max(4 * batch, 64), CONFIGS[name]["image_size"])
        config = ModelConfig(embedding_num=4, **CONFIGS[name])
        base = bench_pipeline(config, obj, device, batch, steps, warmup, fast=False, amp="off", channels_last=False)
        fast = bench_pipeline(config, obj, device, batch, steps, warmup, fast=True, **fast_speed)
        results["pipeline"][name] = {"baseline_img_per_s": base["img_per_s"], "fast_img_per_s": fast["img_per_s"],
                                     "speedup": fast["img_per_s"] / base["img_per_s"],
                                     "baseline_syncs_per_step": base["syncs_per_step"],
                                     "fast_syncs_per_step": fast["syncs_per_step"]}
        print(f"pipeline {name}: baseline (PIL, fp32) {base['img_per_s']:.1f} img/s, train.py's path "
              f"{fast['img_per_s']:.1f} "
              f"img/s ({results['pipeline'][name]['speedup']:.2f}x)"
              + (f"; host syncs per step: baseline {base['syncs_per_step']:.1f}, train.py's path "
                 f"{fast['syncs_per_step']:.1f}" if cuda else ""))


def section_inference(results, name, device) -> None:
    config = ModelConfig(embedding_num=4, use_dropout=False, **CONFIGS[name])
    count = 256 if device.type == "cuda" else 32
    results["inference_chars_per_s"] = measured = {
        "fp32 NCHW (zi2zi-pytorch's path)": bench_infer(config, device, 16, count, channels_last=False),
        "fp32 (infer.py default)": bench_infer(config, device, 16, count),
    }
    if device.type == "cuda" or cpu_has_bf16():
        measured["bf16 (infer.py --amp bf16)"] = bench_infer(config, device, 16, count, amp="bf16")
    else:   # emulated bf16 runs ~20x slower than fp32: minutes here, and no number anyone should use
        results["inference_bf16"] = "not measured: this CPU has no bf16 instructions"
    print(f"inference, {name} config, batch 16: " + ", ".join(f"{k} {v:.1f} char/s" for k, v in measured.items()))


def section_data(results, device, steps, tmp: Path) -> None:
    data_obj = synthetic_obj(tmp / "data.obj", 512, 256)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the data target is per CPU core
    try:
        results["data_pipeline_1_core"] = d = bench_data(data_obj)
    finally:   # a failed section must not leave the later ones on one thread
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


def section_scaling(results, device, processes, batch, steps, warmup) -> None:
    scaling = bench_scaling(device, processes, max(batch, 2 * processes), steps, warmup, speed_defaults(device)["amp"])
    results["scaling_small_sn_d"] = scaling
    base = scaling[0]["img_per_s"]
    print("DDP scaling, small config, SN on D, global batch fixed: " + ", ".join(
        f"{r['processes']} process(es) {r['img_per_s']:.1f} img/s ({r['img_per_s'] / base:.2f}x)" for r in scaling))
    for r in scaling[1:]:
        print(f"  per-iteration sync of statistics, buffers and stop flag: {r['sync_floats']} floats, "
              f"{r['sync_ms']:.3f} ms ({100 * r['sync_ms'] / 1e3 / r['step_s']:.2f}% of a step)")
    # what the same collective carries at zi2zi's default sizes with SN on both networks
    config = ModelConfig(sn_generator=True, sn_discriminator=True)
    averaged, from_main = replica_buffers(build_generator(config), build_discriminator(config))
    results["sync_floats_default_sn_both"] = sum(t.numel() for t in [*averaged, *from_main])
