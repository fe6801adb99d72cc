"""Networks match zi2zi-pytorch key for key and output for output; SN wraps as promised."""
import json

import pytest
import torch
from torch import nn

from model import (Discriminator, ModelConfig, UNetGenerator, apply_spectral_norm, build_discriminator,
                   build_generator, init_weights, largest_singular_value, uses_spectral_norm)
from model.spectral import spectral_norm_layers, weight_matrix


def _layout(reference_dir):
    return json.loads((reference_dir / "zi2zi_pytorch_state_dict_layout.json").read_text())


@pytest.mark.parametrize("input_nc", [1, 3])
def test_state_dict_layout_matches_zi2zi_pytorch(reference_dir, input_nc):
    layout = _layout(reference_dir)[
        f"input_nc={input_nc},embedding_num=40,embedding_dim=128,ngf=64,ndf=64,image_size=256"]
    config = ModelConfig(input_nc=input_nc)
    for name, net in (("G", build_generator(config)), ("D", build_discriminator(config))):
        got = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert list(got) == list(layout[name]), f"{name} key order differs"
        assert got == layout[name]


def _reference_models(reference_dir):
    io = torch.load(reference_dir / "zi2zi_pytorch_ref_io.pth", weights_only=True)
    c = io["config"]
    G = UNetGenerator(input_nc=c["input_nc"], output_nc=c["input_nc"], num_downs=8, ngf=c["ngf"],
                      embedding_num=c["embedding_num"], embedding_dim=c["embedding_dim"], use_dropout=True)
    D = Discriminator(2 * c["input_nc"], c["embedding_num"], c["ndf"], image_size=c["image_size"])
    G.load_state_dict(torch.load(reference_dir / "zi2zi_pytorch_ref_net_G.pth", weights_only=True))
    D.load_state_dict(torch.load(reference_dir / "zi2zi_pytorch_ref_net_D.pth", weights_only=True))
    return io, G.eval(), D.eval()


def test_reference_checkpoint_reproduces_zi2zi_pytorch_outputs(reference_dir):
    io, G, D = _reference_models(reference_dir)
    with torch.no_grad():
        fake_B, encoded_real_A = G(io["x"].clone(), io["labels"])
        encoded_fake_B = G(fake_B).view(fake_B.shape[0], -1)
        binary_logits, category_logits = D(torch.cat([io["x"], fake_B], 1))
    got = dict(fake_B=fake_B, encoded_real_A=encoded_real_A, encoded_fake_B=encoded_fake_B,
               binary_logits=binary_logits, category_logits=category_logits)
    for name, tensor in got.items():
        assert tensor.shape == io[name].shape, name
        assert torch.allclose(tensor, io[name], atol=1e-5, rtol=0), name


def test_generator_without_labels_returns_innermost_encoding(tiny_config):
    G = build_generator(tiny_config())
    x = torch.randn(2, 1, 32, 32)
    encoded = G(x)
    assert encoded.shape == (2, 64, 1, 1)  # ngf * 8 channels at the 1x1 bottleneck


@pytest.mark.parametrize("size", [32, 64, 128])
def test_other_image_sizes(size, tiny_config):
    config = tiny_config(image_size=size)
    G, D = build_generator(config), build_discriminator(config)
    x = torch.randn(2, 1, size, size)
    fake, encoded = G(x, torch.tensor([0, 3]))
    assert fake.shape == x.shape
    binary, category = D(torch.cat([x, fake], 1))
    assert binary.shape == (2, 1) and category.shape == (2, 4)
    assert D.binary.in_features == (size // 8) ** 2


@pytest.mark.parametrize("size", [16, 48, 100])
def test_impossible_image_size_fails_at_construction(size):
    with pytest.raises(ValueError, match="power of two >= 32"):
        ModelConfig(image_size=size)


def test_wrong_input_size_names_image_size(tiny_config):
    G = build_generator(tiny_config(image_size=64))
    with pytest.raises(ValueError, match="image_size"):
        G(torch.randn(1, 1, 32, 32), torch.tensor([0]))


@pytest.mark.parametrize("net_name", ["G", "D"])
def test_spectral_norm_wraps_every_conv_and_linear_only(net_name, tiny_config):
    config = tiny_config(sn_generator=True, sn_discriminator=True)
    net = build_generator(config) if net_name == "G" else build_discriminator(config)
    wrapped = {name for name, _ in spectral_norm_layers(net)}
    layers = {name for name, m in net.named_modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))}
    assert wrapped == layers and layers
    keys = net.state_dict().keys()
    for name in layers:
        assert {f"{name}.weight_orig", f"{name}.weight_u", f"{name}.weight_v"} <= set(keys)
        assert f"{name}.weight" not in keys
    # embedding and norm layers keep a plain weight
    norm_or_embedding = [k for k in keys if k.startswith("embedder") or ".running_mean" in k]
    assert norm_or_embedding or net_name == "D"
    if net_name == "G":
        assert "embedder.weight" in keys
    assert uses_spectral_norm(net.state_dict())


def test_init_lands_in_weight_orig(tiny_config):
    torch.manual_seed(0)
    G = build_generator(tiny_config(sn_generator=True, ngf=32))
    for name, module in spectral_norm_layers(G):
        w = module.weight_orig
        if w.numel() > 10000:
            assert 0.018 < w.std().item() < 0.022, name
            assert abs(w.mean().item()) < 2e-3, name
    # re-initialising an SN network reaches weight_orig too
    layer = G.model.down[0]
    layer.weight_orig.data.fill_(5.0)
    init_weights(G)
    assert layer.weight_orig.abs().max().item() < 0.2


def test_init_matches_zi2zi():
    torch.manual_seed(0)
    D = build_discriminator(ModelConfig(ndf=32, image_size=32))
    conv = D.model[5]
    assert 0.018 < conv.weight.std().item() < 0.022
    assert D.model[0].bias.abs().max().item() == 0
    bn = D.model[6]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and bn.bias.abs().max().item() == 0


@pytest.mark.parametrize("layer, shape", [(nn.Conv2d(8, 16, 4, 2, 1), (2, 8, 8, 8)),
                                          (nn.ConvTranspose2d(32, 8, 4, 2, 1), (2, 32, 4, 4)),
                                          (nn.Linear(64, 4), (2, 64))], ids=["conv", "transposed", "linear"])
def test_power_iteration_converges_to_sigma_one(layer, shape):
    torch.manual_seed(1)
    net = apply_spectral_norm(nn.Sequential(layer)).train()
    x = torch.randn(shape)
    with torch.no_grad():
        for _ in range(400):  # one power iteration per training-mode forward
            net(x)
    (name, module), = spectral_norm_layers(net)
    sigma = torch.linalg.matrix_norm(weight_matrix(module, module.weight), ord=2).item()
    assert abs(sigma - 1.0) < 1e-3, (name, sigma)


@pytest.mark.slow
@pytest.mark.parametrize("net_name", ["G", "D"])
def test_spectral_norm_bounds_largest_singular_value(net_name, tiny_config):
    torch.manual_seed(1)
    config = tiny_config(sn_generator=True, sn_discriminator=True, norm_G="none", norm_D="none")
    net = build_generator(config) if net_name == "G" else build_discriminator(config)
    x = torch.randn(2, 1 if net_name == "G" else 2, 32, 32)
    net.train()
    with torch.no_grad():
        for _ in range(400):  # one power iteration per training-mode forward
            net(x, torch.tensor([0, 1])) if net_name == "G" else net(x)
    for name, module in spectral_norm_layers(net):
        w = weight_matrix(module, module.weight)
        sigma = torch.linalg.matrix_norm(w, ord=2).item()
        assert abs(sigma - 1.0) < 1e-3, (name, sigma)
    assert largest_singular_value(net) > 0


def test_transposed_conv_normalised_along_dim_1(tiny_config):
    G = build_generator(tiny_config(sn_generator=True))
    upconv = G.model.up[1]
    # weight_u has one entry per row of the matrix: the output channels, dim 1 of a ConvTranspose2d
    assert upconv.weight_u.shape[0] == upconv.weight_orig.shape[1]
    conv = G.model.down[0]
    assert conv.weight_u.shape[0] == conv.weight_orig.shape[0]


def test_power_iteration_frozen_in_eval(tiny_config):
    config = tiny_config(sn_generator=True, sn_discriminator=True)
    G = build_generator(config).eval()
    before = {k: v.clone() for k, v in G.state_dict().items() if k.endswith(("weight_u", "weight_v"))}
    with torch.no_grad():
        G(torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    G.train()
    with torch.no_grad():
        G(torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))
    assert any(not torch.equal(before[k], G.state_dict()[k]) for k in before)


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_norm_choices(norm, tiny_config):
    config = tiny_config(norm_G=norm, norm_D=norm, sn_discriminator=True)
    G, D = build_generator(config), build_discriminator(config)
    keys = list(G.state_dict()) + list(D.state_dict())
    assert not any("running_mean" in k for k in keys)
    # without BatchNorm every conv carries a bias (nothing else re-centres it)
    assert "model.2.bias" in D.state_dict() and "model.submodule.down.1.bias" in G.state_dict()
    x = torch.randn(2, 1, 32, 32)
    fake, _ = G(x, torch.tensor([0, 1]))
    assert D(torch.cat([x, fake], 1))[0].shape == (2, 1)


def test_apply_spectral_norm_is_idempotent(tiny_config):
    D = build_discriminator(tiny_config())
    apply_spectral_norm(D)
    keys = set(D.state_dict())
    apply_spectral_norm(D)
    assert set(D.state_dict()) == keys


def test_spectral_norm_matches_torch_forward_and_gradients():
    import copy
    from model.spectral import _DivideBySigma
    torch.manual_seed(0)
    for layer in (nn.Conv2d(3, 5, 3), nn.ConvTranspose2d(4, 6, 4, 2, 1), nn.Linear(7, 2)):
        ours = apply_spectral_norm(copy.deepcopy(layer))
        ref = torch.nn.utils.spectral_norm(copy.deepcopy(layer))
        ref.weight_orig.data.copy_(ours.weight_orig)
        ref.weight_u.copy_(ours.weight_u)
        ref.weight_v.copy_(ours.weight_v)
        x = torch.randn(2, 7) if isinstance(layer, nn.Linear) else torch.randn(2, layer.in_channels, 8, 8)
        for net in (ours, ref):
            net(x).square().sum().backward()
        assert torch.allclose(ours.weight, ref.weight, atol=1e-6)
        assert torch.allclose(ours.weight_orig.grad, ref.weight_orig.grad, atol=1e-5)
        assert torch.allclose(ours.weight_u, ref.weight_u, atol=1e-6)
    # the hand-written backward against finite differences, sigma held as u^T W v
    w = torch.randn(3, 4, 2, 2, dtype=torch.double, requires_grad=True)
    u = torch.nn.functional.normalize(torch.randn(4, dtype=torch.double), dim=0)
    v = torch.nn.functional.normalize(torch.randn(12, dtype=torch.double), dim=0)

    def normalised(weight):
        with torch.no_grad():  # the Function's backward carries sigma's dependence on W
            sigma = torch.dot(u, torch.mv(weight.transpose(0, 1).reshape(4, -1), v))
        return _DivideBySigma.apply(weight, sigma, u, v, 1)

    def reference(weight):
        return weight / torch.dot(u, torch.mv(weight.transpose(0, 1).reshape(4, -1), v))
    g = torch.randn(3, 4, 2, 2, dtype=torch.double)
    ours_grad, = torch.autograd.grad((normalised(w) * g).sum(), w)
    ref_grad, = torch.autograd.grad((reference(w) * g).sum(), w)
    assert torch.allclose(ours_grad, ref_grad, atol=1e-12)


def test_generator_without_norm_starves_its_deep_path(tiny_config):
    """Why --norm_G none is refused: with zi2zi's init the signal fades ~40x by the bottleneck."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert build_generator(tiny_config(image_size=64, ngf=16, norm_G="none"))(x).std() < 0.02
        assert build_generator(tiny_config(image_size=64, ngf=16, norm_G="batch"))(x).std() > 0.3
