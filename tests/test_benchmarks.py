"""The measurements bench.py reports (benchmarks/), checked on small models."""
import torch

from benchmarks.measure import count_syncs, endless, flops_per_step
from data.loader import BatchIterator, PairBank
from model import TrainConfig
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
