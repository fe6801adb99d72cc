"""Checkpoints: zi2zi-pytorch's files, complete and atomic saves, exact resume, strict loading that
names the flag, damaged files skipped or named, best.json and pruning, the SN export."""
import dataclasses
import os
import pickle

import pytest
import torch

from model import (CheckpointError, ModelConfig, build_generator, export_plain_generator, load_generator,
                   uses_spectral_norm)
from training.config import TrainConfig
from model.checkpoint import Checkpoints, available_steps, resolve_step
from model.config import given_architecture
from training.checkpoint import load_checkpoint, save_checkpoint
from training.step import TrainingStep


def _run(model, batches):
    return [model.train_step(*b) for b in batches]


def _save_steps(model, folder, steps):
    for step in steps:
        model.step = step
        save_checkpoint(model, folder)


@pytest.mark.parametrize("sn", [False, True])
def test_resume_continues_the_same_run(tmp_path, sn, tiny_config, tiny_batches):
    config = tiny_config(sn_generator=sn, sn_discriminator=sn)
    train = TrainConfig(flip_labels=True, lr_D=0.002)
    batches = tiny_batches(4)
    torch.manual_seed(123)
    straight = _run(TrainingStep(config, train), batches)

    torch.manual_seed(123)
    first = TrainingStep(config, train)
    _run(first, batches[:2])
    first.update_lr()
    save_checkpoint(first, tmp_path, epoch=1, batches_done_in_epoch=0)
    torch.manual_seed(999)  # a fresh process would start from another RNG state
    resumed = TrainingStep(config, train)
    state = load_checkpoint(resumed, tmp_path, 2)
    assert resumed.step == 2 and state.epoch == 1
    assert resumed.learning_rates == first.learning_rates
    # undo the LR change for the comparison with the straight run
    for opt in (resumed.optimizer_G, resumed.optimizer_D):
        for group in opt.param_groups:
            group["lr"] *= 2
    rest = _run(resumed, batches[2:])
    for want, got in zip(straight[2:], rest):
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-6, rel=1e-6), key


def test_checkpoint_files_are_plain_zi2zi_state_dicts(tmp_path, reference_dir):
    import json
    model = TrainingStep(ModelConfig(), TrainConfig())
    model.step = 7
    files = save_checkpoint(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7_net_D.pth", "7_net_G.pth", "7_state.pth"]
    layout = json.loads((reference_dir / "zi2zi_pytorch_state_dict_layout.json").read_text())[
        "input_nc=1,embedding_num=40,embedding_dim=128,ngf=64,ndf=64,image_size=256"]
    for name in ("G", "D"):
        sd = torch.load(files[name], weights_only=True)
        assert {k: list(v.shape) for k, v in sd.items()} == layout[name]
    state = torch.load(files["state"], weights_only=True)
    assert state["model_config"] == ModelConfig().to_dict()
    assert state["step"] == 7 and {"optimizer_G", "optimizer_D", "rng", "train_config"} <= set(state)


def test_zi2zi_pytorch_checkpoint_loads_without_config(tmp_path, reference_dir):
    import shutil
    shutil.copy(reference_dir / "zi2zi_pytorch_ref_net_G.pth", tmp_path / "5_net_G.pth")
    shutil.copy(reference_dir / "zi2zi_pytorch_ref_net_D.pth", tmp_path / "5_net_D.pth")
    G, config, step = load_generator(tmp_path, "latest")
    assert step == 5
    assert (config.input_nc, config.ngf, config.ndf, config.embedding_num, config.embedding_dim,
            config.image_size, config.norm_G, config.norm_D) == (1, 8, 8, 4, 16, 256, "batch", "batch")
    io = torch.load(reference_dir / "zi2zi_pytorch_ref_io.pth", weights_only=True)
    with torch.no_grad():
        fake, _ = G(io["x"].clone(), io["labels"])
    assert torch.allclose(fake, io["fake_B"], atol=1e-5)
    with pytest.raises(CheckpointError, match="--input_nc 3 contradicts"):
        load_generator(tmp_path, 5, given={"input_nc": 3})


def test_sn_mismatch_says_which_flag(tmp_path, tiny_config):
    model = TrainingStep(tiny_config(sn_discriminator=True), TrainConfig())
    save_checkpoint(model, tmp_path)
    plain = TrainingStep(tiny_config(), TrainConfig())
    with pytest.raises(CheckpointError, match="different architecture.*sn_discriminator"):
        load_checkpoint(plain, tmp_path, 0)
    from model.loading import load_weights
    with pytest.raises(CheckpointError, match="trained with --sn-discriminator; this run has it off"):
        load_weights(plain.netD, Checkpoints(tmp_path).files(0)["D"], "D")
    sn_G = build_generator(tiny_config(sn_generator=True))
    with pytest.raises(CheckpointError, match="trained without --sn-generator; this run has it on"):
        load_weights(sn_G, Checkpoints(tmp_path).files(0)["G"], "G")


def test_shape_mismatch_names_the_flag(tmp_path, tiny_config):
    from model.loading import load_weights
    model = TrainingStep(tiny_config(embedding_num=4), TrainConfig())
    save_checkpoint(model, tmp_path)
    other = build_generator(tiny_config(embedding_num=6))
    with pytest.raises(CheckpointError, match=r"embedder.weight has shape \[4, 16\].*--embedding_num"):
        load_weights(other, Checkpoints(tmp_path).files(0)["G"], "G")
    deeper = build_generator(tiny_config(image_size=64))
    with pytest.raises(CheckpointError, match="--image_size"):
        load_weights(deeper, Checkpoints(tmp_path).files(0)["G"], "G")
    batch_G = build_generator(tiny_config())
    inst = TrainingStep(tiny_config(norm_G="instance", norm_D="instance"), TrainConfig())
    inst.step = 1
    save_checkpoint(inst, tmp_path)
    with pytest.raises(CheckpointError, match="--norm instance or none"):
        load_weights(batch_G, Checkpoints(tmp_path).files(1)["G"], "G")


def test_unreadable_checkpoint_names_the_file(tmp_path):
    (tmp_path / "3_net_G.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="3_net_G.pth"):
        load_generator(tmp_path, 3, given=given_architecture({"norm": "batch"}))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused(tmp_path):
    import pickle
    import os as os_module
    # weights_only loading refuses a pickle that would call arbitrary functions
    (tmp_path / "1_net_G.pth").write_bytes(pickle.dumps(os_module.getcwd))
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_generator(tmp_path, 1, given=given_architecture({"norm": "batch"}))


def test_resolve_step_and_prune(tmp_path, tiny_config):
    model = TrainingStep(tiny_config(), TrainConfig())
    for step in (10, 20, 30):
        model.step = step
        save_checkpoint(model, tmp_path)
    Checkpoints(tmp_path).files(30)["state"].unlink()  # as if interrupted while saving
    assert resolve_step(tmp_path, "latest") == 30
    assert resolve_step(tmp_path, "latest", complete=True) == 20
    with pytest.raises(CheckpointError, match="no checkpoint for step 15"):
        resolve_step(tmp_path, 15)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_step(tmp_path / "empty", "latest")
    assert Checkpoints(tmp_path).prune(1) == [10, 20]
    assert available_steps(tmp_path) == [30]
    assert not list(tmp_path.glob("*.tmp"))


def test_export_folds_spectral_norm(tmp_path, tiny_config):
    torch.manual_seed(0)
    G = build_generator(tiny_config(sn_generator=True))
    G.train()
    with torch.no_grad():  # a few power iterations, as in training
        for _ in range(3):
            G(torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))
    G.eval()
    x, labels = torch.randn(3, 1, 32, 32), torch.tensor([0, 2, 3])
    with torch.no_grad():
        before, _ = G(x.clone(), labels)
    sd = export_plain_generator(G, tmp_path / "plain_G.pth")
    assert not uses_spectral_norm(sd) and not any(k.endswith(("_u", "_v")) for k in sd)
    plain = build_generator(tiny_config())
    plain.load_state_dict(torch.load(tmp_path / "plain_G.pth", weights_only=True))
    with torch.no_grad():
        after, _ = plain.eval()(x.clone(), labels)
    assert torch.allclose(before, after, atol=1e-6)
    assert uses_spectral_norm(G.state_dict())  # the original is untouched


def test_export_plain_of_a_config_less_checkpoint_uses_the_norm_given(tmp_path, tiny_config):
    """zi2zi-pytorch's files alone (no state file) with instance norm: the architecture the user
    confirmed with --norm builds the discriminator too, which the weights alone cannot tell."""
    from model import build_discriminator
    from model.loading import load_generator
    from model.plain import export_plain
    config = tiny_config(norm_G="instance", norm_D="instance")
    torch.manual_seed(0)
    files = Checkpoints(tmp_path).files(5)
    torch.save(build_generator(config).state_dict(), files["G"])
    torch.save(build_discriminator(config).state_dict(), files["D"])
    netG, found, step = load_generator(tmp_path, "latest", given=given_architecture({"norm": "instance"}))
    lines = export_plain(tmp_path, step, netG, found, tmp_path / "plain")
    plain = tmp_path / "plain"
    assert found == config
    assert [line.split(":")[0] for line in lines[:2]] == [f"wrote {plain / '5_net_G.pth'}", f"wrote {plain / '5_net_D.pth'}"]
    plain_D = build_discriminator(config)
    plain_D.load_state_dict(torch.load(plain / "5_net_D.pth", weights_only=True))
    assert all(torch.equal(plain_D.state_dict()[k], v) for k, v in torch.load(files["D"], weights_only=True).items())


def test_best_pointer_survives_pruning_and_is_dropped_when_stale(tmp_path, tiny_config):
    from model.checkpoint import CheckpointError, Checkpoints, resolve_step
    from training.checkpoint import save_checkpoint
    from model.checkpoint import BestCheckpoint
    model = TrainingStep(tiny_config(), TrainConfig(), "cpu")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        resolve_step(tmp_path, "best")
    for step in (2, 4, 6):
        model.step = step
        save_checkpoint(model, tmp_path)
    with pytest.raises(CheckpointError, match="'best' exists for runs trained with --keep_best"):
        resolve_step(tmp_path, "best")
    folder = Checkpoints(tmp_path)
    best = BestCheckpoint(folder, "ssim", resumed_step=None, higher_is_better=True)
    assert best.improves(0.3) and not best.improves(float("nan"))
    best.record(2, 0.3)
    assert not best.improves(0.2) and best.improves(0.4)
    assert Checkpoints(tmp_path).prune(1) == [4] and resolve_step(tmp_path, "best") == 2   # the best is kept
    assert BestCheckpoint(folder, "ssim", resumed_step=6).value == 0.3          # resumed later: kept
    assert BestCheckpoint(folder, "l1", resumed_step=6).value is None and folder.best() is None  # other metric
    BestCheckpoint(folder, "l1", resumed_step=6, higher_is_better=False).record(6, 0.1)
    BestCheckpoint(folder, None, resumed_step=2)   # resumed before the best: that checkpoint will be overwritten
    assert folder.best() is None
    (tmp_path / "best.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="best.json is damaged"):
        resolve_step(tmp_path, "best")


def test_adam_betas_given_on_resume_take_effect_in_both_optimisers(tmp_path, tiny_config):
    first = TrainingStep(tiny_config(), TrainConfig())
    first.step = 3
    save_checkpoint(first, tmp_path)
    kept = TrainingStep(tiny_config(), TrainConfig())
    load_checkpoint(kept, tmp_path, 3)
    changed = TrainingStep(tiny_config(), TrainConfig(beta1=0.9, beta2=0.99))
    load_checkpoint(changed, tmp_path, 3)
    for optimizer in (kept.optimizer_G, kept.optimizer_D):
        assert all(group["betas"] == (0.5, 0.999) for group in optimizer.param_groups)
    for optimizer in (changed.optimizer_G, changed.optimizer_D):
        assert all(group["betas"] == (0.9, 0.99) for group in optimizer.param_groups)


def test_latest_skips_a_damaged_newest_checkpoint(tmp_path, tiny_config, capsys):
    _save_steps(TrainingStep(tiny_config(), TrainConfig()), tmp_path, (1, 2))
    g2 = Checkpoints(tmp_path).files(2)["G"]
    g2.write_bytes(g2.read_bytes()[:2000])   # a copy cut short
    assert resolve_step(tmp_path, "latest") == 1
    assert "skipping checkpoint step 2" in capsys.readouterr().err
    assert load_generator(tmp_path, "latest")[2] == 1
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path, 2)
    assert str(g2) in str(err.value) and "weights_only" not in str(err.value)


def test_resume_latest_skips_a_damaged_newest_complete_checkpoint(tmp_path, tiny_config, capsys):
    from training.config import build_parser, given_flags
    from training.start import find_start
    _save_steps(TrainingStep(tiny_config(), TrainConfig()), tmp_path, (1, 2))
    state = Checkpoints(tmp_path).files(2)["state"]
    state.write_bytes(state.read_bytes()[:500])   # the newest run state cut short
    flags = given_flags(build_parser("train").parse_args(["--experiment_dir", str(tmp_path), "--resume", "latest"]))
    start = find_start(flags, tmp_path)
    assert (start.kind, start.step) == ("resume", 1)
    assert "skipping checkpoint step 2" in capsys.readouterr().err


def test_checkpoint_with_non_tensors_names_file_and_key(tmp_path, tiny_config):
    from model import build_generator
    state = build_generator(tiny_config()).state_dict()
    state["model.down.0.weight"] = [1, 2, 3]
    torch.save(state, tmp_path / "1_net_G.pth")
    with pytest.raises(CheckpointError, match=r"1_net_G.pth: key 'model.down.0.weight' holds a list, not a tensor"):
        load_generator(tmp_path, 1)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_in_a_state_file_is_refused(tmp_path, tiny_config):
    from model.checkpoint import Checkpoints
    model = TrainingStep(tiny_config(), TrainConfig())
    save_checkpoint(model, tmp_path)
    Checkpoints(tmp_path).files(0)["state"].write_bytes(pickle.dumps(os.getcwd))
    with pytest.raises(CheckpointError, match="refused because loading them could run code"):
        Checkpoints(tmp_path).read_state(0)


def test_a_checkpoint_that_cannot_be_completed_leaves_none_of_its_files(tmp_path, tiny_config, monkeypatch):
    from model import checkpoint as folder_module
    from training import checkpoint
    from training.step import TrainingStep
    model = TrainingStep(tiny_config(), device="cpu")
    model.step = 3
    real = folder_module.atomic_torch_save

    def state_does_not_fit(obj, path):
        if str(path).endswith("_state.pth"):
            raise OSError(28, "No space left on device")
        return real(obj, path)
    monkeypatch.setattr(folder_module, "atomic_torch_save", state_does_not_fit)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(model, tmp_path)
    assert list(tmp_path.iterdir()) == []   # G and D of step 3 went too: all three or none


def _layout(value):
    """The shape of a saved state: its keys and the types of its leaves, recursively."""
    if isinstance(value, dict):
        return {key: _layout(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_layout(item) for item in value]
    return type(value).__name__


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_a_release_checkpoint_resumes_and_todays_files_have_its_layout(reference_dir, tmp_path):
    from training.checkpoint import TrainingState
    release = Checkpoints(reference_dir / "release_checkpoint")
    state = TrainingState.load(release, 2)
    assert (state.step, state.epoch, state.batches_done_in_epoch) == (2, 1, 1)
    assert state.model_config == ModelConfig(input_nc=1, embedding_num=3, embedding_dim=4, ngf=2, ndf=2,
                                             image_size=32, norm_D="none", sn_generator=True, sn_discriminator=True)
    assert (state.train_config.lr, state.train_config.lr_D, state.run_config.batch_size) == (0.002, 0.001, 4)
    saved = release.read_state(2)
    written = state.to_dict()
    # read and written back, nothing lost or changed; fields added since the release take their defaults
    assert _same({key: written[key] for key in saved}, saved)
    added = {f.name: f.default for f in dataclasses.fields(TrainingState) if f.name not in saved}
    assert all(written[name] == default for name, default in added.items())
    model = TrainingStep(state.model_config, state.train_config)
    load_checkpoint(model, release.folder, 2)
    assert model.step == 2 and model.learning_rates == {"lr_G": 0.002, "lr_D": 0.001}
    assert torch.equal(model.netG.state_dict()["embedder.weight"],
                       torch.load(release.files(2)["G"], weights_only=True)["embedder.weight"])
    model.train_step(torch.tensor([0, 1, 2, 0]), torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 32, 32))
    save_checkpoint(model, tmp_path, epoch=1, batches_done_in_epoch=2, run_config=state.run_config)
    today = Checkpoints(tmp_path)
    ours = today.read_state(3)
    # the release reads what today writes: its keys, laid out as it wrote them (it reads by key, so it
    # passes over the fields added since)
    assert _layout({key: ours[key] for key in saved}) == _layout(saved) and set(ours) == set(saved) | set(added)
    for net in ("G", "D"):
        assert (torch.load(today.files(3)[net], weights_only=True).keys()
                == torch.load(release.files(2)[net], weights_only=True).keys())


def test_state_files_of_earlier_layouts_are_upgraded_in_one_place(tmp_path, tiny_config):
    from training.checkpoint import TrainingState
    from training.config import RunConfig
    model = TrainingStep(tiny_config(norm_G="instance", norm_D="instance"), TrainConfig())
    current = TrainingState.capture(model, epoch=2, batches_done_in_epoch=5,
                                    run_config=RunConfig(batch_size=4, rotate=True)).to_dict()
    earliest = {k: v for k, v in current.items() if k not in ("run_config", "batches_done_in_epoch", "scaler_G",
                                                              "scaler_D")}
    architecture = dict(earliest["model_config"])
    del architecture["norm_G"], architecture["norm_D"]
    earliest["model_config"] = {**architecture, "norm": "instance"}   # one norm for both networks
    earliest["extra"] = {"batches_done_in_epoch": 5,
                         "resumed_settings": {"batch_size": 4, "rotate": True, "no_augment": True, "gone": 1}}
    state = TrainingState.from_dict(earliest)
    assert state.model_config == model.config and state.batches_done_in_epoch == 5 and state.epoch == 2
    assert state.run_config == RunConfig(batch_size=4, rotate=True, augment=False)
    assert state.scaler_G == {} and state.scaler_D == {}
