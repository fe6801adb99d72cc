"""A/B comparison of trained runs on one evaluation set (the work behind compare.py).

Every run's generator is evaluated in eval mode on the same source glyphs; quality
metrics are compared sample by sample against the first run with a paired
bootstrap, mode collapse is measured against the real targets, and training
stability is read from each run's logs/train.jsonl.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from data.dataset import to_tensor
from data.loader import PairBank
from data.render import Font, RenderSettings, render_char
from model.checkpoint import available_steps
from model.loading import load_generator
from model.config import ModelConfig
from model.inference import generate
from utils.errors import UserError
from utils.experiment import Experiment
from utils.logs import read_jsonl

from .metrics import (FLOOR_NAME, METRICS, PairedDifference, copy_source_scores, is_collapsed, label_sensitivity,
                      paired_bootstrap, score_outputs, stability_measures, to_unit)


@dataclass
class RunSpec:
    name: str
    experiment_dir: Path
    step: str = "latest"

    @property
    def checkpoint_dir(self) -> Path:
        return Experiment.at(self.experiment_dir).checkpoint

    @classmethod
    def parse(cls, text: str) -> "RunSpec":
        """`DIR[:STEP][=NAME]`, e.g. `experiments/sn:4000=SN`, `experiments/sn:best` or `experiments/plain`."""
        name = None
        if "=" in text:
            text, name = text.rsplit("=", 1)
        step = "latest"
        head, sep, tail = text.rpartition(":")
        if sep and (tail in ("latest", "best") or tail.isdigit()):
            text, step = head, tail
        path = Path(text)
        if not path.is_dir():
            raise UserError(f"--run {text}: no such experiment directory")
        return cls(name or path.name, path, step)


@dataclass
class EvalSet:
    """Source and real target glyphs (N, 1, H, W) in [-1, 1], labels, optional characters."""
    sources: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    chars: list[str | None]
    description: str
    groups: list[list[int]] = field(default_factory=list)  # indices of one character, one per label

    @property
    def image_size(self) -> int:
        return self.sources.shape[-1]


def _group_by_source(sources: torch.Tensor, labels: torch.Tensor, chars: list[str | None]) -> list[list[int]]:
    """Indices showing the same character in every label of the set.

    Without known characters, identical source halves identify a character: the same
    source glyph decodes to the same pixels in every pair that holds it.
    """
    keys: dict[str, dict[int, int]] = {}
    for i, (src, label) in enumerate(zip(sources, labels.tolist())):
        key = chars[i] or hashlib.sha1(src.numpy().tobytes()).hexdigest()
        keys.setdefault(key, {}).setdefault(label, i)
    all_labels = sorted(set(labels.tolist()))
    return [[by_label[l] for l in all_labels] for by_label in keys.values() if len(by_label) == len(all_labels)]


def eval_set_from_obj(obj_path: str | Path, limit: int | None = None, seed: int = 0) -> EvalSet:
    def pick(labels: list[int]) -> list[int]:   # only the pairs evaluated are decoded
        index = list(range(len(labels)))
        return sorted(random.Random(seed).sample(index, limit)) if limit is not None and limit < len(index) else index
    bank = PairBank.from_obj(obj_path, choose=pick)
    labels, sources, targets = bank.batch()
    chars = [None] * len(bank)
    return EvalSet(sources, targets, labels, chars, f"{obj_path} ({len(bank)} pairs)",
                   _group_by_source(bank.pairs[:, 1], labels, chars))


def eval_set_from_fonts(src_font: str, dst_fonts: dict[int, str], chars: list[str], image_size: int,
                        limit: int | None = None, seed: int = 0) -> EvalSet:
    settings = RenderSettings(image_size, image_size)
    src = Font(src_font, image_size, flag="--src_font")
    if limit is not None and limit < len(chars):
        chars = sorted(random.Random(seed).sample(chars, limit))
    s_list, t_list, l_list, c_list = [], [], [], []
    for label, path in sorted(dst_fonts.items()):
        dst = Font(path, image_size, flag="--dst_font")
        for ch in chars:
            s, t = render_char(src, ch, settings), render_char(dst, ch, settings)
            if s is None or t is None:
                continue
            s_list.append(to_tensor(s, 1))
            t_list.append(to_tensor(t, 1))
            l_list.append(label)
            c_list.append(ch)
    if not s_list:
        raise UserError("the evaluation fonts share no drawable character of --charset")
    labels = torch.tensor(l_list)
    sources = torch.stack(s_list)
    return EvalSet(sources, torch.stack(t_list), labels, c_list,
                   f"rendered from {Path(src_font).name} ({len(l_list)} pairs)",
                   _group_by_source(sources, labels, c_list))


@dataclass
class CheckpointResult:
    """One checkpoint on the evaluation set: its outputs, per-sample metrics, collapse measures."""
    step: int
    config: ModelConfig
    fake: torch.Tensor
    metrics: dict[str, torch.Tensor]
    collapse: dict[str, float]

    def means(self) -> dict[str, float]:
        return {k: v.mean().item() for k, v in self.metrics.items()}


def evaluate_checkpoint(run: RunSpec, step, evalset: EvalSet, device, batch_size: int) -> CheckpointResult:
    """Generated glyphs, per-sample metrics and collapse measures of one checkpoint."""
    netG, config, step = load_generator(run.checkpoint_dir, step, device)
    config.check_data(f"the evaluation set (for run {run.name})", evalset.image_size, evalset.labels.unique())

    def outputs(sources, labels):
        return generate(netG, sources, labels, batch_size, device, progress=False)

    fake = outputs(evalset.sources, evalset.labels)
    result = CheckpointResult(step, config, fake, *score_outputs(fake, evalset.targets, evalset.labels))
    if evalset.groups:
        firsts = [g[0] for g in evalset.groups]
        all_labels = sorted(set(evalset.labels.tolist()))
        src = evalset.sources[firsts]
        by_label = {label: to_unit(outputs(src, torch.full((len(firsts),), label))) for label in all_labels}
        real = {label: to_unit(evalset.targets[[g[k] for g in evalset.groups]])
                for k, label in enumerate(all_labels)}
        result.collapse.update(label_sensitivity(by_label, real))
    return result


def summarize(per_sample: dict[str, torch.Tensor], labels: torch.Tensor) -> dict:
    overall = {name: values.mean().item() for name, values in per_sample.items()}
    by_label = {int(label): {name: values[labels == label].mean().item() for name, values in per_sample.items()}
                for label in labels.unique()}
    return {"overall": overall, "by_label": by_label}


def checkpoint_series(run: RunSpec, evalset: EvalSet, device, batch_size: int, count: int,
                      evaluated: CheckpointResult | None = None) -> list[dict]:
    """Mean metrics and diversity at up to `count` evenly spaced checkpoints of a run.

    `evaluated`, a checkpoint already evaluated, is reused rather than evaluated again.
    """
    steps = available_steps(run.checkpoint_dir)
    if count <= 0 or not steps:
        return []
    if len(steps) > count:
        steps = [steps[round(i * (len(steps) - 1) / (count - 1))] for i in range(count)] if count > 1 else steps[-1:]
    series = []
    for step in tqdm(list(dict.fromkeys(steps)), desc=f"checkpoints of {run.name}", unit="ckpt", leave=False):
        r = evaluated if evaluated is not None and evaluated.step == step else \
            evaluate_checkpoint(run, step, evalset, device, batch_size)
        series.append({"step": step, **r.means(), "diversity_ratio": r.collapse["diversity_ratio"]})
    return series


def collapse_and_recovery(series: list[dict]) -> str:
    """Describe a dip in diversity across checkpoints ("learn, collapse, relearn")."""
    values = [(s["step"], s["diversity_ratio"]) for s in series if not math.isnan(s["diversity_ratio"])]
    for i in range(1, len(values)):
        best_before = max(v for _, v in values[:i])
        if values[i][1] < 0.5 * best_before:
            later = [v for _, v in values[i + 1:]]
            if later and max(later) > 0.8 * best_before:
                return f"diversity collapsed at step {values[i][0]} and recovered later"
            return f"diversity collapsed at step {values[i][0]} and had not recovered by the last checkpoint"
    return "no collapse across checkpoints" if len(values) > 1 else "too few checkpoints to tell"


@dataclass
class RunResult:
    """One run of a comparison: its evaluated checkpoint and what the report says about it."""
    name: str
    experiment_dir: str
    evaluated: CheckpointResult
    summary: dict                 # {"overall": {metric: mean}, "by_label": {label: {metric: mean}}}
    stability: dict[str, float]
    log: list[dict]               # train.jsonl rows up to the evaluated step
    series: list[dict]            # metrics at evenly spaced checkpoints
    versus_first: dict[str, PairedDifference] = field(default_factory=dict)
    versus_floor: dict[str, PairedDifference] = field(default_factory=dict)   # run minus copying the source

    @property
    def step(self) -> int:
        return self.evaluated.step

    @property
    def config(self) -> ModelConfig:
        return self.evaluated.config

    @property
    def collapse(self) -> dict[str, float]:
        return self.evaluated.collapse

    @property
    def collapsed(self) -> bool:
        return is_collapsed(self.collapse)

    @property
    def trend(self) -> str:
        return collapse_and_recovery(self.series)

    def to_json(self) -> dict:
        return {"name": self.name, "experiment_dir": self.experiment_dir, "step": self.step,
                "config": self.config.to_dict(), "summary": self.summary, "collapse": self.collapse,
                "collapsed": self.collapsed, "trend": self.trend, "stability": self.stability,
                "series": self.series, "versus_first": {k: asdict(v) for k, v in self.versus_first.items()},
                "versus_floor": {k: asdict(v) for k, v in self.versus_floor.items()}}


@dataclass
class Comparison:
    """Everything the report shows: the evaluation set and every run, the first being the baseline."""
    eval_set: str
    labels: list[int]
    samples: int
    seed: int
    runs: list[RunResult]
    floor: dict = field(default_factory=dict)   # copying the source: {"overall": ..., "by_label": ...}

    def to_json(self) -> dict:
        return {"eval_set": self.eval_set, "labels": self.labels, "samples": self.samples, "seed": self.seed,
                "floor": {"name": FLOOR_NAME, **self.floor}, "runs": [r.to_json() for r in self.runs]}


def evaluate_run(run: RunSpec, evalset: EvalSet, device, batch_size: int, checkpoints: int) -> RunResult:
    evaluated = evaluate_checkpoint(run, run.step, evalset, device, batch_size)
    rows = [row for row in read_jsonl(Experiment.at(run.experiment_dir).train_log)
            if row.get("step", 0) <= evaluated.step]
    return RunResult(run.name, str(run.experiment_dir), evaluated, summarize(evaluated.metrics, evalset.labels),
                     stability_measures(rows), rows,
                     checkpoint_series(run, evalset, device, batch_size, checkpoints, evaluated))


def compare_runs(runs: list[RunSpec], evalset: EvalSet, device, batch_size: int = 16, seed: int = 0,
                 n_boot: int = 2000, checkpoints: int = 6) -> Comparison:
    """Evaluate every run on `evalset` and compare each with the first, sample by sample."""
    if len(runs) < 2:
        raise UserError("give at least two --run to compare")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise UserError(f"run names must differ ({', '.join(names)}); name them with DIR=NAME")
    results = [evaluate_run(run, evalset, device, batch_size, checkpoints)
               for run in tqdm(runs, desc="runs", unit="run", leave=False)]
    base = results[0]
    for r in results[1:]:
        r.versus_first = {metric: paired_bootstrap(base.evaluated.metrics[metric], r.evaluated.metrics[metric],
                                                   higher, (base.name, r.name), n_boot, seed)
                          for metric, higher in METRICS.items()}
    # the trivial answer on the same pairs: how much of each score the model learned
    floor = copy_source_scores(evalset.sources, evalset.targets)
    for r in results:
        r.versus_floor = {metric: paired_bootstrap(floor[metric], r.evaluated.metrics[metric], higher,
                                                   (FLOOR_NAME, r.name), n_boot, seed)
                          for metric, higher in METRICS.items()}
    return Comparison(evalset.description, sorted(set(evalset.labels.tolist())), len(evalset.labels), seed, results,
                      summarize(floor, evalset.labels))
