"""TrainingStep's iteration, schedule, errors, and checkpoints that resume exactly."""
import copy

import pytest
import torch

from model import (CheckpointError, ModelConfig, TrainConfig, build_generator, export_plain_generator,
                   load_generator, uses_spectral_norm)
from model.checkpoint import available_steps, checkpoint_files, prune_checkpoints, resolve_step
from training.checkpoint import load_checkpoint, save_checkpoint
from training.step import NonFiniteLossError, TrainingStep
from utils.device import resolve_device
from utils.errors import UserError

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
    assert flip_model.flipped_labels.sort().values.tolist() == batch[0].sort().values.tolist()
    assert flipped["d_loss"] > plain["d_loss"]  # one more fake term for D


def test_generate_is_eval_mode_and_deterministic(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(), TrainConfig())
    labels, a, _ = tiny_batches(1)[0]
    assert torch.equal(model.generate(a, labels), model.generate(a, labels))
    assert model.netG.training


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="--device"):
        resolve_device("tpu")
    with pytest.raises(UserError, match="not both"):
        resolve_device("cpu", gpu_ids="0")
    if torch.cuda.is_available():
        assert resolve_device(None).type == "cuda"
        assert resolve_device(None, gpu_ids="0") == torch.device("cuda:0")
    else:
        assert resolve_device(None).type == "cpu"
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_zi2zi_gpu_ids_forms():
    from utils.device import gpu_ids_to_device
    for form in ("cuda:0", "0", ["cuda:0"], ["0"], "0,0"):
        assert gpu_ids_to_device(form) == "cuda:0"
    assert gpu_ids_to_device(["cuda:2"]) == "cuda:2"
    with pytest.raises(UserError, match="names 2 GPUs and one process trains on one GPU.*torchrun"):
        gpu_ids_to_device(["cuda:0", "cuda:1"])
    with pytest.raises(UserError, match="--gpu_ids expects GPUs such as cuda:0"):
        gpu_ids_to_device("gpu0")


# ------------------------------------------------------------------ checkpoints

def _run(model, batches):
    return [model.train_step(*b) for b in batches]


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
    first.epoch = 1
    first.update_lr()
    save_checkpoint(first, tmp_path)
    torch.manual_seed(999)  # a fresh process would start from another RNG state
    resumed = TrainingStep(config, train)
    load_checkpoint(resumed, tmp_path, 2)
    assert resumed.step == 2 and resumed.epoch == 1
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
        load_generator(tmp_path, 5, input_nc=3)


def test_sn_mismatch_says_which_flag(tmp_path, tiny_config):
    model = TrainingStep(tiny_config(sn_discriminator=True), TrainConfig())
    save_checkpoint(model, tmp_path)
    plain = TrainingStep(tiny_config(), TrainConfig())
    with pytest.raises(CheckpointError, match="different architecture.*sn_discriminator"):
        load_checkpoint(plain, tmp_path, 0)
    from model.loading import load_weights
    with pytest.raises(CheckpointError, match="trained with --sn-discriminator; this run has it off"):
        load_weights(plain.netD, checkpoint_files(tmp_path, 0)["D"], "D")
    sn_G = build_generator(tiny_config(sn_generator=True))
    with pytest.raises(CheckpointError, match="trained without --sn-generator; this run has it on"):
        load_weights(sn_G, checkpoint_files(tmp_path, 0)["G"], "G")


def test_shape_mismatch_names_the_flag(tmp_path, tiny_config):
    from model.loading import load_weights
    model = TrainingStep(tiny_config(embedding_num=4), TrainConfig())
    save_checkpoint(model, tmp_path)
    other = build_generator(tiny_config(embedding_num=6))
    with pytest.raises(CheckpointError, match=r"embedder.weight has shape \[4, 16\].*--embedding_num"):
        load_weights(other, checkpoint_files(tmp_path, 0)["G"], "G")
    deeper = build_generator(tiny_config(image_size=64))
    with pytest.raises(CheckpointError, match="--image_size"):
        load_weights(deeper, checkpoint_files(tmp_path, 0)["G"], "G")
    batch_G = build_generator(tiny_config())
    inst = TrainingStep(tiny_config(norm_G="instance", norm_D="instance"), TrainConfig())
    inst.step = 1
    save_checkpoint(inst, tmp_path)
    with pytest.raises(CheckpointError, match="--norm instance or none"):
        load_weights(batch_G, checkpoint_files(tmp_path, 1)["G"], "G")


def test_unreadable_checkpoint_names_the_file(tmp_path):
    (tmp_path / "3_net_G.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="3_net_G.pth"):
        load_generator(tmp_path, 3, norm="batch")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused(tmp_path):
    import pickle
    import os as os_module
    # weights_only loading refuses a pickle that would call arbitrary functions
    (tmp_path / "1_net_G.pth").write_bytes(pickle.dumps(os_module.getcwd))
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_generator(tmp_path, 1, norm="batch")


def test_resolve_step_and_prune(tmp_path, tiny_config):
    model = TrainingStep(tiny_config(), TrainConfig())
    for step in (10, 20, 30):
        model.step = step
        save_checkpoint(model, tmp_path)
    checkpoint_files(tmp_path, 30)["state"].unlink()  # as if interrupted while saving
    assert resolve_step(tmp_path, "latest") == 30
    assert resolve_step(tmp_path, "latest", complete=True) == 20
    with pytest.raises(CheckpointError, match="no checkpoint for step 15"):
        resolve_step(tmp_path, 15)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_step(tmp_path / "empty", "latest")
    assert prune_checkpoints(tmp_path, keep_last=1) == [10, 20]
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


def test_best_pointer_survives_pruning_and_is_dropped_when_stale(tmp_path, tiny_config):
    from model.checkpoint import CheckpointError, prune_checkpoints, read_best, resolve_step
    from training.checkpoint import save_checkpoint
    from training.validation import BestCheckpoint
    model = TrainingStep(tiny_config(), TrainConfig(), "cpu")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        resolve_step(tmp_path, "best")
    for step in (2, 4, 6):
        model.step = step
        save_checkpoint(model, tmp_path)
    with pytest.raises(CheckpointError, match="'best' exists for runs trained with --keep_best"):
        resolve_step(tmp_path, "best")
    best = BestCheckpoint(tmp_path, "ssim", resumed_step=None)
    assert best.improves(0.3) and not best.improves(float("nan"))
    best.record(2, 0.3)
    assert not best.improves(0.2) and best.improves(0.4)
    assert prune_checkpoints(tmp_path, 1) == [4] and resolve_step(tmp_path, "best") == 2   # the best is kept
    assert BestCheckpoint(tmp_path, "ssim", resumed_step=6).value == 0.3          # resumed later: kept
    assert BestCheckpoint(tmp_path, "l1", resumed_step=6).value is None and read_best(tmp_path) is None  # other metric
    BestCheckpoint(tmp_path, "l1", resumed_step=6).record(6, 0.1)
    BestCheckpoint(tmp_path, None, resumed_step=2)   # resumed before the best: that checkpoint will be overwritten
    assert read_best(tmp_path) is None
    (tmp_path / "best.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="best.json is damaged"):
        resolve_step(tmp_path, "best")


def test_keep_best_and_eval_flags_are_checked():
    from training.config import RunConfig
    assert RunConfig().eval_interval == 1000 and RunConfig(eval_steps=50).eval_interval == 50
    with pytest.raises(UserError, match="--keep_best must be one of l1, rmse, psnr, ssim, ink_iou"):
        RunConfig(keep_best="fid")
    with pytest.raises(UserError, match="--keep_best needs validation"):
        RunConfig(keep_best="l1", eval_steps=0)
    with pytest.raises(UserError, match="--eval_count must be >= 2"):
        RunConfig(eval_count=1)


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
