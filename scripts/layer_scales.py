"""Per-layer activation and gradient scales of G and D, at step 0 and after some training.

    python scripts/layer_scales.py --data_dir experiment/data --image_size 64 --ngf 32 --ndf 32 \
        --norm_G none --norm_D none --steps 50

The measurements behind the README's advice on --norm_G / --norm_D: for each Conv /
ConvTranspose / Linear layer, the standard deviation of its output on one batch and
the norm of its weight gradient from one iteration, then the same after --steps steps.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from data.loader import BatchIterator, PairBank
from model.config import NORMS, ModelConfig
from training.config import TrainConfig
from training.step import TrainingStep

LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def layer_scales(model: TrainingStep, batch) -> dict[str, list[tuple[str, float, float]]]:
    """(layer, output std, weight-grad norm) per layer of G and D over one iteration, weights unchanged."""
    stds: dict[str, float] = {}

    def recorder(key):
        def hook(module, inputs, output):  # the first call (real inputs) is the one recorded
            stds.setdefault(key, output.float().std().item())
        return hook
    hooks = [module.register_forward_hook(recorder(f"{net_name}.{name}"))
             for net_name, net in (("G", model.netG), ("D", model.netD))
             for name, module in net.named_modules() if isinstance(module, LAYERS)]
    before = {k: v.clone() for k, v in {**model.netG.state_dict(), **{f"D.{k}": v for k, v in
                                                                       model.netD.state_dict().items()}}.items()}
    model.set_input(*batch)
    model.forward()
    model.optimizer_D.zero_grad(set_to_none=True)
    model.backward_D()
    d_grads = {name: m.weight_orig.grad if hasattr(m, "weight_orig") else m.weight.grad
               for name, m in model.netD.named_modules() if isinstance(m, LAYERS)}
    model.optimizer_G.zero_grad(set_to_none=True)
    model.backward_G()
    for h in hooks:
        h.remove()
    result = {"G": [], "D": []}
    for net_name, net, grads in (("G", model.netG, None), ("D", model.netD, d_grads)):
        for name, m in net.named_modules():
            if isinstance(m, LAYERS):
                g = grads[name] if grads else (m.weight_orig.grad if hasattr(m, "weight_orig") else m.weight.grad)
                result[net_name].append((name, stds.get(f"{net_name}.{name}", float("nan")),
                                         g.norm().item() if g is not None else 0.0))
    model.netG.load_state_dict({k: v for k, v in before.items() if not k.startswith("D.")})
    model.netD.load_state_dict({k[2:]: v for k, v in before.items() if k.startswith("D.")})
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--norm_G", choices=NORMS, default="batch")
    p.add_argument("--norm_D", choices=NORMS, default="batch")
    p.add_argument("--sn-generator", dest="sn_generator", action="store_true")
    p.add_argument("--sn-discriminator", dest="sn_discriminator", action="store_true")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    bank = PairBank.from_obj(Path(args.data_dir) / "train.obj")
    config = ModelConfig(embedding_num=int(bank.labels.max()) + 1, ngf=args.ngf, ndf=args.ndf,
                         image_size=args.image_size, norm_G=args.norm_G, norm_D=args.norm_D,
                         sn_generator=args.sn_generator, sn_discriminator=args.sn_discriminator)
    model = TrainingStep(config, TrainConfig(), "cpu")
    batches = BatchIterator(bank, args.batch_size, "cpu", seed=args.seed)
    probe = next(batches.epoch(10_000))
    at_start = layer_scales(model, probe)
    stats = {}
    for epoch in range(10_000):
        for batch in batches.epoch(epoch):
            if model.step >= args.steps:
                break
            stats = model.train_step(*batch)
        if model.step >= args.steps:
            break
    after = layer_scales(model, probe)
    print(f"norm_G={args.norm_G} norm_D={args.norm_D} sn_G={args.sn_generator} sn_D={args.sn_discriminator}; "
          f"after {args.steps} steps: " + ", ".join(f"{k}={v:.3g}" for k, v in stats.items()))
    for net in ("G", "D"):
        print(f"{net}: layer | out std step 0 | out std step {args.steps} | grad norm step 0 | grad norm step {args.steps}")
        for (name, s0, g0), (_, s1, g1) in zip(at_start[net], after[net]):
            print(f"  {name or '(root)':60s} {s0:10.3g} {s1:10.3g} {g0:10.3g} {g1:10.3g}")


if __name__ == "__main__":
    main()
