"""Train zi2zi, with or without spectral normalization.

    python train.py --experiment_dir experiment --embedding_num 3 --batch_size 16 \
        --sn-generator --sn-discriminator --norm none

Reads experiment/data/train.obj (and val.obj for sample grids); writes checkpoints to
experiment/checkpoint, sample grids to experiment/sample, logs to experiment/logs.
`--resume latest` continues a run exactly where it stopped; the architecture then
comes from the checkpoint.
"""
from __future__ import annotations

import argparse
import random

import numpy as np
import torch

from model import ModelConfig, TrainConfig, Zi2ZiModel
from model.checkpoint import available_steps, read_training_state, resolve_step, saved_train_config
from model.trainer import RunOptions, Trainer
from utils.cli import run
from utils.device import resolve_device
from utils.errors import UserError

# Architecture flags: None means "not given", so a resumed run can tell a
# contradiction from a default. Defaults are ModelConfig's.
ARCH_FLAGS = ("input_nc", "image_size", "embedding_num", "embedding_dim", "ngf", "ndf", "norm",
              "sn_generator", "sn_discriminator")
TRAIN_FLAGS = ("lr", "lr_D", "L1_penalty", "Lconst_penalty", "Lcategory_penalty", "schedule", "g_steps",
               "freeze_encoder", "flip_labels")
# Run settings a resumed run takes from its checkpoint unless given again (data
# order, augmentation, what gets recorded when). None in argparse means "not given".
RESUMED_DEFAULTS = {"batch_size": 16, "random_seed": 777, "fine_tune": None, "no_augment": False,
                    "bold": False, "rotate": False, "blur": False, "sample_steps": 200,
                    "checkpoint_steps": 1000, "log_steps": 10, "keep_last": 0, "data_dir": None}


def positive(name):
    def parse(text):
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--experiment_dir", required=True, help="holds data/, checkpoint/, sample/, logs/")
    g.add_argument("--data_dir", help="folder with train.obj/val.obj (default: experiment_dir/data)")
    g.add_argument("--checkpoint_dir", help="default: experiment_dir/checkpoint")
    g.add_argument("--resume", help="step number or 'latest': continue that checkpoint's run")
    g.add_argument("--random_seed", type=int, help="seed of weights, data order and augmentation (777)")
    g = p.add_argument_group("architecture (saved in the checkpoint)")
    g.add_argument("--image_size", type=int, help="glyph side in pixels, a power of two >= 32 (default 256)")
    g.add_argument("--input_nc", type=int, choices=[1, 3], help="image channels (default 1, grayscale)")
    g.add_argument("--embedding_num", type=int, help="number of style labels (default 40)")
    g.add_argument("--embedding_dim", type=int, help="style embedding size (default 128)")
    g.add_argument("--ngf", type=int, help="generator width (default 64)")
    g.add_argument("--ndf", type=int, help="discriminator width (default 64)")
    g.add_argument("--norm", choices=["batch", "instance", "none"], help="norm layers (default batch)")
    g.add_argument("--inst_norm", action="store_true", help="zi2zi's name for --norm instance")
    g.add_argument("--sn-generator", "--sn_generator", dest="sn_generator", action="store_true", default=None,
                   help="spectral norm on every Conv/ConvTranspose/Linear of G")
    g.add_argument("--sn-discriminator", "--sn_discriminator", dest="sn_discriminator", action="store_true",
                   default=None, help="spectral norm on every Conv/Linear of D")
    g = p.add_argument_group("losses and optimiser")
    g.add_argument("--lr", type=float, help="generator (and default discriminator) learning rate (0.001)")
    g.add_argument("--lr_D", type=float, help="discriminator learning rate (default: --lr)")
    g.add_argument("--schedule", type=int, help="halve learning rates every this many epochs (20)")
    g.add_argument("--L1_penalty", type=float, help="weight of the L1 loss (100)")
    g.add_argument("--Lconst_penalty", type=float, help="weight of the encoding-constancy loss (15)")
    g.add_argument("--Lcategory_penalty", type=float, help="weight of the style-category loss (1)")
    g.add_argument("--g_steps", type=int, help="generator updates per iteration (2, as zi2zi)")
    g.add_argument("--freeze_encoder", action="store_true", default=None,
                   help="keep the generator's encoder (down path) fixed")
    g.add_argument("--flip_labels", action="store_true", default=None,
                   help="also train on shuffled labels (adversarial, category, const losses; no L1)")
    g = p.add_argument_group("run")
    g.add_argument("--epoch", type=positive("--epoch"), default=100, help="epochs to train")
    g.add_argument("--max_steps", type=positive("--max_steps"), help="stop after this many steps in total")
    g.add_argument("--batch_size", type=positive("--batch_size"), help="pairs per step (16)")
    g.add_argument("--fine_tune", help="train only on these labels, e.g. 1,3")
    g.add_argument("--sample_steps", type=positive("--sample_steps"),
                   help="write a sample grid every this many steps (200)")
    g.add_argument("--checkpoint_steps", type=positive("--checkpoint_steps"), help="checkpoint interval (1000)")
    g.add_argument("--log_steps", type=positive("--log_steps"), help="train.jsonl interval (10)")
    g.add_argument("--keep_last", type=int, help="keep only the newest N checkpoints (0: all)")
    g.add_argument("--no_augment", action="store_true", default=None,
                   help="turn off zi2zi's random enlarge-and-crop")
    g.add_argument("--bold", action="store_true", default=None,
                   help="enlarge up to 20%% instead of 5%% when augmenting")
    g.add_argument("--rotate", action="store_true", default=None, help="occasionally turn pairs 180 degrees")
    g.add_argument("--blur", action="store_true", default=None, help="occasionally blur pairs")
    g = p.add_argument_group("device and speed")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    g.add_argument("--gpu_ids", help="zi2zi's way to pick a GPU, e.g. 0 (first one is used)")
    g.add_argument("--loader", choices=["fast", "pil"], default="fast",
                   help="fast: decode once, augment batches on the device; pil: zi2zi's per-item path")
    g.add_argument("--num_workers", type=int, default=0,
                   help="processes decoding the .obj (fast) or DataLoader workers (pil)")
    g.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off", help="mixed precision")
    g.add_argument("--channels_last", action="store_true", help="NHWC activations (faster on tensor cores)")
    g.add_argument("--compile", action="store_true", help="torch.compile both networks")
    return p.parse_args(argv)


def parse_labels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        labels = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--fine_tune expects comma-separated labels such as 1,3; got {text!r}") from None
    if not labels:
        raise UserError("--fine_tune needs at least one label")
    return labels


def resolve_configs(args, saved: dict | None):
    """ModelConfig and TrainConfig from flags, or from a checkpoint being resumed."""
    if args.inst_norm:
        if args.norm not in (None, "instance"):
            raise UserError(f"--inst_norm contradicts --norm {args.norm}")
        args.norm = "instance"
    given_arch = {k: getattr(args, k) for k in ARCH_FLAGS if getattr(args, k) is not None}
    given_train = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    if saved is None:
        return ModelConfig(**given_arch), TrainConfig(**given_train)
    model_config = ModelConfig.from_dict(saved["model_config"])
    for name, value in given_arch.items():
        if getattr(model_config, name) != value:
            flag = "--" + name.replace("sn_", "sn-") if name.startswith("sn_") else "--" + name
            raise UserError(f"{flag} {value} contradicts the checkpoint being resumed "
                            f"({name}={getattr(model_config, name)}); the architecture comes from the "
                            f"checkpoint, so drop the flag or start a new --experiment_dir")
    train_config = saved_train_config(saved)
    if given_train:
        changed = {k: v for k, v in given_train.items() if getattr(train_config, k) != v}
        if changed:
            print(f"note: resuming with changed loss/optimiser settings {changed}")
            train_config = TrainConfig(**{**train_config.to_dict(), **changed})
    return model_config, train_config


def main(argv=None):
    args = parse_args(argv)
    if args.num_workers < 0:
        raise UserError(f"--num_workers must be >= 0; got {args.num_workers}")
    device = resolve_device(args.device, args.gpu_ids)
    checkpoint_dir = RunOptions(args.experiment_dir, checkpoint_dir=args.checkpoint_dir).paths["checkpoint"]
    resume_step, saved = None, None
    if args.resume is not None:
        resume_step = resolve_step(checkpoint_dir, args.resume, complete=True)
        saved = read_training_state(checkpoint_dir, resume_step)
    elif available_steps(checkpoint_dir):
        raise UserError(f"{checkpoint_dir} already holds checkpoints up to step "
                        f"{available_steps(checkpoint_dir)[-1]}; pass --resume latest to continue that run, "
                        f"or use a new --experiment_dir / --checkpoint_dir")
    saved_data = (saved or {}).get("extra", {}).get("resumed_settings", {})
    for name, default in RESUMED_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, saved_data.get(name, default))
    if args.keep_last < 0:
        raise UserError(f"--keep_last must be >= 0; got {args.keep_last}")
    if isinstance(args.fine_tune, str):
        args.fine_tune = parse_labels(args.fine_tune)
    opts = RunOptions(experiment_dir=args.experiment_dir, data_dir=args.data_dir,
                      checkpoint_dir=args.checkpoint_dir, epoch=args.epoch, batch_size=args.batch_size,
                      sample_steps=args.sample_steps, checkpoint_steps=args.checkpoint_steps,
                      log_steps=args.log_steps, max_steps=args.max_steps, keep_last=args.keep_last,
                      random_seed=args.random_seed,
                      fine_tune=args.fine_tune,
                      loader=args.loader, num_workers=args.num_workers, augment=not args.no_augment,
                      bold=args.bold, rotate=args.rotate, blur=args.blur,
                      extra={"resumed_settings": {k: getattr(args, k) for k in RESUMED_DEFAULTS}})
    model_config, train_config = resolve_configs(args, saved)
    random.seed(args.random_seed)
    np.random.seed(args.random_seed)
    torch.manual_seed(args.random_seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = Zi2ZiModel(model_config, train_config, device, amp=args.amp,
                       channels_last=args.channels_last, compile=args.compile)
    trainer = Trainer(model, opts, resume_step, resolved_options=vars(args))
    sn = [n for n, on in (("G", model_config.sn_generator), ("D", model_config.sn_discriminator)) if on]
    print(f"training on {device}: {trainer.num_pairs} pairs, labels {trainer.data_labels}, "
          f"{model_config.image_size}px, spectral norm on {' and '.join(sn) if sn else 'neither network'}"
          + (f", resuming step {resume_step}" if resume_step is not None else ""))
    try:
        step = trainer.run()
    except KeyboardInterrupt:
        return 130
    if step is None:
        return 0
    print(f"done at step {step}: checkpoints in {opts.paths['checkpoint']}, samples in "
          f"{opts.paths['sample']}, curves in {opts.paths['logs'] / 'losses.png'}")
    return 0


if __name__ == "__main__":
    run(main)
