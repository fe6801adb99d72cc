"""Several processes, one code path: torchrun's environment -> a process group, and the few
collectives the training loop needs. Which device each process takes is utils.device's
choice; how one failing process ends the job with one message is utils.failures'.

`torchrun --nproc_per_node N train.py ...` starts N copies of train.py with RANK,
WORLD_SIZE and LOCAL_RANK set; plain `python train.py` is the one-process case, where
every helper here returns at once without a process group. NCCL joins CUDA processes,
gloo CPU ones.
"""
from __future__ import annotations

import datetime
import os
import pickle
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import PeerFailed, UserError

T = TypeVar("T")


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

    def synchronise(self, means: Sequence[torch.Tensor], from_main: Sequence[torch.Tensor], flag: bool) -> bool:
        """One all-reduce for a training iteration; returns True on every rank when `flag` is true on any.

        In place: each tensor of `means` becomes its mean over the ranks, each of
        `from_main` rank 0's value, bit for bit (the other ranks add zeros). All are
        float tensors on one device; they travel as one float32 vector, so the
        iteration's statistics, buffers and stop flag cost one collective, not three.
        """
        if not self.enabled:
            return flag
        tensors = [*means, *from_main]
        device = tensors[0].device if tensors else torch.device("cpu")
        with torch.no_grad():
            parts = [t.reshape(-1).float() / self.world_size for t in means]
            # zeros, not x * 0, from the other ranks: a NaN there must not reach rank 0's values
            parts += [t.reshape(-1).float() if self.is_main else torch.zeros(t.numel(), device=device)
                      for t in from_main]
            parts.append(torch.full((1,), 1.0 if flag else 0.0, device=device))
            flat = torch.cat(parts)
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            for t, value in zip(tensors, flat.split([t.numel() for t in tensors] + [1])):
                t.copy_(value.view_as(t))
        return bool(flat[-1] > 0)   # the flag rides with the statistics: their host sync is this one

    def decide_on_main(self, decide: Callable[[], T], device: torch.device) -> T:
        """Rank 0 runs `decide()` and every rank gets its result, so all act on one decision
        (a checkpoint step read from one directory listing, not from each node's).

        A UserError raised by `decide` is raised on rank 0 and ends the other ranks quietly
        (PeerFailed), so the job prints its message once.
        """
        if not self.enabled:
            return decide()
        outcome = None
        if self.is_main:
            try:
                outcome = ("ok", decide())
            except UserError as err:
                outcome = ("error", err)
        outcome = self.from_main(outcome, device)
        if outcome[0] == "error":
            if self.is_main:
                raise outcome[1]
            raise PeerFailed(f"rank 0: {outcome[1]}", outcome[1].exit_status)
        return outcome[1]

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


def start(ctx: Distributed, device: torch.device, timeout_s: float | None = None, backend: str | None = None) -> None:
    """Join the process group (NCCL on CUDA, gloo on the CPU); nothing for one process.

    `timeout_s` (--dist_timeout) bounds how long a collective waits for a rank that
    stopped answering before it fails. `backend="gloo"` on CUDA lets several processes
    share one GPU (bench.py's scaling check on a one-GPU machine); NCCL cannot.
    """
    if not ctx.enabled or dist.is_initialized():
        return
    options = {"timeout": datetime.timedelta(seconds=timeout_s)} if timeout_s else {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if device.type == "cuda" and backend in (None, "nccl"):
        dist.init_process_group("nccl", device_id=device, **options)
    else:
        dist.init_process_group(backend or "gloo", **options)


def free_port() -> int:
    """A TCP port on this machine nothing listens on now, for a job's MASTER_PORT."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(ctx: Distributed) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
