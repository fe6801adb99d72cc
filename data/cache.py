"""The decoded cache: every pair of an `.obj` decoded once per machine into a file all processes map.

    cache = decoded_cache("experiment/data/train.obj", num_workers=4)
    cache.pairs    # uint8 (N, 2, H, W) mapped from disk: target, then source
    cache.labels   # int64 (N,)

JPEG decoding is the slow part of reading an `.obj`, and a decoded copy in each
process's own memory grows with pairs x processes (40 styles x GB2312 at 256 px is
270,000 pairs, 35 GB decoded). Here the first run decodes the file, streaming, into
`<cache_dir>/<name>-<hash of its path>/pairs.npy`; every later run and every process of
the machine maps that file read-only, so the data's only host copy is the kernel's page
cache, shared by all processes, and a dataset larger than RAM still trains (pages come
from disk as they are needed).

The cache belongs to one `.obj`: it records the file's path, size and modification
time and is rebuilt, with a note, when any of them changes. It is built in a
temporary folder and renamed into place, so a crash or a full disk mid-build leaves no
half cache; an exclusive lock lets one process build while the others wait.
"""
from __future__ import annotations

import json
import mmap
import os
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from utils.errors import UserError, WriteError
from utils.io import human_bytes
from utils.locking import FileLock

from .decode import decode_records
from .obj import ObjIndex, existing_obj, scan_obj

CACHE_FORMAT = 1
CACHE_DIR_NAME = "cache"   # default: beside the .obj, e.g. experiment/data/cache/
# Room left free beyond the cache itself, so the build cannot fill a disk that checkpoints need too.
FREE_MARGIN_BYTES = 64 * 2 ** 20
CHUNK = 256  # records decoded and written together: bounded memory, whatever the file's size


@dataclass(frozen=True)
class DecodedCache:
    folder: Path
    pairs: np.ndarray      # uint8 (N, 2, H, W) over `mapping`
    labels: np.ndarray     # int64 (N,)
    mapping: mmap.mmap     # pairs.npy, mapped privately (copy-on-write)
    data_offset: int       # where the pairs start in pairs.npy (after the .npy header)

    @property
    def nbytes(self) -> int:
        return self.pairs.nbytes

    def will_need(self, rows) -> None:
        """Ask the kernel to start reading pairs `rows` from disk now (they are about to be gathered).

        The mapping is advised random access, because the kernel would otherwise read
        megabytes ahead of every pair (8 MiB on some disks), sixty times what a 256 px
        pair needs, evicting useful pages when the data is larger than memory.
        """
        size = self.pairs[0].nbytes
        for row in rows:
            start = self.data_offset + int(row) * size
            aligned = start - start % mmap.PAGESIZE
            self.mapping.madvise(mmap.MADV_WILLNEED, aligned, start + size - aligned)


def default_cache_dir(obj_path: str | Path) -> Path:
    return Path(obj_path).resolve().parent / CACHE_DIR_NAME


def cache_folder(obj_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """`<cache_dir>/<obj stem>-<hash of the .obj's absolute path>`: one folder per `.obj` file."""
    obj_path = Path(obj_path).resolve()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir(obj_path)
    return root / f"{obj_path.stem}-{sha1(str(obj_path).encode()).hexdigest()[:12]}"


def source_key(obj_path: str | Path) -> dict:
    """What makes a cache valid for an `.obj`: its path, size, modification time and the cache format."""
    path = Path(obj_path).resolve()
    st = path.stat()
    return {"obj": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": CACHE_FORMAT}


def stale_reason(folder: Path, key: dict) -> str | None:
    """Why the cache in `folder` cannot serve the `.obj` of `key`, or None when it can."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return "no complete cache"
    changed = [name for name in ("obj", "size", "mtime_ns", "format") if meta.get("source", {}).get(name) != key[name]]
    if changed:
        what = {"obj": "path", "size": "size", "mtime_ns": "modification time", "format": "cache format"}
        return f"the .obj's {' and '.join(what[c] for c in changed)} changed since it was decoded"
    try:
        expected = int(np.prod(meta["shape"]))
        if os.path.getsize(folder / "pairs.npy") < expected:
            return "its pairs.npy is shorter than it should be"
    except (OSError, KeyError, TypeError, ValueError):
        return "its pairs.npy is missing"
    return None


def open_cache(folder: Path) -> DecodedCache:
    labels = np.load(folder / "labels.npy")
    with open(folder / "pairs.npy", "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        offset = f.tell()
        # ACCESS_COPY: a private, copy-on-write mapping. Reads share the page cache like a
        # read-only one, yet the array is writable, so torch.from_numpy takes it without a
        # warning; nothing writes to it, and a write could not reach the file.
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    mapping.madvise(mmap.MADV_RANDOM)
    pairs = np.frombuffer(mapping, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
    return DecodedCache(folder, pairs, labels, mapping, offset)


def decoded_cache(obj_path: str | Path, cache_dir: str | Path | None = None, num_workers: int = 0,
                  say: Callable[[str], None] = print, build: bool = True) -> DecodedCache:
    """The decoded cache of `obj_path`, built first if it is missing or stale (`build=False`: an error instead)."""
    obj_path = existing_obj(obj_path)
    folder = cache_folder(obj_path, cache_dir)
    key = source_key(obj_path)
    if stale_reason(folder, key) is None:
        return open_cache(folder)
    if not build:
        raise UserError(f"the decoded cache of {obj_path} in {folder} is missing or stale after another process "
                        f"built it; is {folder.parent} on a disk that every process of this machine shares?")
    with build_lock(folder, obj_path, say):
        reason = stale_reason(folder, key)   # another process may have built it while this one waited
        if reason is not None:
            if reason != "no complete cache":
                say(f"note: rebuilding the decoded cache of {obj_path}: {reason}")
            build_cache(obj_path, folder, key, num_workers, say)
    return open_cache(folder)


@contextmanager
def build_lock(folder: Path, obj_path: Path, say: Callable[[str], None]):
    """An exclusive lock on building `folder`; says who holds it while waiting. Released if the holder dies."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder.parent / f"{folder.name}.lock")
        if not lock.acquire():
            say(f"waiting for {lock.holder} to finish decoding {obj_path.name} into {folder}")
            lock.acquire(wait=True)
    except OSError as err:
        raise UserError(f"cannot create the decoded cache folder {folder.parent} for {obj_path} "
                        f"({err.strerror or err}); point --cache_dir at a writable folder") from None
    with lock:
        yield


def build_cache(obj_path: Path, folder: Path, key: dict, num_workers: int = 0,
                say: Callable[[str], None] = print) -> None:
    """Decode every record of `obj_path` into `folder` (replacing what is there), atomically.

    The caller holds the build lock. Nothing but one chunk of records is in memory at once.
    """
    index = scan_obj(obj_path)
    shape = (len(index), 2, index.height, index.width // 2)
    need = index.decoded_bytes + 8 * len(index)
    root = folder.parent
    for stale in root.glob(f".{folder.name}.*"):   # a build killed earlier (the lock is ours now)
        shutil.rmtree(stale, ignore_errors=True)
    free = shutil.disk_usage(root).free
    if need + FREE_MARGIN_BYTES > free:
        raise UserError(f"decoding {obj_path} needs {human_bytes(need)} in {root} and only {human_bytes(free)} is "
                        f"free; free space there or point --cache_dir at a disk with room")
    say(f"decoding {obj_path.name} once ({len(index):,} pairs of {index.width}x{index.height}) into {folder}: "
        f"{human_bytes(need)} on disk, {human_bytes(free)} free")
    tmp = root / f".{folder.name}.building-{os.getpid()}"
    try:
        tmp.mkdir()
        _write_pairs(tmp / "pairs.npy", index, shape, num_workers)
        np.save(tmp / "labels.npy", np.asarray(index.labels, dtype=np.int64))
        meta = {"source": key, "shape": list(shape), "dtype": "uint8", "layout": "(pair, target|source, H, W)",
                "built": time.strftime("%Y-%m-%d %H:%M:%S"), "host": socket.gethostname()}
        with open(tmp / "meta.json", "w") as f:
            f.write(json.dumps(meta, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _replace_folder(tmp, folder)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteError(f"could not write the decoded cache of {obj_path} in {root} ({err.strerror or err}); "
                         f"nothing of it was kept. Free space there or point --cache_dir at a disk with room") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_pairs(path: Path, index: ObjIndex, shape: tuple[int, ...], num_workers: int) -> None:
    """pairs.npy written sequentially: a full disk is an OSError here, never a SIGBUS in a mapping."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        try:   # claim the whole file now: a disk without room fails before any decoding
            os.posix_fallocate(f.fileno(), f.tell(), index.decoded_bytes)
        except OSError as err:
            if err.errno not in (95, 22):   # EOPNOTSUPP, EINVAL: the filesystem cannot; writing will tell
                raise
        chunks = [range(i, min(i + CHUNK, len(index))) for i in range(0, len(index), CHUNK)]
        progress = tqdm(total=len(index), desc=f"decode {index.path.name}", unit="pair", leave=False,
                        disable=len(index) < 2000)
        for arrays in decode_records(index, chunks, num_workers):
            f.write(np.ascontiguousarray(arrays).data)
            progress.update(len(arrays))
        progress.close()
        f.flush()
        os.fsync(f.fileno())


def _replace_folder(new: Path, folder: Path) -> None:
    """Put `new` at `folder` with renames, so a reader sees the old cache or the new, never a mix."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.rename(folder, old)
    os.rename(new, folder)
    fd = os.open(folder.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old is not None:   # processes still mapping the old files keep them until they close
        shutil.rmtree(old, ignore_errors=True)
