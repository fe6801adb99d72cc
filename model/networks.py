"""zi2zi's U-Net generator and PatchGAN discriminator, key-for-key as zi2zi-pytorch.

State dict keys, layer order and forward semantics are zi2zi-pytorch's (checked against
files it made, in tests/reference/), so its checkpoints load here and ours (with SN off)
load there.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import torch
from torch import nn

from .config import ModelConfig, num_downs_for
from .spectral import apply_spectral_norm

NormFactory = Callable[[int], nn.Module]


def get_norm_layer(norm: str) -> NormFactory:
    """Turn the --norm choice into a layer factory, once, at the edge."""
    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda num_features: nn.Identity()
    raise ValueError(f"norm must be batch, instance or none; got {norm!r}")


def _is_norm(norm_layer: NormFactory, cls: type) -> bool:
    return (norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer) is cls


def _norm_absorbs_bias(norm_layer: NormFactory) -> bool:
    # A norm layer that is present re-centres its input, so a bias before it is dead weight.
    return isinstance(norm_layer(1), (nn.BatchNorm2d, nn.InstanceNorm2d))


@torch.no_grad()
def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """zi2zi's init: Conv/Linear weights N(0, gain), biases 0; BatchNorm weight N(1, gain).

    On a layer already wrapped in spectral norm the trainable tensor is `weight_orig`,
    so that is the one initialised.
    """
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(module, "weight_orig", module.weight)
            nn.init.normal_(weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: x -> down -> submodule -> up, concatenated with x.

    The activations are in-place as in zi2zi-pytorch, and that is part of the
    contract: the LeakyReLU at the start of `down` rewrites x, so the skip connection
    carries LeakyReLU(x). Making them out-of-place would change every output.
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: "UnetSkipConnectionBlock | None" = None, outermost: bool = False,
                 innermost: bool = False, embedding_dim: int = 128,
                 norm_layer: NormFactory = nn.BatchNorm2d, use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        self.innermost = innermost
        use_bias = _is_norm(norm_layer, nn.InstanceNorm2d) or not _norm_absorbs_bias(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        # Registered before down/up so state dict keys come in zi2zi-pytorch's order.
        self.submodule = submodule
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            down = [downconv]
            up = [nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc + embedding_dim, outer_nc, kernel_size=4,
                                        stride=2, padding=1, bias=use_bias)
            down = [nn.LeakyReLU(0.2, True), downconv]
            up = [nn.ReLU(True), upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1, bias=use_bias)
            down = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc)]
            up = [nn.ReLU(True), upconv, norm_layer(outer_nc)]
            if use_dropout:
                up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None):
        if self.innermost:
            encode = self.down(x)
            if style is None:
                return encode
            joined = torch.cat([style.view(style.shape[0], style.shape[1], 1, 1), encode], 1)
            dec = self.up(joined)
            return torch.cat([x, dec], 1), encode.view(x.shape[0], -1)
        enc = self.down(x)
        if style is None:
            return self.submodule(enc)
        sub, encode = self.submodule(enc, style)
        dec = self.up(sub)
        if self.outermost:
            return dec, encode
        return torch.cat([x, dec], 1), encode


class UNetGenerator(nn.Module):
    """zi2zi's U-Net generator with a style-label embedding at the bottleneck.

    `G(x, labels)` returns `(fake, encoded)`; `G(x)` runs the encoder only and returns
    the innermost encoding. `spectral_norm=True` wraps every Conv/ConvTranspose/Linear
    after init, so the init lands in `weight_orig`.
    """

    def __init__(self, input_nc: int = 1, output_nc: int = 1, num_downs: int = 8, ngf: int = 64,
                 embedding_num: int = 40, embedding_dim: int = 128,
                 norm_layer: NormFactory = nn.BatchNorm2d, use_dropout: bool = False,
                 spectral_norm: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (image_size >= 32); got {num_downs}")
        self.image_size = 2 ** num_downs
        self.embedding_num = embedding_num
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=None, norm_layer=norm_layer,
                                        innermost=True, embedding_dim=embedding_dim)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block,
                                            norm_layer=norm_layer, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm_layer=norm_layer)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm_layer=norm_layer)
        self.embedder = nn.Embedding(embedding_num, embedding_dim)
        init_weights(self)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"generator built for {self.image_size}px images got "
                             f"{tuple(x.shape[-2:])}; set --image_size to match the data")
        if labels is None:
            return self.model(x)
        if labels.dtype.is_floating_point:  # an already looked-up style vector
            return self.model(x, labels)
        return self.model(x, self.embedder(labels))

    def encoder_parameters(self):
        """Parameters of the down path (what --freeze_encoder holds fixed)."""
        block = self.model
        while block is not None:
            yield from block.down.parameters()
            block = block.submodule


class Discriminator(nn.Module):
    """zi2zi's PatchGAN discriminator with a binary head and a category head."""

    def __init__(self, input_nc: int, embedding_num: int, ndf: int = 64,
                 norm_layer: NormFactory = nn.BatchNorm2d, image_size: int = 256,
                 spectral_norm: bool = False):
        super().__init__()
        use_bias = not _is_norm(norm_layer, nn.BatchNorm2d)
        kw, padw = 5, 2  # TensorFlow zi2zi's 5x5 "SAME" convolutions
        self.model = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kw, 2, padw), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kw, 2, padw, bias=use_bias), norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, kw, 2, padw, bias=use_bias), norm_layer(ndf * 4),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, ndf * 8, kw, 1, padw, bias=use_bias), norm_layer(ndf * 8),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 8, 1, kw, 1, padw),
        )
        side = math.ceil(math.ceil(math.ceil(image_size / 2) / 2) / 2)  # three stride-2 convs
        features = side * side
        self.binary = nn.Linear(features, 1)
        self.catagory = nn.Linear(features, embedding_num)  # misspelt as in zi2zi's keys
        init_weights(self)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor):
        features = self.model(x).view(x.shape[0], -1)
        return self.binary(features), self.catagory(features)


def build_generator(config: ModelConfig) -> UNetGenerator:
    return UNetGenerator(input_nc=config.input_nc, output_nc=config.input_nc,
                         num_downs=num_downs_for(config.image_size), ngf=config.ngf,
                         embedding_num=config.embedding_num, embedding_dim=config.embedding_dim,
                         norm_layer=get_norm_layer(config.norm_G), use_dropout=config.use_dropout,
                         spectral_norm=config.sn_generator)


def build_discriminator(config: ModelConfig) -> Discriminator:
    return Discriminator(input_nc=2 * config.input_nc, embedding_num=config.embedding_num,
                         ndf=config.ndf, norm_layer=get_norm_layer(config.norm_D),
                         image_size=config.image_size, spectral_norm=config.sn_discriminator)
