"""The fast data path matches zi2zi's per-item path; the speed options keep the losses."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from data.augment import AugmentDraw, augment_float, augment_params, augment_uint8
from data.dataset import DatasetFromObj, split_pair
from data.loader import BatchIterator, PairBank, to_model_input
from training.config import TrainConfig
from training.step import TrainingStep
from model.spectral import spectral_norm_layers
from utils.device import speed_defaults

from conftest import DEVICES

SAMPLE = "zi2zi_pytorch_sample.obj"


def test_bank_decodes_exactly_like_the_dataset(reference_dir):
    bank = PairBank.from_obj(reference_dir / SAMPLE)
    ds = DatasetFromObj(reference_dir / SAMPLE, input_nc=1)
    assert bank.pairs.dtype == torch.uint8 and bank.pairs.shape == (24, 2, 256, 256)
    x = to_model_input(bank.pairs[:3], torch.device("cpu"))
    for i in range(3):
        label, target, source = ds[i]
        assert bank.labels[i].item() == label
        assert torch.equal(x[i, 0], target[0]) and torch.equal(x[i, 1], source[0])   # the same bits


def test_batched_crop_matches_pil_resize_and_crop(reference_dir):
    ds = DatasetFromObj(reference_dir / SAMPLE, input_nc=1)
    target, source = split_pair(ds.decode(0))
    w = h = 256
    nw, nh, sx, sy = 266, 263, 7, 3
    box = (sx, sy, sx + w, sy + h)
    pil_bilinear = np.asarray(target.resize((nw, nh), Image.Resampling.BILINEAR).crop(box), np.float64)
    pil_lanczos = np.asarray(target.resize((nw, nh), Image.Resampling.LANCZOS).crop(box), np.float64)
    draw = AugmentDraw(torch.tensor([nw * 1.0]), torch.tensor([nh * 1.0]), torch.tensor([sx * 1.0]),
                       torch.tensor([sy * 1.0]), torch.tensor([False]), torch.tensor([-1]))
    pair_u8 = PairBank.from_obj(reference_dir / SAMPLE).pairs[:1]
    pair = to_model_input(pair_u8, torch.device("cpu"))
    ours = ((augment_float(pair, draw)[0, 0] + 1) * 127.5).numpy()
    ours_u8 = augment_uint8(pair_u8, draw)[0, 0].numpy().astype(np.float64)
    assert np.abs(ours - ours_u8).mean() < 0.6   # the GPU and CPU paths agree
    original = np.asarray(target, np.float64)
    assert np.abs(ours - pil_bilinear).mean() < 1.0     # same geometry, same filter: within a level
    assert np.abs(ours - pil_lanczos).mean() < 2.5      # zi2zi's LANCZOS differs only at edges
    assert np.abs(ours - original).mean() > 5           # and it did move the glyph


def test_augmentation_distribution_matches_zi2zi():
    n, w = 20000, 256
    g = torch.Generator().manual_seed(0)
    draw = augment_params(n, w, w, rotate=True, blur=True, generator=g)
    theta, blur = draw.theta(w, w), draw.blur_index
    turned = theta[:, 0, 0] < 0
    assert torch.equal(turned, draw.turn)
    scale = theta[:, 0, 0].abs()
    nw = torch.round(w / scale)
    # the same draw as zi2zi: nw = int(m * w) + 1 with m ~ U(1, 1.05); shift ~ randint(0, nw - w - 1)
    rng = random.Random(0)
    ref_nw = torch.tensor([int(rng.uniform(1.0, 1.05) * w) + 1 for _ in range(n)], dtype=torch.float64)
    assert nw.min() >= w + 1 and nw.max() <= int(1.05 * w) + 1
    assert nw.mean().item() == pytest.approx(ref_nw.mean().item(), abs=0.1)
    shift = torch.round(((theta[:, 0, 2] + 1) * nw - w) / 2)  # the turn leaves the crop offset alone
    assert shift.min() == 0 and (shift <= nw - w - 1).all()
    assert shift.float().mean().item() == pytest.approx(((nw - w - 1) / 2).mean().item(), abs=0.1)
    assert turned.float().mean().item() == pytest.approx(0.05, abs=0.006)   # p 0.1, then 0 or 180
    assert (blur >= 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert set(blur[blur >= 0].tolist()) == {0, 1, 2}
    bold = augment_params(n, w, w, bold=True, generator=g)
    assert bold.nw.max() > int(1.15 * w)


@pytest.mark.parametrize("turn", [False, True])
def test_every_backend_applies_the_same_draw(reference_dir, turn):
    """PIL (zi2zi's path), the float grid_sample (GPU) and the uint8 (CPU) paths: one geometry."""
    from data.augment import augment_pil
    pair_u8 = PairBank.from_obj(reference_dir / SAMPLE).pairs[:1]
    draw = AugmentDraw(torch.tensor([266.0]), torch.tensor([263.0]), torch.tensor([7.0]), torch.tensor([2.0]),
                       torch.tensor([turn]), torch.tensor([-1]))
    as_float = ((augment_float(to_model_input(pair_u8, torch.device("cpu")), draw)[0] + 1) * 127.5).numpy()
    as_uint8 = augment_uint8(pair_u8, draw)[0].numpy().astype(np.float64)
    target, source = (Image.fromarray(pair_u8[0, k].numpy()) for k in (0, 1))
    as_pil = np.stack([np.asarray(img, np.float64) for img in augment_pil(target, source, draw)])
    assert np.abs(as_float - as_uint8).mean() < 0.6
    assert np.abs(as_float - as_pil).mean() < 2.5       # LANCZOS vs bilinear: edges only
    unturned = augment_uint8(pair_u8, AugmentDraw(draw.nw, draw.nh, draw.sx, draw.sy, torch.tensor([False]),
                                                  draw.blur_index))[0].numpy().astype(np.float64)
    if turn:  # the turn is the unturned crop rotated 180 degrees, on every backend
        assert np.abs(as_float - unturned[:, ::-1, ::-1]).mean() < 0.6
        assert np.abs(as_pil - unturned[:, ::-1, ::-1]).mean() < 2.5
    else:
        assert np.array_equal(as_uint8, unturned)


def test_both_halves_get_the_same_augmentation():
    pair = torch.rand(4, 1, 64, 64) * 2 - 1
    x = torch.cat([pair, pair], 1)
    draw = augment_params(4, 64, 64, rotate=True, blur=True, generator=torch.Generator().manual_seed(3))
    out = augment_float(x, draw)
    assert torch.equal(out[:, 0], out[:, 1]) and not torch.equal(out, x)
    x8 = torch.randint(0, 256, (4, 1, 64, 64), dtype=torch.uint8).expand(-1, 2, -1, -1).contiguous()
    out8 = augment_uint8(x8, draw)
    assert torch.equal(out8[:, 0], out8[:, 1]) and not torch.equal(out8, x8)


def test_resumed_epoch_sees_the_same_remaining_batches(reference_dir):
    bank = PairBank.from_obj(reference_dir / SAMPLE)
    it = BatchIterator(bank, 5, "cpu", augment=True, rotate=True, blur=True, seed=11)
    full = list(it.epoch(2))
    resumed = list(it.epoch(2, start_batch=2))
    assert len(full) == 4 and len(resumed) == 2
    for a, b in zip(full[2:], resumed):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(full[0][1], list(it.epoch(3))[0][1])  # another epoch, another order
    labels, source, target = next(BatchIterator(bank, 5, "cpu", input_nc=3).epoch(0))
    assert source.shape == (5, 3, 256, 256) and torch.equal(source[:, 0], source[:, 2])


def test_fine_tune_labels_filter_the_bank(reference_dir):
    from data.obj import ObjFormatError
    assert len(PairBank.from_obj(reference_dir / SAMPLE, labels={2})) == 24
    with pytest.raises(ObjFormatError, match="no record has a label in \\[0\\]"):
        PairBank.from_obj(reference_dir / SAMPLE, labels={0})


# Each speed option against the plain fp32 path: same seed, same batches, three steps. GAN losses
# amplify reordered float arithmetic step by step; these bound three steps. Every option runs
# with SN on both networks: its power iteration is part of what compile must trace.
SPEED_OPTIONS = {
    "channels_last": (dict(channels_last=True), 1e-2),
    "amp bf16": (dict(amp="bf16"), 5e-2),
    "amp fp16": (dict(amp="fp16"), 1e-1),   # measured on an H200 (torch 2.11): g_loss 8% off within 3 steps
    "compile": (dict(compile=True), 1e-2),
}


# fp16 autocast with a GradScaler is the CUDA path (the CPU runs bf16); compile takes minutes on the CPU
SPEED_CASES = [pytest.param(device, name, marks=[pytest.mark.slow] if name == "compile" else [],
                            id=f"{device}-{name}")
               for device in DEVICES for name in SPEED_OPTIONS if not (name == "amp fp16" and device == "cpu")]


@pytest.mark.parametrize("device_name, option", SPEED_CASES)
def test_speed_options_keep_the_losses(device_name, option, tiny_config, tiny_batches):
    device = torch.device(device_name)
    options, tolerance = SPEED_OPTIONS[option]
    config = tiny_config(use_dropout=False, sn_generator=True, sn_discriminator=True)
    batches = tiny_batches(3)

    def losses(**kw):
        torch.manual_seed(0)
        model = TrainingStep(config, TrainConfig(), device, **kw)
        out, skipped = [], []
        for i, batch in enumerate(batches):
            scales = (model.scaler_G.get_scale(), model.scaler_D.get_scale())
            out.append(model.train_step(*batch))
            if (model.scaler_G.get_scale(), model.scaler_D.get_scale()) < scales:
                skipped.append(i)   # fp16's scaler lowers its scale when it skips an update
        return model, out, skipped

    _, plain, _ = losses()
    model, fast, skipped = losses(**options)
    # after a skipped update the weights differ by design: compare up to the first skip
    compared = skipped[0] + 1 if skipped else len(batches)
    for a, b in zip(plain[:compared], fast[:compared]):
        for key in ("d_loss", "g_loss", "l1_loss"):
            assert b[key] == pytest.approx(a[key], rel=tolerance, abs=1e-3), key
    for _, layer in spectral_norm_layers(model.netG):  # SN's power iteration state stays float32
        assert layer.weight_u.dtype == torch.float32 and torch.isfinite(layer.weight_u).all()


@pytest.mark.slow
@pytest.mark.parametrize("device_name", DEVICES)
def test_compiled_spectral_norm_traces_whole_and_compiles_once(device_name, tiny_config, tiny_batches):
    """SN's power iteration is plain tensor code: no graph break, and the graphs compiled in the first
    step (G, G's encoder, D with and without gradients) serve every later step, D's requires_grad
    switching on and off included, at the device's default speed settings. Compiled and eager losses
    agree over four steps: to 1e-4 (relative) in fp32 on the CPU (measured: 1e-7), to 5e-2 in bf16."""
    from torch._dynamo.utils import counters
    import torch._dynamo
    device = torch.device(device_name)
    speed = speed_defaults(device)   # on a GPU with bf16: bf16 + channels_last, what train.py runs there
    tolerance = 1e-4 if speed["amp"] == "off" else 5e-2
    config = tiny_config(use_dropout=False, sn_generator=True, sn_discriminator=True)
    batches = tiny_batches(4)

    def losses(compile):
        torch.manual_seed(0)
        model = TrainingStep(config, TrainConfig(), device, compile=compile, **speed)
        out, graphs = [], []
        for batch in batches:
            out.append(model.train_step(*batch))
            graphs.append(counters["stats"]["unique_graphs"])
        return model, out, graphs

    torch._dynamo.reset()
    counters.clear()
    eager_model, eager, _ = losses(False)
    compiled_model, compiled, graphs = losses(True)
    for a, b in zip(eager, compiled):
        for key in ("d_loss", "g_loss", "l1_loss"):
            assert b[key] == pytest.approx(a[key], rel=tolerance, abs=1e-5), key
    breaks = dict(counters["graph_break"])
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 4):
        # torch 2.3's dynamo cannot trace the hook's Module.__setattr__ of the normalised weight: one
        # break per SN layer (23 here), the losses as above. Newer torch (2.11, 2.14 seen) traces it.
        breaks = {reason: n for reason, n in breaks.items() if "Module.__setattr__" not in reason}
    assert not breaks, breaks
    assert graphs[0] > 0 and graphs[1:] == [graphs[0]] * (len(batches) - 1), graphs   # nothing recompiled
    compiled_state = compiled_model.netD.state_dict()
    for name, a in eager_model.netD.state_dict().items():   # SN's state alike: weight_orig, weight_u, weight_v
        if name.endswith(("weight_orig", "weight_u", "weight_v")):
            b = compiled_state[name]
            assert (a - b).norm() <= 10 * tolerance * a.norm(), name


def test_sync_free_blur_matches_the_masked_blur():
    """The GPU's blur (every sigma on the whole batch, then torch.where) = blurring only the picked samples."""
    from data.augment import blur_all_select, blur_picked
    pairs = torch.rand(8, 2, 32, 32) * 2 - 1
    blur_index = torch.tensor([-1, 0, 1, 2, -1, 2, 0, -1])
    picked = blur_picked(pairs.clone(), blur_index)
    selected = blur_all_select(pairs.clone(), blur_index)
    assert torch.allclose(picked, selected, atol=1e-6)
    assert torch.equal(selected[blur_index == -1], pairs[blur_index == -1])
    assert not torch.allclose(selected[1], pairs[1], atol=1e-2)   # a picked sample is blurred
