"""Seconds per named stage, for scripts that report where their time went."""
from __future__ import annotations

import time
from contextlib import contextmanager


class StageTimer:
    """`with timer.stage("trace"): ...` adds the block's wall time to `timer.seconds["trace"]`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
