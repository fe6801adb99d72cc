"""Train zi2zi, with or without spectral normalization.

    python train.py --experiment_dir experiment --embedding_num 3 --batch_size 16 \
        --sn-generator --sn-discriminator
    torchrun --nproc_per_node 4 train.py ...     # one process per GPU; --batch_size is the global batch

Reads experiment/data/train.obj (and val.obj for sample grids); writes checkpoints to
experiment/checkpoint, sample grids to experiment/sample, logs to experiment/logs.
`--resume latest` continues a run exactly where it stopped: the architecture comes
from the checkpoint, and every other setting too unless given again.
"""
from __future__ import annotations

import sys

from training.lock import lock_before_imports, lock_experiment

# A second run on a training experiment exits before the seconds torch takes to import.
HELD_LOCK = lock_before_imports(sys.argv[1:]) if __name__ == "__main__" else None

from training.config import build_parser, device_settings, given_flags, resolve_settings  # noqa: E402 (after the lock)
from training.loop import Trainer
from training.recipes import apply_recipe
from training.start import find_start
from training.step import TrainingStep
from utils.cli import run
from utils import distributed
from utils.failures import one_failure_message
from utils.device import configure_backends, choose_device
from utils.experiment import Experiment
from utils.io import check_output_dir
from utils.rng import seed_everything


def main(argv=None):
    args = build_parser(__doc__).parse_args(argv)
    # the command line becomes settings' flags once (norm flags folded, a preset's values filled in);
    # nothing downstream rereads args
    flags, recipe_notes = apply_recipe(given_flags(args))
    experiment = Experiment.from_args(args)
    if args.dry_run:
        for note in recipe_notes:
            print(note)
        start = find_start(flags, experiment.checkpoint)
        device_config = device_settings(flags)
        device = choose_device(device_config.device, device_config.gpu_ids)
        print(resolve_settings(flags, start, device).describe())
        return 0
    check_output_dir(args.experiment_dir, "--experiment_dir")
    if args.checkpoint_dir:
        check_output_dir(args.checkpoint_dir, "--checkpoint_dir")
    ctx = distributed.from_environment()
    # The device comes from flags alone, so the processes can join before any checkpoint is read.
    device_config = device_settings(flags)
    device = choose_device(device_config.device, device_config.gpu_ids, ctx)
    distributed.start(ctx, device, device_config.dist_timeout)
    try:
        with one_failure_message(ctx):
            # one run per experiment: the job's first process holds the lock until it exits
            lock = HELD_LOCK or (lock_experiment(experiment) if ctx.is_main else None)
            ctx.barrier()   # no process reads or writes before the lock is held
            for note in recipe_notes if ctx.is_main else []:
                print(note, flush=True)
            start = find_start(flags, experiment.checkpoint, ctx, device)   # rank 0 decides, all load it
            settings = resolve_settings(flags, start, device)
            experiment = Experiment.at(args.experiment_dir, settings.run.data_dir, args.checkpoint_dir)
            settings.device.check_sync_bn(device, settings.model, ctx.world_size)
            try:
                return train(settings, experiment, start, device, ctx)
            finally:
                if lock is not None:
                    lock.release()
    finally:
        distributed.stop(ctx)


def train(settings, experiment, start, device, ctx) -> int:
    seed_everything(settings.run.random_seed)   # the same initial weights on every process
    configure_backends(device, settings.device.deterministic)
    model = TrainingStep(settings.model, settings.train, device, amp=settings.device.amp,
                         channels_last=settings.device.channels_last, compile=settings.device.compile, dist=ctx,
                         sync_bn=settings.device.sync_bn, fused_adam=settings.device.fused_adam)
    trainer = Trainer(model, settings, experiment, start)
    sn = [n for n, on in (("G", settings.model.sn_generator), ("D", settings.model.sn_discriminator)) if on]
    where = f"{ctx.world_size} processes ({device.type}), {settings.run.batch_size // ctx.world_size} pairs each" \
        if ctx.enabled else str(device)
    trainer.say(f"training on {where}: {trainer.num_pairs} pairs, labels {trainer.data_labels}, "
                f"{settings.model.image_size}px, spectral norm on {' and '.join(sn) if sn else 'neither network'}"
                + (f", resuming step {start.step}" if start.kind == "resume" else "")
                + (f", fine-tuning from step {start.step}" if start.kind == "weights" else ""))
    try:
        step = trainer.run()
    except KeyboardInterrupt as stop:  # the checkpoint is saved; exit as the signal would have
        return getattr(stop, "exit_code", 130)
    if step is not None:
        trainer.say(f"done at step {step}: checkpoints in {experiment.checkpoint}, samples in "
                    f"{experiment.sample}, curves in {experiment.loss_plot}")
    return 0


if __name__ == "__main__":
    run(main)
