"""Average a recipe study's compare.py report over seeds: one Markdown table per recipe.

    python scripts/study_table.py experiments/sn_study/report/metrics.json --out table.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.study import markdown_table, recipe_table
from utils.cli import run
from utils.errors import UserError
from utils.io import atomic_write_text, check_output_file


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("metrics", help="metrics.json written by compare.py")
    p.add_argument("--baseline", help="recipe the others are measured against (default: the first run's)")
    p.add_argument("--out", help="write the table here too")
    args = p.parse_args(argv)
    if args.out:
        check_output_file(args.out, "--out")
    try:
        metrics = json.loads(Path(args.metrics).read_text(encoding="utf-8"))
        rows = recipe_table(metrics, args.baseline)
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise UserError(f"{args.metrics}: not a compare.py metrics.json ({err})") from None
    except ValueError as err:
        raise UserError(f"{args.metrics}: {err}") from None
    baseline = args.baseline or rows[0]["recipe"]
    table = (f"Held-out means over seeds; in brackets the mean per-seed difference from {baseline}, "
             f"* where every seed puts the recipe ahead.\n\n" + markdown_table(rows, baseline))
    print(table)
    if args.out:
        atomic_write_text(args.out, table)
    return 0


if __name__ == "__main__":
    run(main)
