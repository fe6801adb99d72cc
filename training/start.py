"""Where a training run starts: fresh, resumed from its own checkpoint, or from weights alone.

- new run: nothing to load;
- `--resume N|latest` with a state file: the whole run continues (weights, optimisers,
  step, epoch, RNG, data position, settings);
- `--resume N` on zi2zi-pytorch's checkpoints (`N_net_G.pth` / `N_net_D.pth`, no state
  file): fine-tuning from those weights at step N, architecture read from the weights,
  fresh optimisers;
- `--init_from DIR[:STEP]`: a new experiment that starts from another run's (or a
  pre-trained model's) weights at step 0; `--embedding_num` may grow to add labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from model.checkpoint import CheckpointError, Checkpoints
from model.loading import load_weights, load_weights_growing_labels
from utils.distributed import SINGLE, Distributed
from utils.errors import UserError
from utils.experiment import Experiment

from .checkpoint import TrainingState, load_checkpoint


@dataclass
class Start:
    """Where a run starts; the architecture it implies is decided by training.config.decide_model."""
    kind: str                          # "new", "resume", "weights" or "init_from"
    step: int = 0
    state: TrainingState | None = None  # the checkpoint's training state, for "resume"
    weights_dir: Path | None = None    # where the weights come from
    source_step: int | None = None     # the step of the weights, for "init_from"
    new_label_init: str = "nearest"    # "init_from" growing the labels: how a new label's style starts


class Decision(NamedTuple):
    """Where the run starts, as rank 0 tells the others: the files to read, not their contents."""
    kind: str                          # "new", "resume", "weights" or "init_from"
    step: int = 0
    weights_dir: Path | None = None
    source_step: int | None = None


def find_start(flags: dict, checkpoint_dir: Path, dist: Distributed = SINGLE, device=None) -> Start:
    """Decide how the run starts from --resume / --init_from and what the checkpoint folder holds.

    Under torchrun rank 0 decides from its own directory listing and every rank then
    loads the step it chose: on a shared file system with listing caches, nodes that
    each resolved `latest` could otherwise load different steps.
    """
    decision = dist.decide_on_main(lambda: decide_start(flags, checkpoint_dir), device)
    return open_start(flags, decision, dist)


def open_start(flags: dict, decision: Decision, dist: Distributed = SINGLE) -> Start:
    """The Start of `decision`, read from the files it names (on every rank alike)."""
    kind, step, weights_dir, source_step = decision
    if kind == "resume":
        checkpoints = Checkpoints(weights_dir)
        state = TrainingState.load(checkpoints, step)
        if state is None:   # rank 0 found it; another node does not see it
            raise CheckpointError(f"rank 0 resumes step {step}, but {checkpoints.files(step)['state']} is missing "
                                  f"on rank {dist.rank}: is {weights_dir} on a file system every node shares?")
        return Start("resume", step, state, weights_dir)
    if kind in ("weights", "init_from"):
        return Start(kind, step, None, weights_dir, source_step, flags.get("new_label_init") or "nearest")
    return Start("new")


def decide_start(flags: dict, checkpoint_dir: Path) -> Decision:
    """find_start's decision on one process, from this process's view of the folders."""
    resume, init_from = flags.get("resume"), flags.get("init_from")
    if resume is not None and init_from is not None:
        raise UserError("give --resume (continue this experiment) or --init_from (start a new one from other "
                        "weights), not both")
    if flags.get("new_label_init") is not None and init_from is None:
        raise UserError("--new_label_init says how labels added with --init_from start; give --init_from too")
    checkpoints = Checkpoints(checkpoint_dir)
    if resume is not None:
        # "latest" is the newest complete (and readable) checkpoint of this project when there is one;
        # otherwise zi2zi's weights-only checkpoints count
        own_run = str(resume) == "latest" and bool(checkpoints.steps(complete=True))
        step = checkpoints.resolve(resume, complete=own_run)
        files = checkpoints.files(step)
        if files["state"].exists():
            return Decision("resume", step, checkpoint_dir)
        if not files["D"].exists():
            raise CheckpointError(f"{files['D']} is missing: training from weights needs both networks' files")
        return Decision("weights", step, checkpoint_dir)
    existing = checkpoints.steps()
    if existing and not flags.get("dry_run"):
        raise UserError(f"{checkpoint_dir} already holds checkpoints up to step {existing[-1]}; "
                        f"pass --resume latest to continue that run, or use a new --experiment_dir / --checkpoint_dir")
    if init_from is not None:
        source_dir, step = parse_init_from(init_from)
        return Decision("init_from", 0, source_dir, step)
    return Decision("new")


def parse_init_from(text: str) -> tuple[Path, int]:
    """`DIR[:STEP]`: an experiment folder (its checkpoint/) or a folder of `{step}_net_*.pth` files;
    STEP is a step number, `latest` (the default) or `best` (the run's best.json, under --keep_best)."""
    head, sep, tail = text.rpartition(":")
    named = sep and (tail.isdigit() or tail in ("latest", "best"))
    folder, step = (Path(head), tail) if named else (Path(text), "latest")
    inside = Experiment.at(folder).checkpoint
    if inside.is_dir():   # an experiment folder
        folder = inside
    if not folder.is_dir():
        raise UserError(f"--init_from {text}: no such folder")
    return folder, Checkpoints(folder).resolve(step)


NEAREST_SAMPLE = 64   # a new label's glyphs the base styles are scored on


def nearest_styles(generate, sources, targets, known: int) -> torch.Tensor:
    """Mean L1 (on [0, 1]) between each of the `known` base styles' outputs for `sources` and `targets`."""
    scores = []
    for label in range(known):
        fake = generate(sources, torch.full((len(sources),), label, dtype=torch.long))
        scores.append(((fake.float() - targets.float()).abs().mean() / 2).item())
    return torch.tensor(scores)


def start_new_labels_near(model, train_obj: Path, had: int) -> list[str]:
    """Each new label's style embedding starts as the base style whose output is nearest its glyphs.

    A style learnt from a few hundred glyphs moves less far from a near style than from a random
    point; the nearest is judged on the label's first NEAREST_SAMPLE training pairs, by the base
    generator's own outputs (what a style looks like, not what its vector is).
    """
    from data.loader import PairBank
    from data.obj import scan_obj
    new = set(range(had, model.config.embedding_num))
    notes = []
    if not new & set(scan_obj(train_obj).labels):
        return [f"note: labels {sorted(new)} have no training pairs; their styles start from the usual initialisation"]
    bank = PairBank.from_obj(train_obj, labels=new, choose=lambda found: _first_of_each(found, NEAREST_SAMPLE))
    labels, sources, targets = bank.batch()
    embedding = _embedder(model.netG).weight
    for label in sorted(set(labels.tolist())):
        mine = labels == label
        scores = nearest_styles(model.generate, sources[mine], targets[mine], had)
        best = int(scores.argmin())
        with torch.no_grad():
            embedding[label].copy_(embedding[best])
        ranked = scores.argsort().tolist()
        runner_up = f"; next label {ranked[1]}, {scores[ranked[1]]:.4f}" if len(ranked) > 1 else ""
        notes.append(f"note: label {label} starts from label {best}'s style, the base style nearest its glyphs "
                     f"(L1 {scores[best]:.4f} on {int(mine.sum())} of them{runner_up})")
    missing = sorted(new - set(labels.tolist()))
    if missing:
        notes.append(f"note: labels {missing} have no training pairs; their styles start from the usual initialisation")
    return notes


def _first_of_each(labels: list[int], count: int) -> list[int]:
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(labels):
        if seen.get(label, 0) < count:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return keep


def _embedder(netG):
    return getattr(netG, "module", netG).embedder


def apply_start(model, start: Start, train_obj: Path | None = None) -> tuple[TrainingState | None, list[str]]:
    """Load what the start says into `model`; returns the resumed TrainingState (None for any other
    start: the loop's fields start afresh) and notes to print."""
    if start.kind == "resume":
        return load_checkpoint(model, start.weights_dir, start.step, state=start.state), []
    if start.kind == "weights":
        files = Checkpoints(start.weights_dir).files(start.step)
        load_weights(model.netG, files["G"], "G")
        load_weights(model.netD, files["D"], "D")
        model.step = start.step
        return None, [f"note: step {start.step} in {start.weights_dir} has weights only (as zi2zi-pytorch saves "
                      f"them): fine-tuning from them at step {start.step}, architecture read from the weights; not "
                      f"restored: optimiser state, learning-rate schedule, epoch, RNG and data position (fresh Adam "
                      f"at --lr, epoch 0)"]
    if start.kind == "init_from":
        files = Checkpoints(start.weights_dir).files(start.source_step)
        had = load_weights_growing_labels(model.netG, files["G"], "G")
        load_weights_growing_labels(model.netD, files["D"], "D")
        notes = [f"note: starting from the weights in {start.weights_dir} (step {start.source_step}) at step 0 "
                 f"with fresh optimisers"]
        if had < model.config.embedding_num:
            if start.new_label_init == "nearest" and train_obj is not None:
                notes.append(f"note: labels {had}..{model.config.embedding_num - 1} are new: the category head's rows "
                             f"for them start from the usual initialisation; labels 0..{had - 1} keep theirs")
                notes += start_new_labels_near(model, train_obj, had)
            else:
                notes.append(f"note: labels {had}..{model.config.embedding_num - 1} are new: their style embeddings "
                             f"and the category head's rows for them start from the usual initialisation; labels "
                             f"0..{had - 1} keep theirs")
        return None, notes
    return None, []
