"""One zi2zi training iteration, device-agnostic, as zi2zi-pytorch runs it.

    model = TrainingStep(ModelConfig(sn_discriminator=True), TrainConfig(), device="cuda")
    stats = model.train_step(labels, real_A, real_B)   # dict of floats (one host read)
    values = model.step_on_device(labels, real_A, real_B)   # the same on the device, no host read

`training.zi2zi.Zi2ZiModel` is zi2zi-pytorch's class on top of this one.

Per iteration: forward, D step, G step, then (g_steps - 1) more forward + G steps.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from data.loader import Batch
from model.config import ModelConfig
from model.inference import generate
from model.losses import BinaryLoss, CategoryLoss
from model.networks import build_discriminator, build_generator
from model.spectral import power_iteration, reuse_spectral_norm, spectral_norm_layers
from utils.device import autocast, check_amp, effective_amp
from utils.distributed import SINGLE, Distributed
from utils.errors import UserError

from .config import TrainConfig


class NonFiniteLossError(UserError):
    """A loss became NaN or infinite; training stops rather than train on garbage."""


def check_finite(step: int, stats: dict[str, float]) -> None:
    """Raise NonFiniteLossError if step `step`'s d_loss or g_loss is NaN or infinite."""
    bad = [n for n in ("d_loss", "g_loss") if not math.isfinite(stats[n])]
    if bad:
        raise NonFiniteLossError(
            f"non-finite {' and '.join(bad)} at step {step} "
            f"({', '.join(f'{n}={v}' for n, v in stats.items())}); training stopped before saving these "
            f"weights. Try a lower --lr / --lr_D or --amp off.")


class PendingStats:
    """Steps' statistic vectors kept on the device until read: one host copy for many steps."""

    def __init__(self):
        self.steps: list[int] = []
        self.rows: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, step: int, values: torch.Tensor) -> None:
        self.steps.append(step)
        self.rows.append(values)

    def read(self, names: list[str]) -> list[tuple[int, dict[str, float]]]:
        """(step, stats) of every pending step, in order, each checked to be finite; then none is pending."""
        if not self.rows:
            return []
        table = torch.stack(self.rows).tolist()   # the one host read
        steps, self.steps, self.rows = self.steps, [], []
        read = [(step, dict(zip(names, row))) for step, row in zip(steps, table)]
        for step, stats in read:
            check_finite(step, stats)
        return read


@dataclass
class Outputs:
    """What G made of a batch in one forward pass: with the batch, what the losses are computed from."""
    fake: torch.Tensor                    # the target glyphs as G draws them
    encoded_real: torch.Tensor            # G's encoding of the source ...
    encoded_fake: torch.Tensor            # ... and of its own output (the constancy loss compares them)
    flipped_labels: torch.Tensor | None = None   # --flip_labels: shuffled styles, their glyphs and encodings
    fake_flipped: torch.Tensor | None = None
    encoded_fake_flipped: torch.Tensor | None = None


def set_requires_grad(net: nn.Module, requires_grad: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(requires_grad)


def _grad_norm(net: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: one fused foreach kernel
        return torch.nn.utils.get_total_norm(grads)
    return torch.stack([g.detach().norm() for g in grads]).norm()


def _no_forward_buffer_sync() -> dict:
    """DDP's option for 'no buffer broadcast before each forward': `forward_sync_buffers=False`
    where torch has it (it still syncs at start), `broadcast_buffers=False` before."""
    from torch.nn.parallel import DistributedDataParallel
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


NO_FORWARD_BUFFER_SYNC = _no_forward_buffer_sync()


def replica_buffers(*nets: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The float buffers the processes must agree on, split by how they agree.

    BatchNorm's running statistics are averaged (each rank saw its own share of the
    batch; under --sync_bn they are equal already); everything else, SN's u and v
    above all, is rank 0's, bit for bit, so the power iteration stays one estimate.
    Integer buffers (BatchNorm's num_batches_tracked) count the same steps everywhere.
    """
    averaged, from_main = [], []
    for net in nets:
        for module in net.modules():
            for _, buffer in module.named_buffers(recurse=False):
                if buffer.is_floating_point():
                    is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
                    (averaged if is_bn else from_main).append(buffer)
    return averaged, from_main


class TrainingStep:
    """Generator, discriminator, their optimisers and zi2zi's losses on one device.

    `amp` ("off", "bf16", "fp16") runs the forward passes under autocast (fp16 with a
    gradient scaler per network; the SN power iteration stays in float32);
    `channels_last` stores activations NHWC; `compile` runs both networks through
    torch.compile; `fused_adam` (CUDA) steps each optimiser in one kernel. The plain
    modules `netG`/`netD` are what gets saved.

    Under torchrun (`dist` with several processes) each network is wrapped in
    DistributedDataParallel for the updates that train it: D's wrapper serves the D
    step and G's the G step, while G's step runs D's plain module (D gets no gradient
    there, so its wrapper must not expect one). Gradients are averaged over the
    processes and the statistics returned are means over them, so N processes with
    batch B/N each train like one process with batch B. `sync_bn` turns BatchNorm
    into SyncBatchNorm (CUDA only: torch has no CPU kernel for it).
    """

    def __init__(self, config: ModelConfig, train_config: TrainConfig | None = None,
                 device: str | torch.device = "cpu", amp: str = "off",
                 channels_last: bool = False, compile: bool = False, dist: Distributed = SINGLE,
                 sync_bn: bool = False, fused_adam: bool = False):
        # config: architecture (saved with every checkpoint); train_config: losses and optimiser.
        self.config = config
        self.train_config = train_config or TrainConfig()
        self.device = torch.device(device)
        self.amp = effective_amp(self.device, check_amp(amp))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        tc = self.train_config
        self.netG = build_generator(config).to(self.device, memory_format=self.memory_format)
        self.netD = build_discriminator(config).to(self.device, memory_format=self.memory_format)
        self.dist = dist
        if sync_bn:
            self.netG = nn.SyncBatchNorm.convert_sync_batchnorm(self.netG)
            self.netD = nn.SyncBatchNorm.convert_sync_batchnorm(self.netD)
        self.sn_layers_G = [m for _, m in spectral_norm_layers(self.netG)]
        self.sn_layers_D = [m for _, m in spectral_norm_layers(self.netD)]
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        # fused Adam (CUDA): one kernel per parameter group and no host read of the step count
        fused = {"fused": True} if fused_adam else {}
        self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), **fused)
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=tc.discriminator_lr,
                                            betas=(tc.beta1, tc.beta2), **fused)
        # Frozen parameters keep requires_grad=False, get no gradient, and Adam skips them;
        # they stay in the optimiser so its state has the same shape either way.
        if tc.freeze_encoder:
            for p in self.netG.encoder_parameters():
                p.requires_grad_(False)
        self._wrap(compile)
        self.category_loss = CategoryLoss(config.embedding_num)
        self.real_binary_loss = BinaryLoss(True)
        self.fake_binary_loss = BinaryLoss(False)
        self.step = 0
        self.stop_agreed = False   # set by train_step: some process asked to stop
        self.train()

    def _wrap(self, compile: bool) -> None:
        """The callables that run the networks; they share parameters with netG/netD, which are saved.

        G / D: the training forwards (DDP-wrapped under torchrun); G_eval: sampling and
        inference, never wrapped, so rank 0 can sample alone; D_in_G_step: D without its
        DDP wrapper, for G's update, where D's parameters get no gradient.
        """
        G_train, D_train = self.netG, self.netD
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Both networks use every parameter in every training forward (measured: no
            # "unused parameters" error), so find_unused_parameters stays off and costs nothing.
            G_train = DDP(self.netG, device_ids=ids, **NO_FORWARD_BUFFER_SYNC)
            D_train = DDP(self.netD, device_ids=ids, **NO_FORWARD_BUFFER_SYNC)
        wrap = torch.compile if compile else (lambda module: module)
        self.G, self.D = wrap(G_train), wrap(D_train)
        self.power_iteration = wrap(power_iteration)   # SN's, once per block (reuse_spectral_norm)
        self.G_eval = wrap(self.netG) if self.dist.enabled else self.G
        self.D_in_G_step = wrap(self.netD) if self.dist.enabled else self.D

    # ----------------------------------------------------------------- inputs
    def train(self, mode: bool = True) -> None:
        self.netG.train(mode)
        self.netD.train(mode)

    def check_labels(self, labels: torch.Tensor) -> None:
        if labels.numel():
            self.config.check_labels(int(labels.min()), int(labels.max()), "the batch")

    def set_input(self, labels: torch.Tensor, real_A: torch.Tensor, real_B: torch.Tensor,
                  labels_checked: bool = False) -> None:
        """real_A: source glyphs, real_B: target glyphs, labels: style ids (any device) -> `self.batch`.

        `labels_checked`: the caller has checked the labels against embedding_num already (the
        training loader's data is checked when opened), so they are not read back every step.
        """
        if not labels_checked:
            self.check_labels(labels)
        self.batch = Batch(labels.to(self.device, non_blocking=True).long(),
                           real_A.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format),
                           real_B.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format))

    def autocast(self):
        return autocast(self.device, self.amp)

    # ---------------------------------------------------------------- forward
    def forward(self) -> Outputs:
        """G on the current batch; the outputs are also kept in `self.outputs` (zi2zi's `fake_B` reads them)."""
        with self.autocast(), reuse_spectral_norm(self.sn_layers_G, self.power_iteration):
            self.outputs = self.generate_outputs(self.batch)
        return self.outputs

    def generate_outputs(self, batch: Batch) -> Outputs:
        size = batch.source.shape[0]
        fake, encoded_real = self.G(batch.source, batch.labels)
        out = Outputs(fake, encoded_real, self.G(fake).view(size, -1))
        if self.train_config.flip_labels:
            # zi2zi's label flipping: the same sources rendered in shuffled styles. There
            # is no target image for them, so they get no L1 loss.
            out.flipped_labels = batch.labels[torch.randperm(size, device=self.device)]
            out.fake_flipped, _ = self.G(batch.source, out.flipped_labels)
            out.encoded_fake_flipped = self.G(out.fake_flipped).view(size, -1)
        return out

    def pair(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """D's input: source and target on the channel axis, in the run's memory format.

        The concatenation of two channels-last tensors comes out NCHW; converting here once
        saves D's first convolution a layout conversion on every call.
        """
        return torch.cat([source, target], 1).contiguous(memory_format=self.memory_format)

    def _backward(self, losses, scaler: torch.amp.GradScaler, total: str) -> dict:
        """Compute `losses()` (D's spectral norms computed once for all its calls), backpropagate `total`."""
        with self.autocast(), reuse_spectral_norm(self.sn_layers_D, self.power_iteration):
            stats = losses()
        scaler.scale(stats[total]).backward()
        return {k: v.detach() for k, v in stats.items()}

    def discriminator_losses(self, batch: Batch, out: Outputs) -> dict:
        """D's loss on real pairs, G's pairs (and the flipped ones), with the category head's."""
        tc = self.train_config
        real_logits, real_category = self.D(self.pair(batch.source, batch.target))
        fake_logits, fake_category = self.D(self.pair(batch.source, out.fake.detach()))
        category_loss = tc.Lcategory_penalty * (self.category_loss(real_category, batch.labels)
                                                + self.category_loss(fake_category, batch.labels))
        d_loss = self.real_binary_loss(real_logits) + self.fake_binary_loss(fake_logits) + category_loss / 2
        if tc.flip_labels:
            flip_logits, flip_category = self.D(self.pair(batch.source, out.fake_flipped.detach()))
            d_loss = (d_loss + self.fake_binary_loss(flip_logits)
                      + tc.Lcategory_penalty * self.category_loss(flip_category, out.flipped_labels) / 2)
        return {"d_loss": d_loss, "category_loss": category_loss,
                "d_real_prob": torch.sigmoid(real_logits.detach().float()).mean(),
                "d_fake_prob": torch.sigmoid(fake_logits.detach().float()).mean()}

    def generator_losses(self, batch: Batch, out: Outputs) -> dict:
        """G's loss: fooling D, L1 to the target, the style category and the encoding constancy."""
        tc = self.train_config
        fake_logits, fake_category = self.D_in_G_step(self.pair(batch.source, out.fake))
        const_loss = tc.Lconst_penalty * F.mse_loss(out.encoded_real, out.encoded_fake)
        l1_loss = tc.L1_penalty * F.l1_loss(out.fake, batch.target)
        fake_category_loss = tc.Lcategory_penalty * self.category_loss(fake_category, batch.labels)
        cheat_loss = self.real_binary_loss(fake_logits)
        g_loss = cheat_loss + l1_loss + fake_category_loss + const_loss
        if tc.flip_labels:
            flip_logits, flip_category = self.D_in_G_step(self.pair(batch.source, out.fake_flipped))
            g_loss = (g_loss + self.real_binary_loss(flip_logits)
                      + tc.Lcategory_penalty * self.category_loss(flip_category, out.flipped_labels)
                      + tc.Lconst_penalty * F.mse_loss(out.encoded_real, out.encoded_fake_flipped))
        return {"g_loss": g_loss, "l1_loss": l1_loss, "const_loss": const_loss, "cheat_loss": cheat_loss}

    def _update(self, net: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                losses, total: str, grad_norm_key: str) -> dict:
        """One optimiser step of `net` on `losses()`'s `total`, the gradients' norm recorded."""
        optimizer.zero_grad(set_to_none=True)
        stats = self._backward(losses, scaler, total)
        scaler.unscale_(optimizer)  # true gradients for the norm (no-op without fp16)
        stats[grad_norm_key] = _grad_norm(net)
        scaler.step(optimizer)
        scaler.update()
        return stats

    def step_on_device(self, labels=None, real_A=None, real_B=None, stop_requested: bool = False,
                       labels_checked: bool = False) -> torch.Tensor:
        """One iteration; returns its statistics as one float vector on the device (names: `stat_names`).

        Nothing is read back to the host, so the GPU runs ahead of Python; the training loop
        reads many steps' vectors in one copy (`PendingStats`) and checks them then.
        `stop_requested` (this process got a stop signal) is shared with the other
        processes in the iteration's one collective; afterwards `stop_agreed` is True
        on every rank when any of them asked, so all stop at the same step. Under torchrun
        that flag is the one host read per step.
        """
        if labels is not None:
            self.set_input(labels, real_A, real_B, labels_checked)
        batch, out = self.batch, self.forward()
        set_requires_grad(self.netD, True)
        stats = self._update(self.netD, self.optimizer_D, self.scaler_D,
                             lambda: self.discriminator_losses(batch, out), "d_loss", "d_grad_norm")
        set_requires_grad(self.netD, False)  # D needs no gradients while G learns
        for g_step in range(self.train_config.g_steps):
            if g_step:
                out = self.forward()
            stats.update(self._update(self.netG, self.optimizer_G, self.scaler_G,
                                      lambda: self.generator_losses(batch, out), "g_loss", "g_grad_norm"))
        set_requires_grad(self.netD, True)
        self.step += 1
        self.last_stats = stats  # the tensors, for callers that want them (zi2zi's API returns tensors)
        self.stat_names = list(stats)
        # Under torchrun the statistics become means over the processes, so every rank sees
        # the same numbers, with the buffers and the stop flag in the same collective.
        values = torch.stack([stats[n].detach().float().reshape(()) for n in self.stat_names])
        averaged, from_main = replica_buffers(self.netG, self.netD) if self.dist.enabled else ([], [])
        self.stop_agreed = self.dist.synchronise([values, *averaged], from_main, stop_requested)
        return values

    def train_step(self, labels=None, real_A=None, real_B=None, stop_requested: bool = False) -> dict:
        """One iteration, read at once: every loss, D's mean sigmoid on real/fake, grad norms, as floats.

        A non-finite d_loss or g_loss raises NonFiniteLossError. The training loop uses
        `step_on_device` instead and reads every --log_steps.
        """
        values = self.step_on_device(labels, real_A, real_B, stop_requested)
        result = dict(zip(self.stat_names, values.tolist()))
        check_finite(self.step, result)
        return result

    def generate(self, real_A: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generator output in eval mode (no dropout, running BN statistics), on the CPU."""
        self.check_labels(labels)
        return generate(self.G_eval, real_A, labels, len(real_A), self.device, self.amp, progress=False)

    # ------------------------------------------------------------ schedule
    @property
    def learning_rates(self) -> dict:
        return {"lr_G": self.optimizer_G.param_groups[0]["lr"],
                "lr_D": self.optimizer_D.param_groups[0]["lr"]}

    def update_lr(self) -> dict:
        """Halve both learning rates, never below min_lr (nor raise one already below it)."""
        floor = self.train_config.min_lr
        for optimizer in (self.optimizer_G, self.optimizer_D):
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"] / 2.0, min(floor, group["lr"]))
        return self.learning_rates

    # ------------------------------------------------------------- state
    def optimizer_state(self) -> dict:
        """The optimisers' and gradient scalers' state, for the checkpoint (training.checkpoint.TrainingState)."""
        return {"optimizer_G": self.optimizer_G.state_dict(), "optimizer_D": self.optimizer_D.state_dict(),
                "scaler_G": self.scaler_G.state_dict(), "scaler_D": self.scaler_D.state_dict()}

    def restore_optimizers(self, state) -> None:
        """Continue from `state` (a TrainingState): optimisers, scalers and step; a learning rate or Adam
        beta changed since it was saved takes effect now.

        The optimisers carry the scheduled (possibly halved) rates; they are kept unless
        this run's TrainConfig sets a different --lr / --lr_D than the saved one, in which
        case the new rate replaces the scheduled one from this step on.
        """
        self.optimizer_G.load_state_dict(state.optimizer_G)
        self.optimizer_D.load_state_dict(state.optimizer_D)
        saved = state.train_config
        for optimizer, old, new in ((self.optimizer_G, saved.lr, self.train_config.lr),
                                    (self.optimizer_D, saved.discriminator_lr, self.train_config.discriminator_lr)):
            if new != old:
                for group in optimizer.param_groups:
                    group["lr"] = new
        betas = (self.train_config.beta1, self.train_config.beta2)
        if (saved.beta1, saved.beta2) != betas:   # new Adam betas take effect from this step on
            for optimizer in (self.optimizer_G, self.optimizer_D):
                for group in optimizer.param_groups:
                    group["betas"] = betas
        if self.amp == "fp16" and state.scaler_G:
            self.scaler_G.load_state_dict(state.scaler_G)
            self.scaler_D.load_state_dict(state.scaler_D)
        self.step = state.step
