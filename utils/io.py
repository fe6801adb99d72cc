"""Atomic writes, and what a write the machine refused becomes.

A reader (or a crash) never sees half a file: the content goes to a temporary file
in the same folder, is flushed to disk, and is renamed over the target. If writing
fails, the temporary file is removed and the previous version of the target stays.
Checkpoints, logs, configs, pictures, plots, fonts and reports all go through
`atomic_write` (pictures through `save_image`, plots through `save_figure`); the
append-only training log is the one file written in place, a whole line at a time.

A write that fails for a reason outside the input (a full disk, a quota, a read-only
file system, permissions) surfaces as an OSError naming the file; `write_failure`
finds it, also inside the RuntimeError torch's zip writer raises around it, and
`describe_write_failure` turns it into the cause and what to do.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import UserError

# errno values that only a write raises: the machine refused it, the input was fine
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_WHAT_TO_DO = {errno.ENOSPC: "free space there or write elsewhere",
               errno.EDQUOT: "free space within your quota or write elsewhere",
               errno.EFBIG: "raise the file size limit (ulimit -f) or write elsewhere",
               errno.EROFS: "the file system is read-only: write elsewhere",
               errno.EACCES: "fix the permissions or write elsewhere",
               errno.EPERM: "fix the permissions or write elsewhere",
               errno.EIO: "check the disk, or write elsewhere"}


class WriteFailed(OSError):
    """An OSError from writing the file named by `filename` (not from reading anything)."""


def temp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(file)` on a temporary file, fsync it and rename it to `path`."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = os_error_behind(err) if isinstance(err, (OSError, RuntimeError)) else None
        if cause is not None:
            # the full disk, not torch's zip writer's complaint about it, and the file it was for
            raise WriteFailed(cause.errno, cause.strerror, str(path)) from None
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


def write_failure(err: BaseException) -> OSError | None:
    """The OSError behind `err` if the machine refused a write, else None (a read's error, a bug)."""
    cause = os_error_behind(err) if isinstance(err, (OSError, RuntimeError)) else None
    if isinstance(cause, WriteFailed) or (cause is not None and cause.errno in FULL_OR_READ_ONLY):
        return cause
    return None


def describe_write_failure(err: OSError) -> str:
    """'No space left on device; free space there or write elsewhere': the cause and the remedy."""
    reason = err.strerror or os.strerror(err.errno or 0)
    return f"{reason}; {_WHAT_TO_DO.get(err.errno, 'write elsewhere')}"


def save_image(image, path: str | Path, **params) -> Path:
    """A PIL image written atomically, in the format its suffix names (.png, .jpg, .gif)."""
    from PIL import Image
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"no image format for {path.name}")
    return atomic_write(path, lambda f: image.save(f, format=fmt, **params))


def save_figure(fig, path: str | Path, **params) -> Path:
    """A matplotlib figure written atomically as PNG, then closed (also when the write fails)."""
    import matplotlib.pyplot as plt
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", **params))
    finally:
        plt.close(fig)


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


def _check_creatable(path: Path, flag: str) -> None:
    """`path` (file or folder) can be made: its nearest existing ancestor is a writable folder."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == path.absolute() else f"cannot be created in {existing} (not writable)"
        raise UserError(f"{flag} {path} {where}: choose another {flag} or fix the permissions")


def check_output_dir(path: str | Path, flag: str) -> Path:
    """Fail before any work if folder `path` (given by `flag`) cannot hold the output; creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: name a folder (it is created if missing)")
    _check_creatable(path, flag)
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """Fail before any work if file `path` (given by `flag`) cannot be written; creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder: name the file to write")
    if path.exists():
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {path} is not writable: choose another {flag} or fix the permissions")
    else:
        _check_creatable(path, flag)
    return path
