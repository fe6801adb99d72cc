"""The measurements bench.py reports (benchmarks/), checked on small models."""
import sys
from pathlib import Path

import pytest
import torch

import benchmarks.anchor
from benchmarks.anchor import bench_anchor, load_anchor_class
from benchmarks.measure import count_syncs, endless, flops_per_step
from data.loader import BatchIterator, PairBank
from training.config import TrainConfig
from training.step import TrainingStep


def test_model_flops_grow_with_the_square_of_the_width(tiny_config, tiny_batches):
    flops = {}
    for ngf in (8, 16):
        model = TrainingStep(tiny_config(ngf=ngf, ndf=ngf), TrainConfig(), "cpu")
        model.set_input(*tiny_batches(1)[0])
        flops[ngf] = flops_per_step(model)
    # Convolutions dominate and their cost grows with channels squared: doubling widths ~quadruples it.
    assert 3.0 < flops[16] / flops[8] < 4.5


def test_host_syncs_are_only_counted_on_cuda():
    assert count_syncs(lambda: None, torch.device("cpu"), 2) is None


def test_benchmark_batches_run_past_one_epoch(reference_dir):
    """The pipeline section draws warm-up + timed steps that can outrun one epoch of its data."""
    batches = BatchIterator(PairBank.from_obj(reference_dir / "zi2zi_pytorch_sample.obj"), 16, "cpu", augment=False)
    assert len(batches) == 1
    source = endless(batches.epoch)
    assert all(next(source)[1].shape == (16, 1, 256, 256) for _ in range(13))   # 13 batches from a 1-batch epoch


STAND_IN = Path(__file__).parent / "anchor_stand_in"


def test_the_anchor_is_imported_beside_our_packages_of_the_same_names():
    import model
    import utils
    anchor = load_anchor_class(STAND_IN)
    assert anchor.__module__ == "model.model" and anchor.__init__.__code__.co_filename.startswith(str(STAND_IN))
    assert sys.modules["model"] is model and sys.modules["utils"] is utils   # ours are back in place
    assert "init_net" not in dir(utils)


def test_the_anchor_is_timed_in_turns_with_ours(tiny_config, monkeypatch):
    anchor = load_anchor_class(STAND_IN)
    monkeypatch.setattr(benchmarks.anchor, "load_anchor_class", lambda checkout: anchor)
    measured = bench_anchor(STAND_IN, tiny_config(), torch.device("cpu"), batch=2, steps=3, warmup=1,
                            default_speed={}, compile=False)
    assert len(anchor.__init__.__globals__["STEPS"]) == 1 + 3   # its own iteration ran: warm-up, then timed
    assert set(measured) == {"zi2zi-pytorch (fp32)", "ours fp32"}
    theirs = measured["zi2zi-pytorch (fp32)"]
    assert theirs["speed_vs_zi2zi_pytorch"] == 1.0
    ours = measured["ours fp32"]
    assert ours["img_per_s"] > 0 and ours["speed_vs_zi2zi_pytorch"] == pytest.approx(theirs["step_s"] / ours["step_s"])


def test_an_anchor_folder_without_zi2zi_pytorch_is_one_line(tmp_path, run_script):
    result = run_script("bench.py", "--device", "cpu", "--anchor", tmp_path, "--out", tmp_path / "b.json",
                        check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: --anchor {tmp_path}: no model/__init__.py there; point --anchor at a "
                                     f"checkout of zi2zi-pytorch (the folder holding its model/ and train.py)")
