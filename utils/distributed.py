"""Several processes, one code path: torchrun's environment -> a process group, and the few
collectives the training loop needs.

`torchrun --nproc_per_node N train.py ...` starts N copies of train.py with RANK,
WORLD_SIZE and LOCAL_RANK set; plain `python train.py` is the one-process case, where
every helper here returns at once without a process group. NCCL joins CUDA processes,
gloo CPU ones.
"""
from __future__ import annotations

import os
import pickle
import shlex
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UserError


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, samples, logs and the progress bar."""
        return self.rank == 0

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on any (a stop request, a failed check)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a tensor (in place; returned for chaining)."""
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.world_size
        return values

    def from_main(self, obj, device: torch.device):
        """Rank 0's `obj` on every rank (a picklable Python value)."""
        if not self.enabled:
            return obj
        payload = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8).to(device)
        size = torch.tensor([payload.numel()], device=device)
        dist.broadcast(size, 0)
        buffer = payload if self.is_main else torch.empty(int(size.item()), dtype=torch.uint8, device=device)
        dist.broadcast(buffer, 0)
        return pickle.loads(buffer.cpu().numpy().tobytes())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = Distributed()


def from_environment() -> Distributed:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK, or the one-process case."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (they are set by torchrun)") from None
    return Distributed(rank, world, local) if world > 1 else SINGLE


def process_device(name: str | None, gpu_ids, ctx: Distributed) -> str | None:
    """The device of this rank under torchrun: its local GPU (or its entry of --gpu_ids) on CUDA, else `name`."""
    if gpu_ids:
        from .device import parse_gpu_ids
        if name is not None:
            raise UserError("give either --device or zi2zi's --gpu_ids, not both")
        gpu_ids = parse_gpu_ids(gpu_ids)
        if len(gpu_ids) != int(os.environ.get("LOCAL_WORLD_SIZE", len(gpu_ids))):
            raise UserError(f"--gpu_ids names {len(gpu_ids)} GPUs but torchrun started "
                            f"{os.environ.get('LOCAL_WORLD_SIZE')} processes on this node; give "
                            f"--nproc_per_node {len(gpu_ids)}")
        return f"cuda:{gpu_ids[ctx.local_rank]}"
    wants_cuda = name is None and torch.cuda.is_available() or (name or "").startswith("cuda")
    if not wants_cuda:
        return name
    if name not in (None, "cuda"):
        raise UserError(f"--device {name} under torchrun: each process takes the GPU of its LOCAL_RANK; give "
                        f"--device cuda (or choose GPUs with CUDA_VISIBLE_DEVICES or --gpu_ids)")
    if ctx.local_rank >= torch.cuda.device_count():
        raise UserError(f"process {ctx.local_rank} on this node has no GPU of its own "
                        f"({torch.cuda.device_count()} visible); lower --nproc_per_node")
    return f"cuda:{ctx.local_rank}"


def start(ctx: Distributed, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on the CPU); nothing for one process."""
    if not ctx.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def stop(ctx: Distributed) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(gpus: list[int], argv: list[str]) -> str:
    """The command that trains on `gpus`, one process each, with the rest of `argv` unchanged."""
    rest, skip = [], False
    for arg in argv[1:]:
        if skip:
            if arg.startswith("-"):
                skip = False
            else:
                continue
        if arg == "--gpu_ids":
            skip = True
            continue
        if arg.startswith("--gpu_ids="):
            continue
        rest.append(arg)
    script = os.path.basename(argv[0]) if argv else "train.py"
    visible = ",".join(str(g) for g in gpus)
    return (f"CUDA_VISIBLE_DEVICES={visible} torchrun --standalone --nproc_per_node {len(gpus)} "
            f"{shlex.join([script, *rest, '--device', 'cuda'])}")
