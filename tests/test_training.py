"""TrainingStep's iteration: losses, updates, schedule, its errors; the run settings' checks."""
import copy
import json
import os
import sys

import numpy as np
import pytest
import torch

from training.config import TrainConfig
from training.step import NonFiniteLossError, TrainingStep
from utils.errors import UserError

from conftest import ROOT

STAT_KEYS = {"d_loss", "g_loss", "l1_loss", "const_loss", "category_loss", "cheat_loss",
             "d_real_prob", "d_fake_prob", "g_grad_norm", "d_grad_norm"}


def test_step_returns_floats_and_updates_both_nets(tiny_config, tiny_batches):
    torch.manual_seed(0)
    model = TrainingStep(tiny_config(), TrainConfig())
    g0 = copy.deepcopy(model.netG.state_dict())
    d0 = copy.deepcopy(model.netD.state_dict())
    stats = model.train_step(*tiny_batches(1)[0])
    assert set(stats) == STAT_KEYS
    assert all(isinstance(v, float) for v in stats.values())
    assert 0 < stats["d_real_prob"] < 1 and 0 < stats["d_fake_prob"] < 1
    assert model.step == 1
    assert not torch.equal(g0["model.down.0.weight"], model.netG.state_dict()["model.down.0.weight"])
    assert not torch.equal(d0["model.0.weight"], model.netD.state_dict()["model.0.weight"])
    # D's parameters are trainable again after the G steps
    assert all(p.requires_grad for p in model.netD.parameters())


def test_losses_follow_the_weights(tiny_config, tiny_batches):
    batch = tiny_batches(1)[0]
    torch.manual_seed(0)
    a = TrainingStep(tiny_config(use_dropout=False), TrainConfig(g_steps=1))
    torch.manual_seed(0)
    b = TrainingStep(tiny_config(use_dropout=False), TrainConfig(g_steps=1, L1_penalty=50))
    sa, sb = a.train_step(*batch), b.train_step(*batch)
    # the D step is identical; L1 is reported with its weight applied
    assert sa["d_loss"] == pytest.approx(sb["d_loss"], abs=1e-6)
    assert sb["l1_loss"] == pytest.approx(sa["l1_loss"] / 2, rel=1e-5)


def test_g_steps_counts_generator_updates(tiny_config, tiny_batches):
    batch = tiny_batches(1)[0]
    for g_steps in (1, 3):
        model = TrainingStep(tiny_config(), TrainConfig(g_steps=g_steps))
        model.train_step(*batch)
        state = model.optimizer_G.state_dict()["state"]
        assert int(next(iter(state.values()))["step"]) == g_steps
        assert int(next(iter(model.optimizer_D.state_dict()["state"].values()))["step"]) == 1


def test_label_beyond_embedding_num_names_both_numbers(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(embedding_num=4), TrainConfig())
    labels, a, b = tiny_batches(1)[0]
    labels[0] = 7
    with pytest.raises(ValueError, match=r"style label 7\b.*embedding_num=4"):
        model.train_step(labels, a, b)


def test_non_finite_loss_raises_with_step_number(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(), TrainConfig())
    batches = tiny_batches(2)
    model.train_step(*batches[0])
    labels, a, b = batches[1]
    b[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        model.train_step(labels, a, b)


def test_separate_learning_rates_and_halving_with_floor(tiny_config):
    model = TrainingStep(tiny_config(), TrainConfig(lr=0.001, lr_D=0.004))
    assert model.learning_rates == {"lr_G": 0.001, "lr_D": 0.004}
    assert model.update_lr() == {"lr_G": 0.0005, "lr_D": 0.002}
    for _ in range(10):
        rates = model.update_lr()
    assert rates == {"lr_G": 0.0002, "lr_D": 0.0002}
    low = TrainingStep(tiny_config(), TrainConfig(lr=0.0001))
    assert low.update_lr()["lr_G"] == 0.0001  # the floor never raises a rate


def test_freeze_encoder_keeps_down_path_fixed(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(sn_generator=True), TrainConfig(freeze_encoder=True))
    encoder = [p.detach().clone() for p in model.netG.encoder_parameters()]
    decoder_before = model.netG.model.up[1].weight_orig.detach().clone()
    for batch in tiny_batches(2):
        model.train_step(*batch)
    assert all(torch.equal(a, b) for a, b in zip(encoder, model.netG.encoder_parameters()))
    assert not torch.equal(decoder_before, model.netG.model.up[1].weight_orig)


def test_flip_labels_adds_unpaired_terms(tiny_config, tiny_batches):
    batch = tiny_batches(1, batch=4)[0]
    torch.manual_seed(0)
    plain = TrainingStep(tiny_config(use_dropout=False), TrainConfig()).train_step(*batch)
    torch.manual_seed(0)
    flip_model = TrainingStep(tiny_config(use_dropout=False), TrainConfig(flip_labels=True))
    flipped = flip_model.train_step(*batch)
    assert flip_model.outputs.flipped_labels.sort().values.tolist() == batch[0].sort().values.tolist()
    assert flipped["d_loss"] > plain["d_loss"]  # one more fake term for D


def test_generate_is_eval_mode_and_deterministic(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(), TrainConfig())
    labels, a, _ = tiny_batches(1)[0]
    assert torch.equal(model.generate(a, labels), model.generate(a, labels))
    assert model.netG.training


# ------------------------------------------------------------------ run settings

def test_keep_best_and_eval_flags_are_checked():
    from training.config import RunConfig
    assert RunConfig().eval_interval == 1000 and RunConfig(eval_steps=50).eval_interval == 50
    with pytest.raises(UserError, match="--keep_best must be one of l1, rmse, psnr, ssim, ink_iou"):
        RunConfig(keep_best="fid")
    with pytest.raises(UserError, match="--keep_best needs validation"):
        RunConfig(keep_best="l1", eval_steps=0)
    with pytest.raises(UserError, match="--eval_count must be >= 2"):
        RunConfig(eval_count=1)


class HostReads(torch.overrides.TorchFunctionMode):
    """Counts reads of tensor values into Python (.item, .tolist, .cpu, .numpy, float/int/bool of a
    tensor) that the training code (training/, model/) makes itself, each with where it was made.
    The data loader's host-side index work is not the step's, and torch's own CPU bookkeeping
    (foreach Adam reads its CPU step counter; fused Adam on CUDA reads nothing) is not ours."""
    READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__float__,
             torch.Tensor.__int__, torch.Tensor.__bool__}
    PACKAGES = tuple(str(ROOT / name) + os.sep for name in ("training", "model"))
    DISPATCH = (os.path.join("torch", "_tensor.py"), os.path.join("torch", "overrides.py"))

    def __init__(self):
        super().__init__()
        self.reads, self.paused = [], 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS and not self.paused:
            frame = sys._getframe(1)
            while frame and frame.f_code.co_filename.endswith(self.DISPATCH):   # the Tensor method's own frames
                frame = frame.f_back
            if frame and frame.f_code.co_filename.startswith(self.PACKAGES):
                self.reads.append(f"{func.__name__} in {frame.f_code.co_name} "
                                  f"({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})")
        return func(*args, **(kwargs or {}))


def test_no_host_read_between_log_steps(tiny_trainer, tmp_path):
    """Between two log steps the loop reads nothing back from the device; at each log step it reads
    every pending step's statistics in one copy (and the log line's sigma)."""
    trainer = tiny_trainer(tmp_path / "exp", max_steps=12, log_steps=4, checkpoint_steps=1000, eval_steps=0)
    counter, read_at = HostReads(), []

    def paused(method, record=False):   # the read points themselves may read
        def wrapper(*args, **kwargs):
            if record and len(trainer.pending):   # a read with something to read
                read_at.append(trainer.model.step)
            counter.paused += 1
            try:
                return method(*args, **kwargs)
            finally:
                counter.paused -= 1
        return wrapper
    trainer.read_stats = paused(trainer.read_stats, record=True)
    trainer.shutdown = paused(trainer.shutdown)
    with counter:
        trainer.run()
    assert trainer.model.step == 12
    assert counter.reads == []
    assert read_at == [4, 8, 12]   # one copy per log interval
    logged = [json.loads(line) for line in (tmp_path / "exp" / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [4, 8, 12] and all(np.isfinite(r["g_loss"]) for r in logged)


def test_host_read_counter_sees_a_read(tiny_config, tiny_batches):
    """The counter above is not blind: the one-call train_step reads its statistics back."""
    model = TrainingStep(tiny_config(), TrainConfig(), "cpu")
    with HostReads() as counter:
        model.train_step(*tiny_batches(1)[0])
    assert any(read.startswith("tolist in train_step") for read in counter.reads), counter.reads


def test_training_time_is_saved_and_summed_over_every_start(tiny_trainer, tmp_path, capsys):
    from model.checkpoint import Checkpoints
    from training.checkpoint import TrainingState
    from training.loop import Trainer
    from training.start import Start
    first = tiny_trainer(tmp_path / "exp", max_steps=3, checkpoint_steps=3)
    first.run()
    checkpoints = Checkpoints(tmp_path / "exp" / "checkpoint")
    before = TrainingState.load(checkpoints, 3).training_seconds
    assert before > 0
    again = tiny_trainer(tmp_path / "exp", max_steps=6, checkpoint_steps=3)
    resumed = Trainer(again.model, again.settings, again.experiment,
                      Start("resume", 3, TrainingState.load(checkpoints, 3), checkpoints.folder))
    resumed.run()
    assert TrainingState.load(checkpoints, 6).training_seconds > before   # carried over, then added to
    assert "this run has trained for" in capsys.readouterr().out
    import json
    logged = [json.loads(line) for line in (tmp_path / "exp" / "logs" / "train.jsonl").read_text().splitlines()]
    after = [r["train_seconds"] for r in logged if "train_seconds" in r and r["step"] > 3]
    assert after and all(seconds > before for seconds in after)
