"""The training loop behind train.py: data, logging, samples, checkpoints, resume.

Layout of an experiment directory (zi2zi's, plus logs/ and config.json):

    experiment/data/{train,val}.obj
    experiment/checkpoint/{step}_net_G.pth, {step}_net_D.pth, {step}_state.pth
    experiment/sample/step_{step:07d}.png     source | target | generated
    experiment/logs/train.jsonl               one line per log interval
    experiment/logs/losses.png                curves drawn from train.jsonl
    experiment/config.json                    the resolved options of the latest start
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from data.dataset import DatasetFromObj
from data.loader import BatchIterator, PairBank, label_balanced
from utils.errors import UserError
from utils.images import save_sample_grid
from utils.logs import JsonlLogger, plot_training_log, read_jsonl, truncate_after_step

from .checkpoint import load_checkpoint, prune_checkpoints, save_checkpoint
from .spectral import largest_singular_value
from .zi2zi import Zi2ZiModel


@dataclass
class RunOptions:
    """Everything about a run that is not architecture or loss weights."""
    experiment_dir: str
    data_dir: str | None = None
    checkpoint_dir: str | None = None
    epoch: int = 100
    batch_size: int = 16
    sample_steps: int = 200
    checkpoint_steps: int = 1000
    log_steps: int = 10
    max_steps: int | None = None
    keep_last: int = 0
    random_seed: int = 777
    fine_tune: list[int] | None = None
    loader: str = "fast"
    num_workers: int = 0
    augment: bool = True
    bold: bool = False
    rotate: bool = False
    blur: bool = False
    sample_count: int = 16
    extra: dict = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, Path]:
        root = Path(self.experiment_dir)
        return {"root": root, "data": Path(self.data_dir) if self.data_dir else root / "data",
                "checkpoint": Path(self.checkpoint_dir) if self.checkpoint_dir else root / "checkpoint",
                "sample": root / "sample", "logs": root / "logs"}


class PilBatches:
    """zi2zi-pytorch's data path (PIL decode and augment per item, DataLoader workers)."""

    def __init__(self, obj_path, opts: RunOptions, input_nc: int, device):
        dataset = DatasetFromObj(obj_path, input_nc, opts.augment, opts.bold, opts.rotate, opts.blur)
        if opts.fine_tune is not None:
            wanted = set(opts.fine_tune)
            keep = [i for i, label in enumerate(dataset.labels) if label in wanted]
            dataset = torch.utils.data.Subset(dataset, keep)
        self.dataset, self.opts, self.device = dataset, opts, device
        self.drop_last = len(dataset) >= opts.batch_size

    def __len__(self):
        n, b = len(self.dataset), self.opts.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, epoch: int, start_batch: int = 0):
        generator = torch.Generator().manual_seed(self.opts.random_seed * 1_000_003 + epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.opts.batch_size, shuffle=True, drop_last=self.drop_last,
            num_workers=self.opts.num_workers, generator=generator,
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        for i, (labels, target, source) in enumerate(loader):
            if i >= start_batch:
                yield labels, source, target


def _sample_batch(obj_path: Path, count: int, input_nc: int):
    """A fixed, label-balanced batch of val pairs (no augmentation) for sample grids."""
    bank = PairBank.from_obj(obj_path)
    labels, target, source = bank.model_tensors(label_balanced(bank.labels.tolist(), count))
    expand = (-1, input_nc, -1, -1)
    return labels, source.expand(*expand), target.expand(*expand)


class Trainer:
    def __init__(self, model: Zi2ZiModel, opts: RunOptions, resume_step: int | None = None,
                 resolved_options: dict | None = None):
        self.model, self.opts = model, opts
        self.paths = opts.paths
        self.start_batch = 0
        self.resolved_options = resolved_options or {}
        train_obj, val_obj = self.paths["data"] / "train.obj", self.paths["data"] / "val.obj"
        if not train_obj.exists():
            raise UserError(f"{train_obj} does not exist: run package.py --save_dir {self.paths['data']} "
                            f"first, or point --data_dir at the folder holding train.obj")
        cfg = model.config
        if opts.loader == "fast":
            labels = set(opts.fine_tune) if opts.fine_tune is not None else None
            bank = PairBank.from_obj(train_obj, opts.num_workers, labels)
            self.batches = BatchIterator(bank, opts.batch_size, model.device, cfg.input_nc, opts.augment,
                                         opts.bold, opts.rotate, opts.blur, opts.random_seed)
            data_labels, data_size = bank.labels.tolist(), bank.image_size
        elif opts.loader == "pil":
            self.batches = PilBatches(train_obj, opts, cfg.input_nc, model.device)
            ds = self.batches.dataset
            base = ds.dataset if isinstance(ds, torch.utils.data.Subset) else ds
            data_labels = [base.labels[i] for i in ds.indices] if ds is not base else base.labels
            data_size = base.image_size
            if not data_labels:
                raise UserError(f"{train_obj}: no record has a label in --fine_tune {opts.fine_tune}")
        else:
            raise UserError(f"--loader must be fast or pil; got {opts.loader!r}")
        if data_size != cfg.image_size:
            raise UserError(f"{train_obj} holds {data_size}px glyphs but --image_size is {cfg.image_size}; "
                            f"pass --image_size {data_size} or re-render with --canvas_size {cfg.image_size}")
        if max(data_labels) >= cfg.embedding_num:
            raise UserError(f"{train_obj} has style label {max(data_labels)} but --embedding_num is "
                            f"{cfg.embedding_num}; raise --embedding_num above the largest label")
        self.data_labels = sorted(set(data_labels))
        self.num_pairs = len(data_labels)
        self.sample_obj = val_obj if val_obj.exists() else train_obj
        self.sample = _sample_batch(self.sample_obj, opts.sample_count, cfg.input_nc)
        if resume_step is not None:
            state = load_checkpoint(model, self.paths["checkpoint"], resume_step)
            self.start_batch = int(state.get("extra", {}).get("batches_done_in_epoch", 0))
        self.tensorboard = self._tensorboard()

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional dependency
            return None
        return SummaryWriter(str(self.paths["logs"] / "tensorboard"))

    # ------------------------------------------------------------------ outputs
    def write_config(self) -> None:
        root = self.paths["root"]
        root.mkdir(parents=True, exist_ok=True)
        record = {"options": self.resolved_options, "run": asdict(self.opts),
                  "model_config": self.model.config.to_dict(), "train_config": self.model.train_config.to_dict(),
                  "data": {"train_pairs": self.num_pairs, "labels": self.data_labels,
                           "sample_source": str(self.sample_obj)},
                  "device": str(self.model.device), "amp": self.model.amp,
                  "start_step": self.model.step, "torch": torch.__version__, "command": sys.argv}
        tmp = root / "config.json.tmp"
        tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(root / "config.json")

    def save_samples(self) -> Path:
        labels, source, target = self.sample
        fake = self.model.generate(source, labels)
        return save_sample_grid(source, target, fake, self.paths["sample"] / f"step_{self.model.step:07d}.png")

    def save(self, batches_done_in_epoch: int) -> None:
        save_checkpoint(self.model, self.paths["checkpoint"],
                        extra={"batches_done_in_epoch": batches_done_in_epoch, **self.opts.extra})
        if self.opts.keep_last > 0:
            prune_checkpoints(self.paths["checkpoint"], self.opts.keep_last)

    def plot(self) -> None:
        rows = read_jsonl(self.paths["logs"] / "train.jsonl")
        if rows:
            plot_training_log({Path(self.opts.experiment_dir).name: rows}, self.paths["logs"] / "losses.png")

    # ------------------------------------------------------------------ loop
    def run(self) -> int | None:
        """Train to the end; returns the final step, or None if there was nothing to do."""
        model, opts = self.model, self.opts
        model.train()
        self.write_config()
        log_path = self.paths["logs"] / "train.jsonl"
        truncate_after_step(log_path, model.step)  # a resumed run rewrites what came after its checkpoint
        logger = JsonlLogger(log_path)
        steps_per_epoch = len(self.batches)
        total = opts.epoch * steps_per_epoch
        if opts.max_steps is not None:
            total = min(total, opts.max_steps)
        if model.step >= total:
            print(f"nothing to do: step {model.step} already reaches {total} "
                  f"(raise --epoch or --max_steps to train further)")
            return None
        bar = tqdm(total=total, initial=model.step, unit="step", dynamic_ncols=True)
        last_time, last_step = time.perf_counter(), model.step
        batches_done = self.start_batch  # of the current epoch, saved so a resume skips them
        window: dict[str, float] = {}
        try:
            while model.epoch < opts.epoch and model.step < total:
                for batch_index, (labels, real_A, real_B) in enumerate(
                        self.batches.epoch(model.epoch, self.start_batch), start=self.start_batch):
                    stats = model.optimize_parameters(labels, real_A, real_B)
                    batches_done = batch_index + 1
                    for k, v in stats.items():
                        window[k] = window.get(k, 0.0) + v
                    bar.update(1)
                    bar.set_postfix(d=f"{stats['d_loss']:.3f}", g=f"{stats['g_loss']:.2f}",
                                    l1=f"{stats['l1_loss']:.2f}", epoch=model.epoch)
                    step = model.step
                    if step % opts.log_steps == 0 or step == total:
                        now = time.perf_counter()
                        n = step - last_step
                        record = {"step": step, "epoch": model.epoch,
                                  **{k: v / n for k, v in window.items()}, **model.learning_rates,
                                  "img_per_s": n * opts.batch_size / max(now - last_time, 1e-9)}
                        if model.config.sn_generator:
                            record["sigma_G"] = largest_singular_value(model.netG)
                        if model.config.sn_discriminator:
                            record["sigma_D"] = largest_singular_value(model.netD)
                        logger.write(record)
                        if self.tensorboard is not None:
                            for k, v in record.items():
                                if k != "step":
                                    self.tensorboard.add_scalar(k, v, step)
                        window, last_time, last_step = {}, now, step
                    if step % opts.sample_steps == 0:
                        self.save_samples()
                    if step % opts.checkpoint_steps == 0:
                        self.save(batches_done)
                    if step >= total:
                        break
                else:
                    self.start_batch = batches_done = 0
                    model.epoch += 1
                    if model.epoch % model.train_config.schedule == 0:
                        rates = model.update_lr()
                        tqdm.write(f"epoch {model.epoch}: learning rates now G {rates['lr_G']:.6f}, "
                                   f"D {rates['lr_D']:.6f}")
                    continue
                break
        except KeyboardInterrupt:
            bar.close()
            self.save(batches_done)
            logger.close()
            self.plot()
            print(f"interrupted: checkpoint saved at step {model.step} in {self.paths['checkpoint']}; "
                  f"continue with --resume latest")
            raise
        bar.close()
        self.save(batches_done)
        self.save_samples()
        logger.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.plot()
        return model.step
