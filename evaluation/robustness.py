"""A robustness study: recipes (plain, SN, ...) trained across settings that destabilise GANs.

SN-GAN's case for spectral normalisation was robustness: across learning rates, Adam
betas and update counts, spectrally normalised discriminators kept training where
others failed. A study here is a folder of runs named `SETTING__RECIPE_sSEED` (a user's
own sweep may use plain names: each is then its own recipe in one setting), each with
its `logs/train.jsonl`, and optionally `study.json` describing the settings and recipes.

Every run's outcome is read from its own log, decided during training by the collapse
watch (an `"event": "collapse"` line: D saturated while L1 stalls, or blank samples) and
the divergence guard (an `"event": "diverged"` line: a loss over `--divergence_factor`
times its running median, over 1e8, or not finite). A diverged run stops there; a
collapsed one trains on. The held-out metrics come from the comparison (the newest
checkpoint of each run); a run that diverged before its first checkpoint has none.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

import torch

from model.checkpoint import available_steps
from utils.errors import UserError
from utils.experiment import Experiment
from utils.logs import read_jsonl

from .metrics import PairedDifference, paired_bootstrap

RUN_NAME = re.compile(r"^(?:(?P<setting>.+?)__)?(?P<recipe>.+?)(?:_s(?P<seed>\d+))?$")
STUDY_FILE = "study.json"
OUTCOMES = ("trained", "collapsed", "diverged")


@dataclass
class StudyRun:
    """One run of a study and what its own log says happened."""
    name: str
    setting: str
    recipe: str
    seed: int
    experiment_dir: Path
    outcome: str = "trained"          # trained, collapsed or diverged
    outcome_step: int | None = None   # the step the watch or the guard decided it
    message: str = ""
    has_checkpoint: bool = False


def parse_run_name(name: str) -> tuple[str, str, int]:
    """`A__snD_s2` -> ("A", "snD", 2); a name without setting or seed is its own recipe in setting "-"."""
    match = RUN_NAME.match(name)
    return match["setting"] or "-", match["recipe"], int(match["seed"] or 0)


def run_outcome(experiment_dir: Path) -> tuple[str, int | None, str]:
    """(outcome, step, message) from the run's train.jsonl: diverged wins over collapsed."""
    events = [row for row in read_jsonl(Experiment.at(experiment_dir).train_log) if "event" in row]
    for kind, outcome in (("diverged", "diverged"), ("collapse", "collapsed")):
        first = next((row for row in events if row["event"] == kind), None)
        if first is not None:
            return outcome, int(first["step"]), str(first.get("message", ""))
    return "trained", None, ""


def study_runs_dir(folder: Path) -> Path | None:
    """The folder holding a study's runs (`folder/runs` or `folder` itself), or None if `folder` is one run."""
    if Experiment.at(folder).checkpoint.is_dir():
        return None
    for candidate in (folder / "runs", folder):
        if candidate.is_dir() and any(Experiment.holds_run(child) for child in candidate.iterdir() if child.is_dir()):
            return candidate
    return None


@dataclass
class Study:
    folder: Path
    runs: list[StudyRun]
    settings: dict[str, str] = field(default_factory=dict)   # setting -> its flags, as the study ran them
    recipes: dict[str, str] = field(default_factory=dict)    # recipe -> its flags
    baseline: str = ""                                        # the recipe the others are measured against

    @property
    def setting_names(self) -> list[str]:
        return list(dict.fromkeys([*self.settings, *(r.setting for r in self.runs)]))

    @property
    def recipe_names(self) -> list[str]:
        return list(dict.fromkeys([*self.recipes, *(r.recipe for r in self.runs)]))

    def runs_of(self, recipe: str, setting: str | None = None, seed: int | None = None) -> list[StudyRun]:
        """The runs of `recipe` (in `setting`, with `seed`, where given)."""
        return [r for r in self.runs if r.recipe == recipe and (setting is None or r.setting == setting)
                and (seed is None or r.seed == seed)]


def load_study(folder: str | Path) -> Study:
    """Every run of the study folder with its outcome, and the settings it describes (study.json)."""
    folder = Path(folder)
    runs_dir = study_runs_dir(folder)
    if runs_dir is None:
        raise UserError(f"{folder} holds no runs (folders with logs/ or checkpoint/)")
    described = {}
    if (folder / STUDY_FILE).is_file():
        try:
            described = json.loads((folder / STUDY_FILE).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"{folder / STUDY_FILE}: not JSON ({err})") from None
    runs = []
    for child in sorted(p for p in runs_dir.iterdir() if Experiment.holds_run(p)):
        setting, recipe, seed = parse_run_name(child.name)
        outcome, step, message = run_outcome(child)
        has_checkpoint = bool(available_steps(Experiment.at(child).checkpoint))
        runs.append(StudyRun(child.name, setting, recipe, seed, child, outcome, step, message, has_checkpoint))
    recipes = described.get("recipes", {})
    baseline = described.get("baseline") or next(iter(recipes), None) or runs[0].recipe
    return Study(folder, runs, described.get("settings", {}), recipes, baseline)


# ---------------------------------------------------------------- tables from an evaluated comparison
def _metric(result, name: str) -> float | None:
    return None if result is None else result.summary["overall"][name]


def recipe_rows(study: Study, results: dict) -> list[dict]:
    """Per recipe: runs trained / collapsed / diverged, and the median and worst held-out SSIM and ink IoU
    over the grid (`results`: run name -> RunResult; runs without a checkpoint have none)."""
    rows = []
    for recipe in study.recipe_names:
        runs = study.runs_of(recipe)
        row = {"recipe": recipe, "runs": len(runs), **{o: sum(r.outcome == o for r in runs) for o in OUTCOMES},
               "unevaluated": sum(r.name not in results for r in runs)}
        for metric in ("ssim", "ink_iou"):
            values = [_metric(results.get(r.name), metric) for r in runs if r.name in results]
            row[f"median_{metric}"] = median(values) if values else None
            row[f"worst_{metric}"] = min(values) if values else None
        rows.append(row)
    return rows


def cell_means(study: Study, results: dict, metric: str = "ssim") -> dict[tuple[str, str], dict]:
    """(setting, recipe) -> mean `metric` over its seeds' evaluated runs, and how many runs collapsed or diverged."""
    cells = {}
    for setting in study.setting_names:
        for recipe in study.recipe_names:
            runs = study.runs_of(recipe, setting)
            if not runs:
                continue
            values = [_metric(results.get(r.name), metric) for r in runs if r.name in results]
            cells[(setting, recipe)] = {"mean": sum(values) / len(values) if values else None, "runs": len(runs),
                                        "collapsed": sum(r.outcome == "collapsed" for r in runs),
                                        "diverged": sum(r.outcome == "diverged" for r in runs)}
    return cells


def paired_differences(study: Study, results: dict, metric: str = "ssim", higher_is_better: bool = True,
                       n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Per setting and recipe: its held-out `metric` minus the baseline recipe's, sample by sample, pooled over
    the seeds both have evaluated, with a bootstrap 95% interval."""
    rows = []
    for setting in study.setting_names:
        for recipe in study.recipe_names:
            if recipe == study.baseline:
                continue
            base, other = [], []
            for run in study.runs_of(recipe, setting):
                twin = next(iter(study.runs_of(study.baseline, setting, run.seed)), None)
                if twin is not None and run.name in results and twin.name in results:
                    base.append(results[twin.name].evaluated.metrics[metric])
                    other.append(results[run.name].evaluated.metrics[metric])
            if not base:
                continue
            d: PairedDifference = paired_bootstrap(torch.cat(base), torch.cat(other), higher_is_better,
                                                   (study.baseline, recipe), n_boot, seed)
            rows.append({"setting": setting, "recipe": recipe, "seeds": len(base), **asdict(d)})
    return rows


def run_rows(study: Study, results: dict) -> list[dict]:
    return [{"run": r.name, "setting": r.setting, "recipe": r.recipe, "seed": r.seed, "outcome": r.outcome,
             "outcome_step": r.outcome_step, "message": r.message, "ssim": _metric(results.get(r.name), "ssim"),
             "ink_iou": _metric(results.get(r.name), "ink_iou")} for r in study.runs]


def study_summary(study: Study, results: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """Everything the report's robustness section shows, as plain data (it goes into metrics.json too)."""
    cells = cell_means(study, results)
    return {"folder": str(study.folder), "baseline": study.baseline, "settings": study.settings,
            "recipes": study.recipes, "setting_order": study.setting_names, "recipe_order": study.recipe_names,
            "per_recipe": recipe_rows(study, results),
            "cells": [{"setting": s, "recipe": r, **v} for (s, r), v in cells.items()],
            "differences": paired_differences(study, results, n_boot=n_boot, seed=seed),
            "runs": run_rows(study, results)}


def heat_map(summary: dict, path: Path) -> Path:
    """Held-out SSIM, settings x recipes, mean over seeds; C marks runs that collapsed, D runs that diverged."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from utils.io import save_figure
    settings, recipes = summary["setting_order"], summary["recipe_order"]
    cells = {(c["setting"], c["recipe"]): c for c in summary["cells"]}
    grid = np.full((len(settings), len(recipes)), np.nan)
    for (i, s), (j, r) in ((a, b) for a in enumerate(settings) for b in enumerate(recipes)):
        if (s, r) in cells and cells[(s, r)]["mean"] is not None:
            grid[i, j] = cells[(s, r)]["mean"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.5 * len(recipes), 1.2 + 0.55 * len(settings)))
    shown = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(recipes)), recipes, fontsize=9)
    ax.set_yticks(range(len(settings)), settings, fontsize=9)
    for i, s in enumerate(settings):
        for j, r in enumerate(recipes):
            cell = cells.get((s, r))
            if cell is None:
                continue
            marks = "".join(["C" * cell["collapsed"], "D" * cell["diverged"]])
            value = "—" if cell["mean"] is None else f"{cell['mean']:.3f}"
            light = cell["mean"] is not None and cell["mean"] < np.nanmean(grid)
            ax.text(j, i, value + (f"\n{marks}" if marks else ""), ha="center", va="center", fontsize=8,
                    color="white" if light else "black", fontweight="bold" if marks else "normal")
    fig.colorbar(shown, ax=ax, label="SSIM")
    ax.set_title("held-out SSIM, mean over seeds\nC: a seed collapsed, D: a seed diverged", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def markdown_section(summary: dict, fmt) -> list[str]:
    """The report's robustness section (the heat map is added with the other pictures)."""
    def table(head, rows):
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]
    lines = ["## Robustness across settings", "",
             "Outcomes from each run's own log: **collapsed** when the collapse watch fired (D saturated while L1 "
             "stalled, or blank samples), **diverged** when the divergence guard stopped the run (a loss over "
             "`--divergence_factor` times its running median, over 1e8, or not finite); SSIM and ink IoU on the "
             "held-out set at each run's newest checkpoint (none for a run that diverged before its first).", ""]
    if summary["settings"]:
        lines += table(["setting", "flags"], [[s, f"`{flags}`" if flags else "zi2zi's defaults"]
                                              for s, flags in summary["settings"].items()]) + [""]
    if summary["recipes"]:
        lines += table(["recipe", "flags"], [[r, f"`{flags}`" if flags else "zi2zi's (no SN)"]
                                             for r, flags in summary["recipes"].items()]) + [""]
    lines += table(["recipe", "runs", "trained", "collapsed", "diverged", "median SSIM", "worst SSIM",
                    "median ink IoU", "worst ink IoU"],
                   [[r["recipe"], str(r["runs"]), str(r["trained"]), str(r["collapsed"]), str(r["diverged"]),
                     fmt(r["median_ssim"]), fmt(r["worst_ssim"]), fmt(r["median_ink_iou"]), fmt(r["worst_ink_iou"])]
                    for r in summary["per_recipe"]]) + [""]
    if summary["differences"]:
        lines += [f"Held-out SSIM of each recipe minus **{summary['baseline']}**'s in the same setting and seed, "
                  f"sample by sample, pooled over seeds (95% bootstrap interval):", ""]
        lines += table(["setting", "recipe", "seeds", f"SSIM difference vs {summary['baseline']}", "verdict"],
                       [[d["setting"], d["recipe"], str(d["seeds"]),
                         f"{fmt(d['mean'], 3)} [{fmt(d['low'], 3)}, {fmt(d['high'], 3)}]", d["verdict"]]
                        for d in summary["differences"]]) + [""]
    lines += table(["run", "outcome", "at step", "SSIM", "ink IoU"],
                   [[r["run"], r["outcome"], "" if r["outcome_step"] is None else str(r["outcome_step"]),
                     fmt(r["ssim"]), fmt(r["ink_iou"])] for r in summary["runs"]]) + [""]
    return lines
