"""Compare trained runs (for example with and without spectral norm) on one evaluation set.

    python compare.py --run experiments/plain=noSN --run experiments/sn:4000=SN \
        --val_obj experiments/plain/data/val.obj --out_dir reports/sn_vs_plain

Each --run is DIR[:STEP][=NAME] (STEP: a number, latest (default) or best). The architecture of every
run comes from its checkpoint. A --run naming a study folder (runs in DIR/runs/ or DIR/, as
scripts/robustness_study.py or your own sweep makes them, named SETTING__RECIPE_sSEED) compares
every run in it and adds the robustness section: outcomes (trained / collapsed / diverged, from
each run's log), held-out SSIM and ink IoU per recipe, a heat map and paired differences. The evaluation set is a val.obj (ideally characters
held out from training: package.py --split_by char) or is rendered from fonts:
--src_font plus --dst_font LABEL=FONT for each style, over --charset.

Writes report.md, a self-contained report.html, comparison_grid.png, curves.png and
metrics.json. The first run is the baseline: for every metric the report gives the
other run's paired difference with a bootstrap 95% interval and says "X better" or
"no clear difference".
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from data.charsets import load_charset
from evaluation.comparison import RunSpec, compare_runs, eval_set_from_fonts, eval_set_from_obj
from evaluation.report import fmt, write_report
from evaluation.robustness import Study, load_study, study_runs_dir, study_summary
from model.checkpoint import Checkpoints
from model.loading import model_config_of
from utils.cli import add_device_flags, run
from utils.device import choose_device
from utils.errors import UserError
from utils.io import check_output_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="DIR[:STEP][=NAME], STEP a number, latest or best; give two or more")
    p.add_argument("--val_obj", help="evaluation pairs (.obj)")
    p.add_argument("--src_font", help="render the evaluation set: source font")
    p.add_argument("--dst_font", action="append", default=[], help="LABEL=FONT, once per style")
    p.add_argument("--charset", default="CN", help="characters to render (CN, CN_T, JP, KR, FREQn or a text file)")
    p.add_argument("--max_samples", type=int, default=2000, help="evaluate on at most this many pairs")
    p.add_argument("--out_dir", required=True, help="where the report goes")
    p.add_argument("--checkpoints", type=int, default=6,
                   help="also evaluate up to this many checkpoints per run for the metrics-over-steps curves (0: off)")
    p.add_argument("--grid_count", type=int, default=12, help="characters in the comparison grid")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch_size", type=int, default=32)
    add_device_flags(p, amp_help=None)   # fp32 on purpose: the numbers compare like with like
    return p.parse_args(argv)


def runs_to_compare(texts: list[str]) -> tuple[list[RunSpec], Study | None]:
    """The --run list, or every run of the one study folder it names (the baseline recipe's first)."""
    folders = [text for text in texts if "=" not in text and ":" not in text and study_runs_dir(Path(text))]
    if not folders:
        return [RunSpec.parse(text) for text in texts], None
    if len(texts) > 1:
        raise UserError(f"--run {folders[0]} is a study folder: give it as the only --run (every run in it is compared)")
    study = load_study(folders[0])
    evaluated = sorted((r for r in study.runs if r.has_checkpoint), key=lambda r: r.recipe != study.baseline)
    if len(evaluated) < 2:
        raise UserError(f"{folders[0]}: {len(evaluated)} of its {len(study.runs)} runs have a checkpoint; "
                        f"a comparison needs two")
    return [RunSpec(r.name, r.experiment_dir) for r in evaluated], study


def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.out_dir, "--out_dir")
    runs, study = runs_to_compare(args.run)
    device = choose_device(args.device)
    torch.manual_seed(args.seed)
    if bool(args.val_obj) == bool(args.src_font):
        raise UserError("give the evaluation set as --val_obj, or as --src_font with --dst_font LABEL=FONT")
    if args.val_obj:
        evalset = eval_set_from_obj(args.val_obj, args.max_samples, args.seed)
    else:
        dst = {}
        for item in args.dst_font:
            label, sep, path = item.partition("=")
            if not sep or not label.isdigit():
                raise UserError(f"--dst_font expects LABEL=FONT, e.g. 0=fonts/WenKai-Subset.ttf; got {item!r}")
            dst[int(label)] = path
        if not dst:
            raise UserError("--src_font needs at least one --dst_font LABEL=FONT")
        # the glyph size to render at: read from the first run's config, no weights loaded
        config = model_config_of(runs[0].checkpoint_dir, Checkpoints(runs[0].checkpoint_dir).resolve(runs[0].step))
        evalset = eval_set_from_fonts(args.src_font, dst, load_charset(args.charset), config.image_size,
                                      args.max_samples, args.seed)
    print(f"evaluation set: {evalset.description}")
    report = compare_runs(runs, evalset, device, args.batch_size, args.seed, args.bootstrap, args.checkpoints)
    summary = None
    if study is not None:
        summary = study_summary(study, {r.name: r for r in report.runs}, args.bootstrap, args.seed)
        for row in summary["per_recipe"]:
            print(f"{row['recipe']}: {row['trained']} trained, {row['collapsed']} collapsed, {row['diverged']} "
                  f"diverged of {row['runs']}; SSIM median {fmt(row['median_ssim'])}, worst {fmt(row['worst_ssim'])}")
    files = write_report(report, evalset, args.out_dir, args.grid_count, summary)
    floor = report.floor["overall"]
    print(f"{'floor':8s} copying the source: " + ", ".join(f"{m} {fmt(v)}" for m, v in floor.items()))
    for r in report.runs:
        gains = ", ".join(f"{m} {fmt(d.mean, 3)} [{fmt(d.low, 3)}, {fmt(d.high, 3)}]" for m, d in r.versus_floor.items())
        print(f"{'gain':8s} {r.name} over the floor: {gains}")
    base = report.runs[0]
    for r in report.runs[1:]:
        for metric, d in r.versus_first.items():
            print(f"{metric:8s} {base.name}={fmt(base.summary['overall'][metric])} "
                  f"{r.name}={fmt(r.summary['overall'][metric])}  -> {d.verdict}")
    for r in report.runs:
        flag = "COLLAPSED" if r.collapsed else "ok"
        print(f"{r.name}: diversity vs real {fmt(r.collapse['diversity_ratio'])} ({flag}); {r.trend}")
    others = ", ".join(name for name in files if name != "report.html")
    print(f"report: {files['report.html']} (and {others})")
    return 0


if __name__ == "__main__":
    run(main)
