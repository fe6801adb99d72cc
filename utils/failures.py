"""Under torchrun, a failure on one process ends the job with one message, not one per process.

The failing process leaves `rank N: message` and its exit status in the job's store
(torchrun's, which outlives the workers); the others' next collective then breaks and
they find the message there. Every process also leaves the line for launch.py
(utils.launcher.record_failure), which prints it once.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager

import torch.distributed as dist

from .distributed import Distributed
from .errors import PeerFailed, UserError
from .launcher import record_failure

FAILURE_KEY = "zi2zi/failure"   # where a failing rank leaves its message in the job's store


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
