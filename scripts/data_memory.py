"""How the fast loader's memory grows with the number of pairs and of processes; print it and write JSON.

    python scripts/data_memory.py --out data_memory.json                  # N = 4k, 12k, 40k at 256 px
    python scripts/data_memory.py --pairs 2000 --processes 1 --steps 2    # a quick look

For each N it writes a synthetic 256 px `train.obj` (glyph-like blocks of ink, JPEG as
font2img.py writes them), then measures:

- building the decoded cache: seconds, and the builder's peak private memory;
- train.py with 1 and with 2 processes (launch.py, gloo on the CPU): each training
  process's peak private memory (`RssAnon` of /proc/<pid>/status, sampled every 20 ms)
  and the page cache holding the decoded data at the end (mincore(2)), which all the
  processes of the machine share;
- the data path alone (gather, augment, convert; no model): pairs/s over the whole
  epoch with the cache's pages dropped first (cold: read from disk) and again (warm),
  and the page cache the data then holds (the whole file, once), and the private
  memory the data path adds to its process ("data MiB").

Private memory is what grows with processes; the page cache is one copy per machine
and the kernel gives it back under pressure. bench.py measures training speed; this
script measures memory, which needs fresh processes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from data.synthetic import synthetic_obj
from utils.cli import run
from utils.io import atomic_write_text, check_output_file

ROOT = Path(__file__).resolve().parents[1]

DISTINCT = 512   # distinct images cycled through N records: writing 40k JPEGs would dominate the run


def rss_anon_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        kids = [int(c) for c in children]
        out += kids
        todo += kids
    return out


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def run_sampled(cmd: list[str], env=None) -> tuple[float, dict[int, dict]]:
    """Run `cmd`; returns (seconds, {pid: {"peak_rss_anon_mib", "cmd"}}) for it and every descendant."""
    peaks: dict[int, dict] = {}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in [proc.pid, *descendants(proc.pid)]:
                kib = rss_anon_kib(pid)
                if kib is None:
                    continue
                entry = peaks.setdefault(pid, {"peak_rss_anon_mib": 0.0, "cmd": ""})
                cmd = command_line(pid)   # read again: a fresh child shows its parent's until it execs
                if cmd:                   # (and an exiting one shows nothing)
                    entry["cmd"] = cmd
                entry["peak_rss_anon_mib"] = max(entry["peak_rss_anon_mib"], kib / 1024)
            time.sleep(0.02)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output, _ = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}:\n{output[-3000:]}")
    return time.perf_counter() - start, peaks


def page_cache_mib(path: Path) -> float:
    """MiB of `path` resident in the page cache, by mincore(2) over a mapping of it (what fincore reports)."""
    import ctypes
    import mmap
    size = path.stat().st_size
    if size == 0:
        return 0.0
    libc = ctypes.CDLL(None, use_errno=True)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)   # a writable buffer, so ctypes can address it
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        if libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec) != 0:
            raise OSError(ctypes.get_errno(), f"mincore on {path}")
    finally:
        del anchor
        mapping.close()
    return sum(b & 1 for b in vec) * mmap.PAGESIZE / 2 ** 20


def drop_page_cache(path: Path) -> None:
    """Evict `path`'s clean pages (any user may, for a file it can open)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


DATA_PATH_SNIPPET = """
import json, sys, time, torch
from data.loader import BatchIterator, PairBank

def rss_anon_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) / 1024

before = rss_anon_mib()
bank = PairBank.from_cache(sys.argv[1], build=False, say=lambda m: None)
batches = BatchIterator(bank, 64, "cpu", augment=True, seed=0, drop_last=False)
start, n, peak = time.perf_counter(), 0, 0.0
for labels, source, target in batches.epoch(0):
    n += len(labels)
    peak = max(peak, rss_anon_mib())
print(json.dumps({"pairs": n, "seconds": time.perf_counter() - start, "private_mib": peak - before}))
"""


def data_path_rate(obj: Path, cold: bool, cache_file: Path) -> dict:
    if cold:
        drop_page_cache(cache_file)
    out = subprocess.run([sys.executable, "-c", DATA_PATH_SNIPPET, str(obj)], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {"pairs_per_s": result["pairs"] / result["seconds"], "page_cache_before": "dropped" if cold else "warm",
            # private memory the data path added to the process (after torch's import), at its peak
            "private_mib": result["private_mib"]}


def train_command(experiment: Path, processes: int, steps: int, batch: int, model_flags: list[str]) -> list[str]:
    """train.py on experiment/data, writing to experiment/p{processes}."""
    train = ["train.py", "--experiment_dir", str(experiment / f"p{processes}"), "--data_dir",
             str(experiment / "data"), "--embedding_num", "4", "--batch_size", str(batch),
             "--max_steps", str(steps), "--sample_steps", "100000", "--checkpoint_steps", "100000",
             "--eval_steps", "0", "--device", "cpu", "--keep_last", "1", *model_flags]
    if processes == 1:
        return [sys.executable, *train]
    return [sys.executable, "launch.py", "--nproc_per_node", str(processes), *train]


def measure(count: int, work: Path, process_counts: list[int], steps: int, batch: int, model_flags: list[str],
            num_workers: int) -> dict:
    experiment = work / f"n{count}"
    data = experiment / "data"
    data.mkdir(parents=True, exist_ok=True)
    obj = synthetic_obj(data / "train.obj", count, 256, distinct=DISTINCT)
    from data.cache import cache_folder
    cache_file = cache_folder(obj) / "pairs.npy"
    build = [sys.executable, "-c", "import sys; from data.cache import decoded_cache; "
             "decoded_cache(sys.argv[1], num_workers=int(sys.argv[2]))", str(obj), str(num_workers)]
    build_s, build_peaks = run_sampled(build)
    row = {"pairs": count, "obj_mib": obj.stat().st_size / 2 ** 20,
           "decoded_mib": cache_file.stat().st_size / 2 ** 20,
           "cache_build_s": build_s, "cache_build_workers": num_workers,
           "cache_builder_peak_rss_anon_mib": max(p["peak_rss_anon_mib"] for p in build_peaks.values()),
           "data_path_cold": data_path_rate(obj, True, cache_file),
           "data_path_warm": data_path_rate(obj, False, cache_file), "train": {}}
    # one epoch read the whole file: this is the data's one host copy, whatever the number of processes
    row["page_cache_after_epoch_mib"] = page_cache_mib(cache_file)
    for processes in process_counts:
        drop_page_cache(cache_file)
        seconds, peaks = run_sampled(train_command(experiment, processes, steps, batch, model_flags))
        # the training processes: the command itself, or the workers launch.py starts (not launch.py)
        trainers = [p for pid, p in peaks.items() if "train.py" in p["cmd"] and "launch.py" not in p["cmd"]]
        row["train"][str(processes)] = {
            "seconds": seconds, "per_process_peak_rss_anon_mib": [p["peak_rss_anon_mib"] for p in trainers],
            "page_cache_of_data_mib": page_cache_mib(cache_file)}
    return row


def summary(rows: list[dict]) -> list[str]:
    lines = [f"{'pairs':>7} {'.obj MiB':>8} {'decoded MiB':>11} {'build s':>8} {'cold p/s':>9} {'warm p/s':>9} "
             f"{'cached MiB':>10} {'data MiB':>8}   private MiB per training process (page cache MiB after it), "
             f"by processes"]
    for r in rows:
        train = "   ".join(f"{k}: {', '.join(f'{m:.0f}' for m in t['per_process_peak_rss_anon_mib'])} "
                           f"({t['page_cache_of_data_mib']:.0f})" for k, t in r["train"].items())
        lines.append(f"{r['pairs']:>7} {r['obj_mib']:>8.0f} {r['decoded_mib']:>11.0f} {r['cache_build_s']:>8.1f} "
                     f"{r['data_path_cold']['pairs_per_s']:>9.0f} {r['data_path_warm']['pairs_per_s']:>9.0f} "
                     f"{r['page_cache_after_epoch_mib']:>10.0f} {r['data_path_warm']['private_mib']:>8.0f}   {train}")
    base = next((r for r in rows if {"1", "2"} <= set(r["train"])), None)
    if base is not None:
        one, two = base["train"]["1"], base["train"]["2"]
        # the page cache of a whole epoch (the worst case: every pair read) is shared by both processes
        shared = sum(two["per_process_peak_rss_anon_mib"]) + base["page_cache_after_epoch_mib"]
        bound = base["decoded_mib"] + 2 * one["per_process_peak_rss_anon_mib"][0]
        lines.append(f"N={base['pairs']}: 2 processes use {shared:.0f} MiB (their private memory + the page cache of an "
                     f"epoch) against one decoded copy + twice one process's private memory, {bound:.0f} MiB: ratio "
                     f"{shared / bound:.2f}")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, nargs="+", default=[4000, 12000, 40000])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=5, help="training steps per run")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_workers", type=int, default=2, help="processes decoding while the cache is built")
    p.add_argument("--model", nargs=argparse.REMAINDER, default=[],
                   help="train.py flags for the model, e.g. --model --ngf 32 --ndf 32 (last on the line)")
    p.add_argument("--work_dir", help="where the .obj files and caches go (default: a temporary folder, removed)")
    p.add_argument("--out", default="data_memory.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_output_file(args.out, "--out")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        rows = []
        for count in args.pairs:
            rows.append(measure(count, Path(tmp), args.processes, args.steps, args.batch_size, args.model,
                                args.num_workers))
            record = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                  "python": platform.python_version()},
                      "settings": vars(args), "rows": rows}
            atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")   # kept if a later N fails
            print("\n".join(summary(rows)), flush=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
