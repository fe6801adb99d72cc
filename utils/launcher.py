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
import shlex
import signal
import sys
import time

def record_failure(message: str, exit_status: int) -> None:
    """Leave a training process's one-line failure where torchrun's launcher reads it.

    torchrun gives each process a file name in TORCHELASTIC_ERROR_FILE and, when the
    process fails, puts the file's "message" into its report (launch.py prints it as
    the job's last line). `exit_status` is the status of the process the message is
    from (a rank that ends because another failed records that rank's message and
    status), so launch.py exits with the status of the line it prints, whichever
    process ended first. Outside torchrun this does nothing.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"message": message, "timestamp": int(time.time()), "exit_status": exit_status}, f)
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
    from torch.distributed.run import config_from_args, parse_args, run

    args = parse_args(argv)
    try:
        config, _, _ = config_from_args(args)   # what run() does first; torchrun checks its flags with bare asserts
        if config.nproc_per_node < 1:   # torchrun's own check comes later, as an assert in its agent
            raise ValueError(f"--nproc_per_node must be at least 1, got {config.nproc_per_node}")
    except (AssertionError, ValueError) as err:
        flags = " ".join(argv[:argv.index(args.training_script)] if args.training_script in argv else argv)
        print(f"error: launch.py: bad torchrun flags {flags!r}{': ' + str(err) if str(err) else ''}; "
              f"see python launch.py --help", file=sys.stderr)
        return 2
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
        return failure_status(failure)
    return 0


def failure_status(failure) -> int:
    """The exit status that goes with the printed line: the one recorded with the message (the status
    of the process the message is from), else how this process ended (128 + signal when killed)."""
    recorded = (getattr(failure, "error_file_data", None) or {}).get("exit_status")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode


def describe_failure(rank: int, failure) -> str:
    """One line for the process that failed first: its own message, or how it ended."""
    message = failure.message if isinstance(failure.message, str) else ""
    if failure.exitcode < 0:
        return f"rank {rank} was killed by {failure.signal_name()} (pid {failure.pid})"
    if message and not message.startswith("To enable traceback"):
        return message if message.startswith("rank ") else f"rank {rank}: {message}"
    return f"rank {rank} failed with exit status {failure.exitcode}; its traceback is above"


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
