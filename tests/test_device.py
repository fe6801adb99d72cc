"""The same code on every device: CPU always, CUDA too where a GPU is present (scripts/gpu_check.sh)."""
import pytest
import torch

from data.loader import BatchIterator, PairBank
from training.config import TrainConfig
from training.checkpoint import load_checkpoint, save_checkpoint
from model.spectral import spectral_norm_layers
from training.step import TrainingStep
from utils.device import choose_device
from utils.errors import UserError

SAMPLE = "zi2zi_pytorch_sample.obj"


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_training_steps_checkpoint_and_samples_on_device(device, amp, channels_last, tiny_config, tiny_batches,
                                                         tmp_path):
    torch.manual_seed(0)
    config = tiny_config(sn_generator=True, sn_discriminator=True)
    model = TrainingStep(config, TrainConfig(flip_labels=True), device, amp=amp, channels_last=channels_last)
    assert all(p.device.type == device.type for p in model.netG.parameters())
    stats = [model.train_step(*batch) for batch in tiny_batches(3)]  # CPU batches move over
    assert all(isinstance(v, float) for v in stats[-1].values()) and model.step == 3
    for _, layer in spectral_norm_layers(model.netD):  # power-iteration state stays float32 on the device
        assert layer.weight_u.dtype == torch.float32 and layer.weight_u.device.type == device.type
    fake = model.generate(tiny_batches(1)[0][1], torch.tensor([0, 1, 2, 3]))
    assert fake.device.type == "cpu" and torch.isfinite(fake).all()
    save_checkpoint(model, tmp_path)
    restored = TrainingStep(config, TrainConfig(flip_labels=True), device, amp=amp, channels_last=channels_last)
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


def test_deterministic_switches_the_backends_and_training_still_runs(device, tiny_config, tiny_batches):
    from utils.device import configure_backends
    try:
        configure_backends(device, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.allow_tf32
        torch.manual_seed(0)
        runs = []
        for _ in range(2):
            torch.manual_seed(0)
            model = TrainingStep(tiny_config(sn_discriminator=True), TrainConfig(), device)
            runs.append([model.train_step(*batch)["g_loss"] for batch in tiny_batches(2)])
        assert runs[0] == runs[1]   # bit-identical
        configure_backends(device, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark == (device.type == "cuda")
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.allow_tf32 = True


def test_bf16_falls_back_to_fp16_before_ampere(monkeypatch, capsys):
    from utils.device import effective_amp
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert effective_amp(torch.device("cuda:0"), "bf16") == "fp16"
    assert "Tesla T4" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert effective_amp(torch.device("cuda:0"), "bf16") == "bf16"
    assert effective_amp(torch.device("cpu"), "bf16") == "bf16"


def test_bf16_on_a_cpu_without_bf16_instructions_says_once_how_slow_it_is(monkeypatch, capsys):
    from utils import device as device_module
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(device_module, "_SAID", set())
    cpu = torch.device("cpu")
    assert device_module.effective_amp(cpu, "bf16") == "bf16"   # the flag takes effect, with a warning
    assert "no bf16 instructions" in capsys.readouterr().out
    assert device_module.effective_amp(cpu, "bf16") == "bf16" and capsys.readouterr().out == ""   # once
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(device_module, "_SAID", set())
    assert device_module.effective_amp(cpu, "bf16") == "bf16" and capsys.readouterr().out == ""


def test_discriminator_input_keeps_the_runs_memory_format(tiny_config, tiny_batches):
    model = TrainingStep(tiny_config(), TrainConfig(), "cpu", channels_last=True)
    seen = []
    model.netD.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model.train_step(*tiny_batches(1)[0])
    assert seen and all(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for x in seen)


def test_decoders_are_not_forked_after_cuda_starts(monkeypatch):
    from data.decode import decoder_context
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert decoder_context().get_start_method() == "fork"
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert decoder_context().get_start_method() == "forkserver"


def test_device_resolution():
    assert choose_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="--device"):
        choose_device("tpu")
    with pytest.raises(UserError, match="not both"):
        choose_device("cpu", gpu_ids="0")
    if torch.cuda.is_available():
        assert choose_device(None).type == "cuda"
        assert choose_device(None, gpu_ids="0") == torch.device("cuda:0")
    else:
        assert choose_device(None).type == "cpu"
        with pytest.raises(UserError, match="CUDA is not available"):
            choose_device("cuda:1")


def test_zi2zi_gpu_ids_forms():
    from utils.device import gpu_ids_to_device
    for form in ("cuda:0", "0", ["cuda:0"], ["0"], "0,0"):
        assert gpu_ids_to_device(form) == "cuda:0"
    assert gpu_ids_to_device(["cuda:2"]) == "cuda:2"
    with pytest.raises(UserError, match="names 2 GPUs and one process trains on one GPU.*torchrun"):
        gpu_ids_to_device(["cuda:0", "cuda:1"])
    with pytest.raises(UserError, match="--gpu_ids expects GPUs such as cuda:0"):
        gpu_ids_to_device("gpu0")
