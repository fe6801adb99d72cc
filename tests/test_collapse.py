"""The collapse watch: a run whose discriminator wins outright is reported while it happens."""
import json

import pytest
import torch

from training.stats import CollapseWatch, ink_share


def steps(n, d_real, d_fake, l1):
    return [{"d_real_prob": d_real, "d_fake_prob": d_fake, "l1_loss": l1} for _ in range(n)]


def test_saturated_discriminator_with_flat_l1_is_reported_once():
    watch = CollapseWatch(window=10, d_real=0.99, d_fake=0.01)
    assert all(watch.update(s) is None for s in steps(9, 0.999, 0.001, 35.0))  # window not full yet
    message = watch.update(steps(1, 0.999, 0.001, 35.0)[0])
    assert message and "D(real) = 0.999" in message and "--norm_G" in message and "--lr_D" in message
    assert watch.update(steps(1, 0.999, 0.001, 35.0)[0]) is None               # said once


@pytest.mark.parametrize("d_real, d_fake, l1s", [
    (0.999, 0.001, [40.0 - i for i in range(10)]),   # D wins but G is still learning
    (0.7, 0.001, [35.0] * 10),                        # D not saturated on real pairs
    (0.999, 0.2, [35.0] * 10)])                       # G still fools D sometimes
def test_healthy_or_learning_runs_are_not_reported(d_real, d_fake, l1s):
    watch = CollapseWatch(window=10, d_real=0.99, d_fake=0.01)
    assert all(watch.update({"d_real_prob": d_real, "d_fake_prob": d_fake, "l1_loss": l1}) is None for l1 in l1s)


def test_blank_samples_are_reported():
    target = torch.ones(4, 1, 16, 16)
    target[:, :, 4:12, 6:9] = -1                      # strokes: ~9% ink
    watch = CollapseWatch(window=10, d_real=0.99, d_fake=0.01)
    assert watch.blank_samples(ink_share(target * 0.9), ink_share(target)) is None
    message = watch.blank_samples(ink_share(torch.ones_like(target)), ink_share(target))
    assert message and "blank" in message


def _settings(**run):
    from model import ModelConfig
    from training.config import TrainConfig
    from training.config import DeviceConfig, RunConfig, Settings
    return Settings(ModelConfig(embedding_num=2, embedding_dim=16, ngf=16, ndf=16, image_size=32),
                    TrainConfig(lr=1e-12, lr_D=0.002),   # G is held still; D is free to win
                    RunConfig(batch_size=16, log_steps=5, checkpoint_steps=20, sample_steps=1000, **run),
                    DeviceConfig(device="cpu"))


def _blank_generator_trainer(bundled_font_data, tmp_path, **run):
    from training.loop import Trainer
    from utils.experiment import Experiment
    from training.step import TrainingStep
    settings = _settings(**run)
    torch.manual_seed(0)
    model = TrainingStep(settings.model, settings.train, "cpu")
    with torch.no_grad():  # a generator that draws blank paper: tanh of a large bias, white everywhere
        model.netG.model.up[1].weight.zero_()
        model.netG.model.up[1].bias.fill_(5.0)
    return Trainer(model, settings, Experiment.at(tmp_path / "exp", bundled_font_data))


@pytest.mark.slow
def test_a_run_driven_into_collapse_is_reported_in_the_log(bundled_font_data, tmp_path):
    trainer = _blank_generator_trainer(bundled_font_data, tmp_path, max_steps=60, collapse_window=20)
    trainer.run()
    rows = [r for r in (json.loads(line) for line in (tmp_path / "exp" / "logs" / "train.jsonl").read_text().splitlines())
            if "val_l1" not in r]   # training rows, not the held-out ones
    events = [r for r in rows if r.get("event") == "collapse"]
    assert len(events) == 1 and "D(real)" in events[0]["message"] and events[0]["step"] >= 20
    last = [r for r in rows if "d_loss" in r][-1]
    assert last["d_real_prob"] > 0.99 and last["d_fake_prob"] < 0.01 and last["step"] == 60


@pytest.mark.slow
def test_stop_on_collapse_keeps_the_earlier_checkpoints(bundled_font_data, tmp_path):
    from model.checkpoint import available_steps
    from training.loop import RunCollapsed
    trainer = _blank_generator_trainer(bundled_font_data, tmp_path, max_steps=200, collapse_window=20,
                                       stop_on_collapse=True)
    with pytest.raises(RunCollapsed, match="stopped at step \\d+ \\(--stop_on_collapse\\)"):
        trainer.run()
    stopped = trainer.model.step
    assert stopped < 200
    saved = available_steps(tmp_path / "exp" / "checkpoint")
    assert saved == list(range(20, stopped, 20))   # nothing saved at the stop itself


@pytest.mark.slow
@pytest.mark.parametrize("norm_G, norm_D, sn_D", [("batch", "none", True),     # the SN-GAN arrangement
                                                  ("batch", "none", False),    # D without norm, no SN
                                                  ("instance", "instance", False)])
def test_recommended_norm_settings_learn_on_the_bundled_fonts(bundled_font_data, tmp_path, norm_G, norm_D, sn_D):
    from data.loader import PairBank
    from model import ModelConfig
    from training.config import TrainConfig
    from training.config import DeviceConfig, RunConfig, Settings
    from training.loop import Trainer
    from utils.experiment import Experiment
    from training.step import TrainingStep
    settings = Settings(ModelConfig(embedding_num=2, embedding_dim=16, ngf=16, ndf=16, image_size=32,
                                    norm_G=norm_G, norm_D=norm_D, sn_discriminator=sn_D),
                        TrainConfig(), RunConfig(batch_size=16, max_steps=150, log_steps=10, sample_steps=50,
                                                 checkpoint_steps=150, random_seed=777), DeviceConfig(device="cpu"))
    torch.manual_seed(777)
    model = TrainingStep(settings.model, settings.train, "cpu")
    trainer = Trainer(model, settings, Experiment.at(tmp_path / "exp", bundled_font_data))
    trainer.run()
    targets = PairBank.from_obj(bundled_font_data / "train.obj").batch().target
    blank_l1 = 100 * (1 - targets).abs().mean().item()   # the weighted L1 of drawing nothing at all
    rows = [r for r in (json.loads(line) for line in (tmp_path / "exp" / "logs" / "train.jsonl").read_text().splitlines())
            if "val_l1" not in r]   # training rows, not the held-out ones
    assert not [r for r in rows if r.get("event") == "collapse"]
    late_l1 = sum(r["l1_loss"] for r in rows[-3:]) / 3
    assert late_l1 < 0.75 * blank_l1, (late_l1, blank_l1)
    assert rows[-1]["d_real_prob"] < 0.99 or rows[-1]["d_fake_prob"] > 0.01   # D has not won outright
