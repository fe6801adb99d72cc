"""A recipe study's table: compare.py's metrics.json over runs named RECIPE_sSEED, averaged per recipe.

A single seed cannot separate recipes whose difference is small: the seed moves the
result too. So every recipe is measured against the baseline trained with the same
seed, and the table gives the mean of those differences and whether every seed agrees
on the sign.
"""
from __future__ import annotations

import re
from collections import defaultdict
from statistics import mean

from .metrics import METRICS

RUN_NAME = re.compile(r"^(?P<recipe>.+)_s(?P<seed>\d+)$")
COLUMNS = ("l1", "ssim", "ink_iou", "rmse", "psnr")


def _split(name: str) -> tuple[str, int]:
    match = RUN_NAME.match(name)
    if not match:
        raise ValueError(f"run name {name!r} is not RECIPE_sSEED (e.g. snD_noD_s1)")
    return match["recipe"], int(match["seed"])


def recipe_table(metrics: dict, baseline: str | None = None) -> list[dict]:
    """One row per recipe: mean metrics over seeds, the mean per-seed difference from the
    baseline (the first run's recipe unless given), whether all seeds agree it is better,
    and how many of its runs collapsed."""
    by_recipe: dict[str, dict[int, dict]] = defaultdict(dict)
    for run in metrics["runs"]:
        recipe, seed = _split(run["name"])
        by_recipe[recipe][seed] = run
    baseline = baseline or _split(metrics["runs"][0]["name"])[0]
    base = by_recipe[baseline]
    rows = []
    for recipe, seeds in by_recipe.items():
        row = {"recipe": recipe, "seeds": sorted(seeds),
               "collapsed": sum(bool(run["collapsed"]) for run in seeds.values()),
               "diversity_ratio": mean(run["collapse"]["diversity_ratio"] for run in seeds.values())}
        for metric in COLUMNS:
            row[metric] = mean(run["summary"]["overall"][metric] for run in seeds.values())
            diffs = [run["summary"]["overall"][metric] - base[seed]["summary"]["overall"][metric]
                     for seed, run in seeds.items() if seed in base]
            higher = METRICS[metric]
            row[f"{metric}_vs_base"] = mean(diffs) if diffs else float("nan")
            row[f"{metric}_all_seeds_better"] = bool(diffs) and recipe != baseline and all(
                (d > 0) == higher and d != 0 for d in diffs)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], baseline: str) -> str:
    """The table as Markdown: means over seeds; in brackets the mean difference from the
    baseline, with * where every seed puts the recipe ahead of it."""
    head = ["recipe", "seeds", *(m.replace("_", " ") for m in COLUMNS), "diversity", "collapsed runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["recipe"] + (" (baseline)" if row["recipe"] == baseline else ""), str(len(row["seeds"]))]
        for metric in COLUMNS:
            cell = f"{row[metric]:.4f}"
            if row["recipe"] != baseline:
                cell += f" ({row[f'{metric}_vs_base']:+.4f}{'*' if row[f'{metric}_all_seeds_better'] else ''})"
            cells.append(cell)
        cells += [f"{row['diversity_ratio']:.2f}", f"{row['collapsed']}/{len(row['seeds'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
