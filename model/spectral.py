"""Spectral normalization applied to a built network, and the tools around it.

We use the classic `torch.nn.utils.spectral_norm` so a wrapped layer stores
`weight_orig` plus `weight_u`/`weight_v` buffers: the state dict then says by its
keys whether a network was trained with SN, and SN can be folded away for export.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import remove_spectral_norm, spectral_norm
from torch.nn.utils.spectral_norm import SpectralNorm

# Layers whose weight SN wraps. Embeddings and norm layers are left alone.
SN_LAYER_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


class _DivideBySigma(torch.autograd.Function):
    """weight / sigma with sigma = u^T W v (u, v held fixed), with a lean backward.

    The gradient is grad / sigma - (<grad, W> / sigma^2) u v^T. Autograd, left to itself,
    builds it from several full-size temporaries plus a second matrix-vector product
    and a permuted copy; here it is one dot product and one fused multiply-add, with
    u v^T broadcast instead of materialised.
    """

    @staticmethod
    def forward(ctx, weight, sigma, u, v, dim: int):
        ctx.save_for_backward(weight, sigma, u, v)
        ctx.dim = dim
        return weight / sigma

    @staticmethod
    def backward(ctx, grad):
        weight, sigma, u, v = ctx.saved_tensors
        u_shape = [1] * weight.dim()
        u_shape[ctx.dim] = -1
        v_shape = list(weight.shape)
        v_shape[ctx.dim] = 1  # v runs over the other dimensions, in order
        coeff = -torch.dot(grad.reshape(-1), weight.reshape(-1)) / sigma ** 2
        grad_weight = grad / sigma
        grad_weight.addcmul_(u.view(u_shape), v.view(v_shape) * coeff)
        return grad_weight, None, None, None, None


class FP32SpectralNorm(SpectralNorm):
    """torch's SpectralNorm as plain tensor operations that torch.compile traces whole.

    The power iteration runs under no_grad and updates the `u`/`v` buffers in place
    (`copy_`, which dynamo turns into a buffer mutation of the graph); the forward
    pre-hook then sets W / sigma, sigma = u^T W v. There is no Python state that varies
    from step to step, so a compiled network neither breaks its graph at the hook nor
    recompiles. Both run in float32 under autocast: in bf16/fp16 the sigma estimate would
    drift; the weight is cast down by the layer as usual. The updates are torch's (the
    same u, v, the same keys in the state dict).
    """

    def iterate(self, module: nn.Module) -> None:
        """The power iteration: u and v updated in place, in float32, with no gradient."""
        weight = getattr(module, self.name + "_orig")
        u_buffer = getattr(module, self.name + "_u")
        v_buffer = getattr(module, self.name + "_v")
        with torch.autocast(device_type=weight.device.type, enabled=False), torch.no_grad():
            weight_mat = self.reshape_weight_to_matrix(weight)
            u = u_buffer
            for _ in range(self.n_power_iterations):
                v = F.normalize(torch.mv(weight_mat.t(), u), dim=0, eps=self.eps)
                u = F.normalize(torch.mv(weight_mat, v), dim=0, eps=self.eps)
            u_buffer.copy_(u)
            v_buffer.copy_(v)

    def compute_weight(self, module: nn.Module, do_power_iteration: bool) -> torch.Tensor:
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        with torch.autocast(device_type=weight.device.type, enabled=False), torch.no_grad():
            if do_power_iteration:
                self.iterate(module)
                # A call that iterates saves copies: the next call's iteration must not change what
                # this call's backward reads. Inside a training block (reuse_spectral_norm) nothing
                # iterates until the next block, so the calls save the buffers themselves (autograd
                # would refuse a backward whose saved u or v changed since, not compute a wrong one).
                u, v = u.clone(), v.clone()
            sigma = torch.dot(u, torch.mv(self.reshape_weight_to_matrix(weight), v))
        return _DivideBySigma.apply(weight, sigma, u, v, self.dim)

    def __call__(self, module: nn.Module, inputs) -> None:
        # One power iteration per training block (see reuse_spectral_norm); a training-mode
        # forward outside any block iterates on every call, as torch's spectral norm does.
        # Plain attributes (set by apply_spectral_norm), which dynamo reads as constants on every
        # torch version; `module.__dict__.get` breaks torch 2.3's graph.
        iterate = module.training and not module._sn_iterated
        # Eager calls in a block share one W / sigma (and one backward through it); a compiled
        # graph computes its own, fused into the layer, and keeps no Python state between calls.
        cache = None if _is_compiling() else module._sn_weight_cache
        if cache:
            setattr(module, self.name, cache[0])
            return
        weight = self.compute_weight(module, do_power_iteration=iterate)
        setattr(module, self.name, weight)
        if cache is not None:
            cache.append(weight)


# torch.compiler.is_compiling where torch has it, else torch._dynamo's older one
_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


@torch.no_grad()
def power_iteration(layers: list[nn.Module]) -> None:
    """One power iteration of every SN layer in `layers`, updating u and v in place."""
    for layer in layers:
        _sn_hook(layer).iterate(layer)


@contextmanager
def reuse_spectral_norm(layers: list[nn.Module], iterate=power_iteration):
    """Inside the block, each SN layer's power iteration runs once, at its start.

    zi2zi calls G twice per forward (the image, then the encoder on the output) and
    D twice per D step; within one such block the parameters are fixed and every call
    joins one autograd graph, so one iteration serves them all, and W / sigma from the
    same u and v is computed once for all eager calls (compiled graphs fuse their own).
    The iteration runs here, before the networks, so a compiled network's graph is the
    same in every call (no per-call Python state).
    Outside the block, a training-mode forward iterates on every call, as plain spectral
    norm does; in eval mode no call iterates. `iterate` runs the iteration (a compiled
    `power_iteration` under --compile: one graph for all layers instead of ~10 kernel
    launches each).
    """
    training = [layer for layer in layers if layer.training]
    if training:
        iterate(training)
    for layer in training:
        layer._sn_iterated, layer._sn_weight_cache = True, []
    try:
        yield
    finally:
        for layer in training:
            layer._sn_iterated, layer._sn_weight_cache = False, None


def apply_spectral_norm(net: nn.Module) -> nn.Module:
    """Wrap every Conv2d, ConvTranspose2d and Linear of `net` in spectral norm, in place.

    Call it after weight init: the legacy API copies the current `weight` into
    `weight_orig`, so the init lands in the tensor that trains. `spectral_norm`
    already picks dim=1 for transposed convolutions.
    """
    for module in net.modules():
        if isinstance(module, SN_LAYER_TYPES) and not has_spectral_norm(module):
            spectral_norm(module)
            _sn_hook(module).__class__ = FP32SpectralNorm
            # outside reuse_spectral_norm's blocks: iterate on every training-mode call, share nothing
            module._sn_iterated, module._sn_weight_cache = False, None
    return net


def has_spectral_norm(module: nn.Module) -> bool:
    return any(isinstance(hook, SpectralNorm) for hook in module._forward_pre_hooks.values())


def spectral_norm_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in net.named_modules() if has_spectral_norm(m)]


def uses_spectral_norm(state_dict: dict) -> bool:
    """Whether a state dict came from a network trained with spectral norm."""
    return any(key.endswith("weight_orig") for key in state_dict)


def _sn_hook(module: nn.Module) -> SpectralNorm:
    return next(h for h in module._forward_pre_hooks.values() if isinstance(h, SpectralNorm))


def weight_matrix(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """The 2-D matrix whose largest singular value SN bounds (rows along SN's dim)."""
    dim = _sn_hook(module).dim if has_spectral_norm(module) else (
        1 if isinstance(module, nn.ConvTranspose2d) else 0)
    if dim != 0:
        weight = weight.transpose(0, dim)
    return weight.reshape(weight.shape[0], -1)


@torch.no_grad()
def largest_singular_value(net: nn.Module) -> float:
    """Largest sigma(weight_orig) estimate u^T W v over the SN layers of `net`.

    This is the power-iteration estimate SN divides by; it is cheap (no SVD) and is
    what the training log reports to show how far the raw weights have grown.
    Returns 0.0 for a network without SN. One host sync for the whole network, not one
    per layer.
    """
    sigmas = []
    for _, module in spectral_norm_layers(net):
        w = weight_matrix(module, module.weight_orig.float())
        sigmas.append(torch.dot(module.weight_u.float(), torch.mv(w, module.weight_v.float())))
    return torch.stack(sigmas).max().item() if sigmas else 0.0


def fold_spectral_norm(net: nn.Module) -> nn.Module:
    """Replace SN wrappers by plain weights W / sigma, in place (for export).

    `remove_spectral_norm` computes the weight without a further power iteration,
    so in eval mode the network's outputs are unchanged.
    """
    for _, module in spectral_norm_layers(net):
        remove_spectral_norm(module)
    return net
