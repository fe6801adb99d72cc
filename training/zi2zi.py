"""zi2zi-pytorch's `Zi2ZiModel`, so scripts written against it run unchanged.

    model = Zi2ZiModel(input_nc=1, embedding_num=40, gpu_ids=["cuda:0"], save_dir="ckpt",
                       sn_discriminator=True)
    model.setup()
    for labels, target, source in loader:          # data.DatasetFromObj items
        model.set_input(labels, source, target)
        const_loss, l1_loss, category_loss, cheat_loss = model.optimize_parameters()
    model.save_networks(step); model.load_networks(step); model.sample(batch, "sample_dir")

A thin layer over `TrainingStep`: the same networks, losses and iteration; only the
constructor, the method names and the return values are zi2zi's. The spectral-norm
switches and `norm_G` / `norm_D` are extra keyword arguments.
"""
from __future__ import annotations

from pathlib import Path

import torch

from model.checkpoint import Checkpoints
from model.loading import load_weights
from model.config import ModelConfig
from training.config import TrainConfig
from model.inference import generate
from utils.device import choose_device
from utils.images import rgb_image
from utils.io import save_image

from .config import check_trainable
from .step import TrainingStep


class Zi2ZiModel(TrainingStep):
    """zi2zi-pytorch's constructor and methods over this project's training step."""

    def __init__(self, input_nc=3, embedding_num=40, embedding_dim=128, ngf=64, ndf=64, Lconst_penalty=15,
                 Lcategory_penalty=1, L1_penalty=100, schedule=10, lr=0.001, gpu_ids=None, save_dir=".",
                 is_training=True, image_size=256, sn_generator=False, sn_discriminator=False,
                 norm_G="batch", norm_D="batch", lr_D=None, amp="off"):
        # zi2zi builds nothing until setup(); the settings are checked now, so a bad one fails early.
        self.config = ModelConfig(input_nc=input_nc, embedding_num=embedding_num, embedding_dim=embedding_dim,
                                  ngf=ngf, ndf=ndf, image_size=image_size, norm_G=norm_G, norm_D=norm_D,
                                  sn_generator=sn_generator, sn_discriminator=sn_discriminator)
        self.train_config = TrainConfig(lr=lr, lr_D=lr_D, L1_penalty=L1_penalty, Lconst_penalty=Lconst_penalty,
                                        Lcategory_penalty=Lcategory_penalty, schedule=schedule)
        self.gpu_ids, self.save_dir, self.is_training, self.amp = gpu_ids, save_dir, is_training, amp
        if is_training:
            check_trainable(self.config)

    def setup(self) -> None:
        """Build the networks, optimisers and losses on the device `gpu_ids` names (none: CPU)."""
        device = choose_device(gpu_ids=self.gpu_ids) if self.gpu_ids else torch.device("cpu")
        super().__init__(self.config, self.train_config, device, amp=self.amp)
        self.train(self.is_training)

    # zi2zi-pytorch's attributes: the last batch given to set_input and the last forward pass
    @property
    def real_A(self) -> torch.Tensor:
        return self.batch.source

    @property
    def real_B(self) -> torch.Tensor:
        return self.batch.target

    @property
    def labels(self) -> torch.Tensor:
        return self.batch.labels

    @property
    def fake_B(self) -> torch.Tensor:
        return self.outputs.fake

    def optimize_parameters(self):
        """One zi2zi iteration on the last `set_input`; returns (const, l1, category, cheat) losses."""
        self.train_step()
        stats = self.last_stats
        self.d_loss, self.g_loss = stats["d_loss"], stats["g_loss"]
        return stats["const_loss"], stats["l1_loss"], stats["category_loss"], stats["cheat_loss"]

    def save_networks(self, epoch) -> None:
        """`save_dir/{epoch}_net_G.pth` and `_net_D.pth`: plain state dicts, written atomically."""
        Checkpoints(self.save_dir).save_weights(epoch, self.netG, self.netD)

    def load_networks(self, epoch) -> None:
        """Load `save_dir/{epoch}_net_G.pth` (and `_net_D.pth` when present); a mismatch names the flag."""
        files = Checkpoints(self.save_dir).files(epoch)
        load_weights(self.netG, files["G"], "G")
        if files["D"].exists():
            load_weights(self.netD, files["D"], "D")

    def sample(self, batch, basename) -> None:
        """zi2zi's picture of a batch (labels, target, source): `basename/{label}/{i}.png`, generated | target, RGB."""
        labels, target, source = batch[0], batch[1], batch[2]
        fake = generate(self.G_eval, source, labels, len(labels), self.device, self.amp, progress=False)
        for i, (label, picture) in enumerate(zip(labels.tolist(), torch.cat([fake, target.float().cpu()], 3))):
            folder = Path(basename) / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            save_image(rgb_image(picture), folder / f"{i}.png")

    def print_networks(self, verbose: bool = False) -> None:
        print("---------- Networks initialized -------------")
        for name, net in (("G", self.netG), ("D", self.netD)):
            if verbose:
                print(net)
            count = sum(p.numel() for p in net.parameters())
            print(f"[Network {name}] Total number of parameters : {count / 1e6:.3f} M")
        print("-----------------------------------------------")
