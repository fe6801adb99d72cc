"""Several processes, one code path: torchrun's environment -> a process group, and the few
collectives the training loop needs.

`torchrun --nproc_per_node N train.py ...` starts N copies of train.py with RANK,
WORLD_SIZE and LOCAL_RANK set; plain `python train.py` is the one-process case, where
every helper here returns at once without a process group. NCCL joins CUDA processes,
gloo CPU ones.
"""
from __future__ import annotations

import datetime
import json
import os
import pickle
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import PeerFailed, UserError
from .launcher import record_failure

T = TypeVar("T")
FAILURE_KEY = "zi2zi/failure"   # where a failing rank leaves its message in the job's store


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


def _store():
    return dist.distributed_c10d._get_default_store()


def announce_failure(ctx: Distributed, message: str, exit_status: int) -> None:
    """Leave this rank's one-line failure and its exit status in the job's store (torchrun's,
    which outlives the workers), where the other ranks look when their next collective breaks.
    Best effort: the store may be gone already."""
    try:
        _store().set(f"{FAILURE_KEY}/{ctx.rank}", json.dumps({"message": message, "exit_status": exit_status}))
    except Exception:   # noqa: BLE001 - the job is failing already; the message is printed either way
        pass


def failure_elsewhere(ctx: Distributed, wait_s: float = 0.0) -> tuple[int, str, int] | None:
    """(rank, message, exit status) of the lowest other rank that announced a failure, waiting up to
    `wait_s` for one to appear; None when none did (or the store went with a failed rank)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            store = _store()
            for rank in range(ctx.world_size):
                key = f"{FAILURE_KEY}/{rank}"
                if rank != ctx.rank and store.check([key]):
                    failure = json.loads(store.get(key).decode())
                    return rank, failure["message"], failure["exit_status"]
        except Exception:   # noqa: BLE001
            return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def is_collective_failure(err: BaseException) -> bool:
    """A collective that broke because another rank left (gloo: 'Connection closed by peer',
    NCCL: a DistBackendError or a watchdog timeout)."""
    backend_error = getattr(dist, "DistBackendError", None)
    if backend_error is not None and isinstance(err, backend_error):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "ProcessGroupGloo",
                            "NCCL", "timed out", "Timed out"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


@contextmanager
def one_failure_message(ctx: Distributed):
    """Under torchrun, a failure on one rank ends every rank, and the job prints its message once.

    The failing rank announces `rank N: message` in the job's store before it leaves;
    the others' next collective then breaks, and they exit quietly (PeerFailed, status
    2) when a message is waiting, or say in one line that they lost contact. A
    UserError that every rank raises alike (a bad flag, a diverged run) is printed by
    the lowest rank alone. Every rank also leaves the line for launch.py (record_failure).
    """
    if not ctx.enabled:
        yield
        return
    try:
        yield
    except PeerFailed as err:
        record_failure(str(err), err.exit_status)
        raise
    except UserError as err:
        line = f"rank {ctx.rank}: {err}"
        announce_failure(ctx, line, err.exit_status)
        other = None if ctx.is_main else failure_elsewhere(ctx, wait_s=2.0)
        if other is not None and other[0] < ctx.rank:
            record_failure(other[1], other[2])
            raise PeerFailed(other[1], other[2]) from None   # a lower rank failed too and says why
        record_failure(line, err.exit_status)   # announced above already
        if ctx.is_main:
            raise
        error = UserError(line)
        error.exit_status = err.exit_status
        raise error from None
    except Exception as err:
        if not is_collective_failure(err):
            line = f"rank {ctx.rank}: {type(err).__name__}: {_first_line(err)}"
            announce_failure(ctx, line, 1)   # Python's status for an uncaught exception
            record_failure(line, 1)
            raise
        other = failure_elsewhere(ctx, wait_s=3.0)
        if other is not None:
            record_failure(other[1], other[2])
            raise PeerFailed(other[1], other[2]) from None
        line = (f"rank {ctx.rank} lost contact with the other processes of this job ({_first_line(err)}); the "
                f"first process to fail says why in its own output (--dist_timeout sets how long a process waits)")
        record_failure(line, UserError.exit_status)
        raise UserError(line) from None


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
