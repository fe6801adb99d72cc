"""launch.py: torchrun's launcher, run in this process, with one-line endings and SIGUSR1.

torchrun ends every failed job with its ChildFailedError report (a traceback of the
launcher and a table per rank), and on torch before 2.9 it does not handle SIGUSR1,
which SLURM sends ahead of a time limit: the launcher dies at once and the training
processes with it, saving nothing. Here the same launcher runs with
- SIGUSR1 handled as torchrun handles SIGTERM: passed on to the training processes,
  which stop together at a step boundary and save (train.py's stop signals), with
  torchrun's 30 s before it kills what is left;
- the failing process's own one-line message (written where torchrun looks for it,
  TORCHELASTIC_ERROR_FILE, see `record_failure`) printed last, instead of the report.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

def record_failure(message: str) -> None:
    """Leave a training process's one-line failure where torchrun's launcher reads it.

    torchrun gives each process a file name in TORCHELASTIC_ERROR_FILE and, when the
    process fails, puts the file's "message" into its report (launch.py prints it as
    the job's last line). Outside torchrun this does nothing.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"message": message, "timestamp": int(time.time())}, f)
    except OSError:   # the disk that failed may be this one too; the process prints the message anyway
        pass


def _raise_signal_exception(signum, frame):
    from torch.distributed.elastic.multiprocessing.api import SignalException
    sig = signal.Signals(signum)
    raise SignalException(f"launcher got {sig.name}", sigval=sig)


def launch(argv: list[str]) -> int:
    """Run torchrun with `argv` (its flags, then the script and its flags); returns the exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(argv)
    # torchrun installs its own handlers for SIGTERM and SIGINT when it starts the
    # processes; SIGUSR1 gets the same treatment here, on every torch version.
    signal.signal(signal.SIGUSR1, _raise_signal_exception)
    try:
        run(args)
    except SignalException as stop:
        # the processes got the signal, saved and exited; say how the job ended, as the shell would
        return 128 + int(stop.sigval)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        print(f"error: {describe_failure(rank, failure)}", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    return 0


def describe_failure(rank: int, failure) -> str:
    """One line for the process that failed first: its own message, or how it ended."""
    message = failure.message if isinstance(failure.message, str) else ""
    if failure.exitcode < 0:
        return f"rank {rank} was killed by {failure.signal_name()} (pid {failure.pid})"
    if message and not message.startswith("To enable traceback"):
        return message if message.startswith("rank ") else f"rank {rank}: {message}"
    return f"rank {rank} failed with exit status {failure.exitcode}; its traceback is above"
