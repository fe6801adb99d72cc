"""bench.py's DDP scaling section: img/s at 1 and N processes with the global batch fixed, and
the cost of the per-iteration collective."""
from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from model import ModelConfig
from training.config import TrainConfig
from training.step import TrainingStep, replica_buffers
from utils import distributed
from utils.io import atomic_write_text

from .measure import CONFIGS, timed


def _scaling_worker(rank: int, world: int, port: int, device_type: str, batch: int, steps: int, warmup: int,
                    amp: str, out: str) -> None:
    """One process of the scaling measurement: DDP training steps on its share of the global batch,
    joined as train.py's processes join (utils.distributed), with the environment torchrun would set."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))   # the same cores, split over the processes
    device = torch.device(f"cuda:{rank % torch.cuda.device_count()}" if device_type == "cuda" else "cpu")
    ctx = distributed.from_environment()
    # NCCL needs a GPU per process; processes sharing one GPU (a one-GPU check) use gloo.
    shared = device_type == "cuda" and torch.cuda.device_count() < world
    distributed.start(ctx, device, backend="gloo" if shared else None)
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
        if ctx.is_main:
            atomic_write_text(out, json.dumps({"processes": world, "step_s": step, "img_per_s": batch / step,
                                               "sync_ms": sync * 1e3, "sync_floats": floats}))
    finally:
        ctx.barrier()   # gloo on torch 2.3 can hang leaving while another rank still talks to it
        distributed.stop(ctx)


def bench_scaling(device: torch.device, processes: int, batch: int, steps: int, warmup: int, amp: str) -> list[dict]:
    """img/s of DDP training at 1 and `processes` processes, the global batch fixed (small config)."""
    import torch.multiprocessing as mp
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in sorted({1, processes}):
            out = Path(tmp) / f"scaling_{world}.json"
            args = (world, distributed.free_port(), device.type, batch, steps, warmup, amp, str(out))
            mp.spawn(_scaling_worker, args=args, nprocs=world)
            results.append(json.loads(out.read_text()))
    return results
