"""Run settings: flag > checkpoint > default, one rule per class, applied for real."""
import subprocess
import sys

import pytest
import torch

from model import ModelConfig
from training.checkpoint import TrainingState
from training.config import DeviceConfig, RunConfig, TrainConfig, build_parser, given_flags, resolve_settings
from training.start import Start
from training.step import TrainingStep
from utils.errors import UserError


def flags(*argv):
    return given_flags(build_parser("train").parse_args(["--experiment_dir", "x", *map(str, argv)]))


def saved_state(model_config=ModelConfig(), train_config=TrainConfig(), run_config=RunConfig()):
    """A resumed start whose checkpoint holds these settings."""
    return Start("resume", 0, TrainingState(model_config, train_config, run_config=run_config))


def test_new_run_takes_flags_then_dataclass_defaults():
    s = resolve_settings(flags("--ngf", 32, "--lr", 0.0002, "--batch_size", 8, "--no_augment", "--fine_tune", "3,1"))
    assert s.model == ModelConfig(ngf=32) and s.train == TrainConfig(lr=0.0002)
    assert s.run == RunConfig(batch_size=8, augment=False, fine_tune=(1, 3)) and s.device == DeviceConfig()


def test_parser_defaults_come_from_the_dataclasses():
    given = flags()
    assert all(v is None for k, v in given.items() if k not in ("experiment_dir", "dry_run", "inst_norm", "amp"))
    assert given["amp"] == DeviceConfig().amp   # the shared device flags' default is the dataclass's
    help_text = " ".join(build_parser("train").format_help().split())
    assert "(default: 777)" in help_text and "(default: 0.001)" in help_text and "(default: batch)" in help_text


def test_resume_keeps_the_checkpoint_and_applies_given_flags(capsys):
    state = saved_state(ModelConfig(ngf=16, sn_discriminator=True), TrainConfig(lr=0.0005, g_steps=1),
                        RunConfig(batch_size=4, rotate=True, sample_steps=7))
    s = resolve_settings(flags("--lr", 0.0001, "--sample_steps", 9, "--device", "cpu"), state)
    assert s.model == ModelConfig(ngf=16, sn_discriminator=True)          # architecture: from the checkpoint
    assert s.train == TrainConfig(lr=0.0001, g_steps=1)                    # flag overrides, rest kept
    assert s.run == RunConfig(batch_size=4, rotate=True, sample_steps=9)
    assert s.device.device == "cpu"
    out = capsys.readouterr().out
    assert "--lr 0.0005 -> 0.0001" in out and "--sample_steps 7 -> 9" in out
    # a flag equal to the saved value is no change and prints nothing
    resolve_settings(flags("--batch_size", 4), state)
    assert "changed" not in capsys.readouterr().out


def test_architecture_flag_contradicting_the_checkpoint_is_an_error():
    state = saved_state(ModelConfig(ngf=16))
    assert resolve_settings(flags("--ngf", 16), state).model.ngf == 16
    with pytest.raises(UserError, match="--ngf 32 contradicts the checkpoint being resumed"):
        resolve_settings(flags("--ngf", 32), state)
    with pytest.raises(UserError, match="--sn-generator True contradicts"):
        resolve_settings(flags("--sn-generator"), state)


def test_inst_norm_and_unknown_saved_keys():
    model = resolve_settings(flags("--inst_norm")).model
    assert (model.norm_G, model.norm_D) == ("instance", "instance")
    model = resolve_settings(flags("--norm", "batch", "--norm_D", "none")).model
    assert (model.norm_G, model.norm_D) == ("batch", "none")     # a network's own flag wins over --norm
    assert ModelConfig.from_dict({"norm": "instance"}) == ModelConfig(norm_G="instance", norm_D="instance")
    with pytest.raises(UserError, match="--inst_norm contradicts --norm batch"):
        resolve_settings(flags("--inst_norm", "--norm", "batch"))
    for cls in (ModelConfig, TrainConfig, RunConfig):  # every config treats an unknown key the same way
        with pytest.raises(UserError, match="does not know"):
            cls.from_dict({"from_the_future": 1})


@pytest.mark.parametrize("argv, message", [(("--lr", "nan"), "--lr must be a finite number"),
                                           (("--lr_D", "inf"), "--lr_D must be a finite number"),
                                           (("--batch_size", 0), "--batch_size must be >= 1"),
                                           (("--keep_last", -1), "--keep_last must be >= 0"),
                                           (("--num_workers", -2), "--num_workers must be >= 0")])
def test_bad_values_name_the_flag(argv, message):
    with pytest.raises(UserError, match=message):
        resolve_settings(flags(*argv))


def test_changed_learning_rate_on_resume_reaches_the_optimiser(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(), TrainConfig(lr=0.001))
    model.train_step(*tiny_batches(1)[0])
    model.update_lr()  # scheduled halving: 0.0005 in the optimisers
    state = TrainingState.capture(model)
    same = TrainingStep(tiny_config(), TrainConfig(lr=0.001))
    same.restore_optimizers(state)
    assert same.learning_rates == {"lr_G": 0.0005, "lr_D": 0.0005}   # unchanged flags: the schedule goes on
    changed = TrainingStep(tiny_config(), TrainConfig(lr=0.001, lr_D=0.004))
    changed.restore_optimizers(state)
    assert changed.learning_rates == {"lr_G": 0.0005, "lr_D": 0.004}  # a new --lr_D takes effect at once


@pytest.mark.slow
def test_dry_run_prints_the_resolved_settings(repo_root, tmp_path):
    result = subprocess.run([sys.executable, str(repo_root / "train.py"), "--experiment_dir", str(tmp_path / "e"),
                             "--dry_run", "--ngf", "16", "--lr", "0.0003"], capture_output=True, text=True,
                            cwd=repo_root)
    assert result.returncode == 0, result.stderr
    import json
    printed = json.loads(result.stdout)
    assert printed["model_config"]["ngf"] == 16 and printed["train_config"]["lr"] == 0.0003
    assert printed["run_config"]["batch_size"] == 16 and not (tmp_path / "e").exists()  # nothing written


@pytest.mark.slow
def test_inference_does_not_import_the_training_code(repo_root):
    code = ("import sys, infer\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'training'))\n"
            "from model import Zi2ZiModel\n"
            "print(Zi2ZiModel.__module__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root)
    assert result.returncode == 0, result.stderr
    loaded, zi2zi_import = result.stdout.splitlines()
    assert loaded == "[]", loaded
    assert zi2zi_import == "training.zi2zi"   # zi2zi's `from model import Zi2ZiModel` still works, lazily


def test_untrainable_generator_is_refused_with_the_reason():
    for argv in (("--norm", "none"), ("--norm_G", "none"), ("--sn-generator", "--norm_G", "none")):
        with pytest.raises(UserError, match="--norm_G none \\(or --norm none\\) does not train"):
            resolve_settings(flags(*argv))
    settings = resolve_settings(flags("--sn-generator", "--sn-discriminator", "--norm_D", "none"))
    assert (settings.model.norm_G, settings.model.norm_D) == ("batch", "none")   # the SN-GAN arrangement


def test_compile_is_accepted_with_spectral_norm_on_both_networks():
    settings = resolve_settings(flags("--compile", "--sn-generator", "--sn-discriminator"))
    assert settings.device.compile and settings.model.sn_generator and settings.model.sn_discriminator


@pytest.mark.parametrize("capability, fast", [((8, 0), True), ((9, 0), True), ((7, 5), False)])
def test_a_cuda_gpu_with_bf16_defaults_to_bf16_channels_last_and_fused_adam(monkeypatch, capability, fast):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    device = resolve_settings(flags(), device=cuda).device
    assert (device.amp, device.channels_last, device.fused_adam) == (("bf16", True, True) if fast else
                                                                     ("off", False, True))
    # what the user gives wins; the CPU keeps fp32 NCHW
    opted_out = resolve_settings(flags("--amp", "off", "--no-channels_last"), device=cuda).device
    assert (opted_out.amp, opted_out.channels_last) == ("off", False)
    assert resolve_settings(flags("--channels_last"), device=torch.device("cpu")).device.channels_last
    cpu = resolve_settings(flags(), device=torch.device("cpu")).device
    assert (cpu.amp, cpu.channels_last, cpu.fused_adam) == ("off", False, False)
