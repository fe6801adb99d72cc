"""One atomic write for every file the project produces.

A reader (or a crash) never sees half a file: the content goes to a temporary file
in the same folder, is flushed to disk, and is renamed over the target. If writing
fails, the temporary file is removed and the previous version of the target stays.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def temp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(file)` on a temporary file, fsync it and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = os_error_behind(err) if isinstance(err, RuntimeError) else None
        if cause is not None:
            raise cause from None   # the full disk, not torch's zip writer's complaint about it
        raise
    return path


def os_error_behind(err: BaseException) -> OSError | None:
    """The OSError (no space left, read-only, quota) behind a write failure, if any.

    torch.save's zip writer does not raise the OSError of a full disk itself: it raises
    `RuntimeError: [enforce fail at inline_container.cc] ... unexpected pos`, with the
    OSError chained inside it.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | Path) -> Path:
    import torch
    return atomic_write(path, lambda f: torch.save(obj, f))


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB': sizes people read in messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
