"""The decoded cache: built once per .obj, rebuilt when it changes, atomic, shared, and the same batches as before."""
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data import cache as cache_module
from data.cache import cache_folder, decoded_cache
from data.loader import BatchIterator, PairBank, Prefetcher
from data.obj import ObjFormatError, encode_image, iter_obj, scan_obj, write_obj
from data.synthetic import synthetic_obj
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _valid_header_broken_body() -> tuple[bytes, bytes]:
    """A JPEG pair and the same file cut short: its header reads, its body does not decode."""
    noise = np.random.default_rng(0).integers(0, 255, (32, 64), dtype=np.uint8)
    good = encode_image(Image.fromarray(noise))
    return good, good[:len(good) * 6 // 10]


def _pil_pairs(obj: Path) -> np.ndarray:
    """Every record decoded the plain way, independently of the code under test."""
    out = []
    for record in iter_obj(obj):
        array = np.asarray(Image.open(io.BytesIO(record.image_bytes)).convert("L"))
        half = array.shape[1] // 2
        out.append(np.stack([array[:, :half], array[:, half:]]))
    return np.stack(out)


@pytest.fixture
def obj(tmp_path):
    return synthetic_obj(tmp_path / "data" / "train.obj", 40, size=32, labels=3)


def test_first_use_decodes_every_record_and_later_uses_only_map_it(obj):
    said = []
    cache = decoded_cache(obj, say=said.append)
    assert len(said) == 1 and said[0].startswith("decoding train.obj once (40 pairs of 64x32) into ")
    assert str(cache.folder) in said[0] and "on disk" in said[0]
    assert cache.folder.parent == obj.parent / "cache"
    np.testing.assert_array_equal(cache.pairs, _pil_pairs(obj))
    assert cache.labels.tolist() == [i % 3 for i in range(40)]
    built = (cache.folder / "pairs.npy").stat().st_mtime_ns
    again = decoded_cache(obj, say=said.append)
    assert len(said) == 1 and (again.folder / "pairs.npy").stat().st_mtime_ns == built
    np.testing.assert_array_equal(again.pairs, cache.pairs)


def test_a_changed_obj_is_decoded_again_with_a_note(obj):
    decoded_cache(obj, say=lambda m: None)
    synthetic_obj(obj, 30, size=32, labels=2, seed=5)   # rewritten in place: another size and time
    said = []
    cache = decoded_cache(obj, say=said.append)
    assert said[0].startswith(f"note: rebuilding the decoded cache of {obj}: the .obj's size and modification time")
    np.testing.assert_array_equal(cache.pairs, _pil_pairs(obj))
    assert sorted(p.name for p in cache.folder.parent.iterdir()) == [cache.folder.name, cache.folder.name + ".lock"]


def test_two_obj_files_get_two_caches(tmp_path):
    a = synthetic_obj(tmp_path / "a" / "train.obj", 8, size=32)
    b = synthetic_obj(tmp_path / "b" / "train.obj", 8, size=32, seed=1)
    shared = tmp_path / "shared"
    ca, cb = decoded_cache(a, shared, say=print), decoded_cache(b, shared, say=print)
    assert ca.folder != cb.folder and ca.folder.parent == cb.folder.parent == shared
    assert not np.array_equal(ca.pairs, cb.pairs)


def test_a_record_that_fails_mid_build_leaves_no_cache(tmp_path):
    good, broken = _valid_header_broken_body()
    obj = tmp_path / "train.obj"
    write_obj(obj, [(0, good)] * 300 + [(0, broken)])
    with pytest.raises(ObjFormatError, match=r"train.obj: record 300 does not decode"):
        decoded_cache(obj, say=lambda m: None)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache_folder(obj).name + ".lock"]


def test_a_build_killed_earlier_is_cleaned_up(obj):
    folder = cache_folder(obj)
    leftover = folder.parent / f".{folder.name}.building-99999"
    leftover.mkdir(parents=True)
    (leftover / "pairs.npy").write_bytes(b"half")
    decoded_cache(obj, say=lambda m: None)
    assert not leftover.exists() and (folder / "meta.json").is_file()


def test_a_short_pairs_file_is_rebuilt(obj):
    cache = decoded_cache(obj, say=lambda m: None)
    expected = np.array(cache.pairs)
    del cache
    with open(cache_folder(obj) / "pairs.npy", "r+b") as f:
        f.truncate(1000)
    said = []
    np.testing.assert_array_equal(decoded_cache(obj, say=said.append).pairs, expected)
    assert "pairs.npy is shorter than it should be" in said[0]


def test_the_disk_needed_is_checked_before_writing(obj, tmp_path, small_disk):
    full = small_disk(tmp_path / "small", "1m")   # 40 pairs of 32 px need 80 KiB, plus the margin
    with pytest.raises(UserError) as err:
        decoded_cache(obj, full, say=print)
    message = str(err.value)
    assert "\n" not in message and f"needs 80.3 KiB in {full} and only" in message and "--cache_dir" in message
    assert [p.name for p in full.iterdir()] == [cache_folder(obj, full).name + ".lock"]


def test_a_disk_that_fills_mid_build_is_one_line_and_keeps_nothing(tmp_path, small_disk, monkeypatch):
    obj = synthetic_obj(tmp_path / "train.obj", 64, size=128, distinct=4)   # 2 MiB decoded
    full = small_disk(tmp_path / "small", "1m")
    monkeypatch.setattr(cache_module, "FREE_MARGIN_BYTES", -2 ** 30)   # pass the check: the write itself fails
    with pytest.raises(UserError) as err:
        decoded_cache(obj, full, say=print)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"could not write the decoded cache of {obj} in {full} ")
    assert "No space left on device" in message and "nothing of it was kept" in message
    assert [p.name for p in full.iterdir()] == [cache_folder(obj, full).name + ".lock"]


def test_an_unwritable_cache_folder_names_the_flag(obj, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"cannot create the decoded cache folder .* point --cache_dir at a writable"):
        decoded_cache(obj, blocker / "cache", say=print)


@pytest.mark.slow
def test_a_second_process_waits_for_the_builder_and_builds_nothing(obj):
    folder = cache_folder(obj)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path\n"
         "from data.cache import build_cache, build_lock, source_key\n"
         "folder, obj = Path(sys.argv[1]), Path(sys.argv[2])\n"
         "with build_lock(folder, obj, print):\n"
         "    print('held', flush=True); sys.stdin.readline()\n"
         "    build_cache(obj, folder, source_key(obj), 0, print)",
         str(folder), str(obj)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    said = []
    waiter = threading.Thread(target=lambda: said.append(decoded_cache(obj, say=said.append)))
    waiter.start()
    while not said:   # the waiter says who it waits for, then blocks until the holder is done
        threading.Event().wait(0.05)
    assert said[0].startswith(f"waiting for pid {holder.pid} on {os.uname().nodename} since ")
    assert said[0].endswith(f"to finish decoding train.obj into {folder}")
    holder.communicate("go\n", timeout=60)
    waiter.join(timeout=60)
    assert holder.returncode == 0
    assert len(said) == 2 and isinstance(said[1], cache_module.DecodedCache)   # it mapped; it never built
    np.testing.assert_array_equal(said[1].pairs, _pil_pairs(obj))


def test_mixed_pair_sizes_name_the_odd_record(tmp_path):
    obj = tmp_path / "train.obj"
    write_obj(obj, [(0, encode_image(Image.new("L", (64, 32), 255)))] * 3 +
              [(0, encode_image(Image.new("L", (128, 64), 255)))])
    with pytest.raises(ObjFormatError, match=r"record 3 is 128x64 but record 0 is 64x32; every pair of one .obj"):
        scan_obj(obj)


def test_only_the_chosen_records_are_read_and_decoded(tmp_path):
    good, broken = _valid_header_broken_body()
    obj = tmp_path / "val.obj"
    write_obj(obj, [(0, good), (1, broken), (0, good)])
    bank = PairBank.from_obj(obj, choose=lambda labels: [i for i, label in enumerate(labels) if label == 0])
    assert len(bank) == 2 and torch.equal(bank.pairs[0], bank.pairs[1])
    with pytest.raises(ObjFormatError, match="record 1 does not decode"):
        PairBank.from_obj(obj)


def _batches(bank, **options):
    iterator = BatchIterator(bank, 8, "cpu", augment=True, rotate=True, blur=True, seed=11, **options)
    return [(labels, source, target) for epoch in (0, 1) for labels, source, target in
            iterator.epoch(epoch, start_batch=1 if epoch else 0)]


@pytest.mark.parametrize("labels", [None, {0, 2}])
def test_batches_from_the_cache_are_the_pairs_and_order_of_decoding_in_memory(obj, labels):
    """The same pairs in the same order, augmented alike, as a bank decoded into memory (the path before)."""
    mapped = PairBank.from_cache(obj, labels=labels, say=lambda m: None)
    in_memory = PairBank.from_obj(obj, labels=labels)
    assert (mapped.rows is None) == (labels is None)
    for rank in (0, 1):
        ours = _batches(mapped, rank=rank, world_size=2)
        before = _batches(in_memory, rank=rank, world_size=2)
        assert len(ours) == len(before) > 4
        for a, b in zip(ours, before):
            assert all(torch.equal(x, y) for x, y in zip(a, b))
    everything = _pil_pairs(obj)
    keep = [i for i in range(40) if labels is None or i % 3 in labels]
    np.testing.assert_array_equal(in_memory.pairs.numpy(), everything[keep])


def test_a_bank_copied_to_a_device_holds_its_pairs_in_order(obj, device):
    mapped = PairBank.from_cache(obj, labels={1}, say=lambda m: None)
    moved = mapped.to(device, chunk=3)   # several chunks, the last one short
    assert moved.pairs.device.type == device.type and moved.rows is None and moved.cache is None
    assert torch.equal(moved.pairs.cpu(), mapped.gather(torch.arange(len(mapped))))
    ours = [b for b in BatchIterator(mapped, 4, device, seed=2).epoch(0)]
    before = [b for b in BatchIterator(PairBank.from_obj(obj, labels={1}), 4, device, seed=2).epoch(0)]
    assert len(ours) == len(before) == 3
    for a, b in zip(ours, before):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def _mapping_fields(path: Path) -> dict[str, str]:
    """The /proc/self/smaps fields of this process's mapping of `path` (read afresh: mappings move)."""
    lines = Path("/proc/self/smaps").read_text().split("\n")
    starts = [i for i, line in enumerate(lines) if line.endswith(str(path))]
    assert len(starts) == 1, f"{path} is mapped {len(starts)} times"
    fields = {}
    for line in lines[starts[0] + 1:]:
        name, sep, value = line.partition(":")
        if not sep or " " in name:   # the next mapping's header line
            break
        fields[name] = value.strip()
    return fields


def test_the_mapped_bank_holds_no_private_copy(tmp_path):
    obj = synthetic_obj(tmp_path / "train.obj", 400, size=128, distinct=8)   # 12.5 MiB decoded
    bank = PairBank.from_cache(obj, say=lambda m: None)
    assert bank.pairs.untyped_storage().data_ptr() == bank.cache.pairs.ctypes.data   # a view of the mapping
    path = bank.cache.folder / "pairs.npy"
    assert _mapping_fields(path)["Anonymous"] == "0 kB"
    gathered = bank.gather(torch.arange(0, 400, 7))
    fields = _mapping_fields(path)
    assert fields["Anonymous"] == "0 kB"   # reading it copied nothing into private memory
    assert int(fields["Rss"].split()[0]) >= len(gathered) * 2 * 128 * 128 // 1024   # the pages read are the file's


def test_the_prefetcher_hands_on_errors_and_stops_when_closed():
    def fetch(i):
        if i == 3:
            raise OSError("disk gone")
        return i * 10
    prefetch = Prefetcher(fetch, list(range(6)))
    assert [next(prefetch) for _ in range(3)] == [0, 10, 20]
    with pytest.raises(OSError, match="disk gone"):
        next(prefetch)
    prefetch.close()
    endless = Prefetcher(lambda i: i, range(10 ** 9))
    assert next(endless) == 0
    endless.close()
    assert not endless.thread.is_alive()


def test_an_epoch_left_early_stops_its_prefetch_thread(obj):
    batches = BatchIterator(PairBank.from_cache(obj, say=lambda m: None), 4, "cpu", seed=0)
    before = threading.active_count()
    epoch = batches.epoch(0)
    next(epoch)
    assert threading.active_count() == before + 1
    epoch.close()
    assert threading.active_count() == before


def test_cache_dir_is_for_the_fast_loader_only():
    from training.config import DeviceConfig
    with pytest.raises(UserError, match="--cache_dir is where --loader fast keeps the decoded data"):
        DeviceConfig(loader="pil", cache_dir="/tmp/x")


@pytest.mark.slow
def test_train_py_keeps_its_cache_in_cache_dir(bundled_font_data, tmp_path, run_script):
    result = run_script("train.py", "--experiment_dir", tmp_path / "exp", "--data_dir", bundled_font_data,
                        "--cache_dir", tmp_path / "decoded", "--embedding_num", 2, "--image_size", 32, "--ngf", 8,
                        "--ndf", 8, "--batch_size", 8, "--max_steps", 2, "--device", "cpu")
    folder = cache_folder(bundled_font_data / "train.obj", tmp_path / "decoded")
    assert (folder / "pairs.npy").is_file() and f"into {folder}" in result.stdout + result.stderr
    pairs = np.load(folder / "pairs.npy")
    assert pairs.shape[1:] == (2, 32, 32) and len(pairs) == len(scan_obj(bundled_font_data / "train.obj"))


class MemoryCgroup:
    """A memory cgroup (v1 under /sys/fs/cgroup/memory, else v2) capping the processes started in it."""

    def __init__(self, limit_bytes: int):
        v1, v2 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")
        if (v1 / "memory.limit_in_bytes").exists():
            self.path, limit_file = v1 / f"zi2zi-test-{os.getpid()}", "memory.limit_in_bytes"
        elif "memory" in ((v2 / "cgroup.controllers").read_text() if (v2 / "cgroup.controllers").exists() else ""):
            self.path, limit_file = v2 / f"zi2zi-test-{os.getpid()}", "memory.max"
        else:
            pytest.skip("no memory cgroup controller here (neither /sys/fs/cgroup/memory nor cgroup v2 with memory)")
        try:
            self.path.mkdir()
            (self.path / limit_file).write_text(str(limit_bytes))
            if limit_file == "memory.max" and (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
        except OSError as err:
            self.path.rmdir() if self.path.exists() else None
            pytest.skip(f"cannot create a memory cgroup under {self.path.parent} ({err.strerror}); needs root")

    def join(self) -> None:
        """For preexec_fn: the child moves itself into the cgroup before it runs anything."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


@pytest.mark.slow
def test_data_larger_than_the_memory_allowed_trains_to_the_end(tmp_path):
    """train.py in a memory cgroup whose limit is below the decoded data: it builds the cache and trains.

    Decoding into each process's memory (the loader before the decoded cache) cannot
    run here: 1000 MiB of pairs do not fit in 800 MiB, and the cgroup kills the process.
    """
    exp = tmp_path / "exp"
    obj = synthetic_obj(exp / "data" / "train.obj", 8000, size=256, distinct=64)
    decoded = len(scan_obj(obj)) * 2 * 256 * 256
    limit = 800 * 2 ** 20
    assert decoded > 1.2 * limit
    cgroup = MemoryCgroup(limit)
    try:
        result = subprocess.run(
            [sys.executable, "train.py", "--experiment_dir", str(exp), "--embedding_num", "4", "--ngf", "8", "--ndf",
             "8", "--batch_size", "8", "--max_steps", "4", "--sample_steps", "4", "--device", "cpu"],
            cwd=ROOT, capture_output=True, text=True, timeout=900, preexec_fn=cgroup.join,
            env={**os.environ, "OMP_NUM_THREADS": "2"})
    finally:
        cgroup.remove()
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "done at step 4" in result.stdout + result.stderr
    assert (cache_folder(obj) / "pairs.npy").stat().st_size >= decoded
    assert (exp / "checkpoint" / "4_net_G.pth").is_file() and (exp / "sample" / "step_0000004.png").is_file()
