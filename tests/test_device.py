"""The same code on every device: CPU always, CUDA too where a GPU is present (scripts/gpu_check.sh)."""
import pytest
import torch

from data.loader import BatchIterator, PairBank
from model import TrainConfig, load_checkpoint, save_checkpoint
from model.spectral import spectral_norm_layers
from training.step import TrainingStep

SAMPLE = "zi2zi_pytorch_sample.obj"


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_training_steps_checkpoint_and_samples_on_device(device, amp, tiny_config, tiny_batches, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(sn_generator=True, sn_discriminator=True)
    model = TrainingStep(config, TrainConfig(), device, amp=amp)
    assert all(p.device.type == device.type for p in model.netG.parameters())
    stats = [model.train_step(*batch) for batch in tiny_batches(3)]  # CPU batches move over
    assert all(isinstance(v, float) for v in stats[-1].values()) and model.step == 3
    for _, layer in spectral_norm_layers(model.netD):  # power-iteration state stays float32 on the device
        assert layer.weight_u.dtype == torch.float32 and layer.weight_u.device.type == device.type
    fake = model.generate(tiny_batches(1)[0][1], torch.tensor([0, 1, 2, 3]))
    assert fake.device.type == "cpu" and torch.isfinite(fake).all()
    save_checkpoint(model, tmp_path)
    restored = TrainingStep(config, TrainConfig(), device, amp=amp)
    load_checkpoint(restored, tmp_path, 3, restore_rng=False)
    for a, b in zip(model.netG.state_dict().values(), restored.netG.state_dict().values()):
        assert torch.equal(a, b) and b.device.type == device.type


def test_fast_loader_batches_arrive_on_device(device, reference_dir):
    bank = PairBank.from_obj(reference_dir / SAMPLE)
    labels, source, target = next(BatchIterator(bank, 4, device, augment=True, rotate=True, blur=True,
                                                seed=0).epoch(0))
    assert source.device.type == device.type and target.device.type == device.type
    assert source.shape == (4, 1, 256, 256) and labels.device.type == "cpu"   # labels stay on the host
    assert -1 <= source.min() and source.max() <= 1
