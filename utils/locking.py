"""Exclusive locks on files, with the holder (pid, host, start time) written inside.

The lock is `fcntl.flock` on an open file: the kernel drops it when the holder's file
closes, so a process killed by `kill -9` or a crashed machine's reboot leaves no stale
lock, only a file whose contents a later holder overwrites.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO


def holder_line() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"


class FileLock:
    """An exclusive flock on `path`: `acquire(wait=False)` returns False (and `holder` says who) when taken."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file: IO[str] | None = None
        self.holder: str | None = None

    def acquire(self, wait: bool = False) -> bool:
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self.file.seek(0)
            self.holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            return False
        self.file.seek(0)
        self.file.truncate()
        self.file.write(holder_line() + "\n")
        self.file.flush()
        return True

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
