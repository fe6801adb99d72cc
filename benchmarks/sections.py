"""bench.py's sections: each measures one part, prints it and adds it to the results."""
from __future__ import annotations

from pathlib import Path

import torch

from data.synthetic import synthetic_obj
from model import ModelConfig, build_discriminator, build_generator
from training.step import replica_buffers
from utils.device import cpu_has_bf16

from .measure import (CONFIGS, SN_VARIANTS, bench_data, bench_device_augment, bench_infer, bench_pipeline,
                      bench_trace, bench_train, fits_in_memory)
from .scaling import bench_scaling


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
    config = ModelConfig(sn_generator=True, sn_discriminator=True)
    averaged, from_main = replica_buffers(build_generator(config), build_discriminator(config))
    results["sync_floats_default_sn_both"] = sum(t.numel() for t in [*averaged, *from_main])
