"""Pack paired images into train.obj and val.obj.

    python package.py --dir experiment/pairs --save_dir experiment/data --split_ratio 0.1 --split_by char

--split_by char puts all styles of a character on one side, so val.obj holds
characters the model never saw in training (seen fonts, unseen characters).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from data.packaging import package
from utils.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", nargs="+", required=True, help="folder(s) of {label}_{count}.jpg pairs")
    p.add_argument("--save_dir", required=True, help="where train.obj and val.obj are written")
    p.add_argument("--split_ratio", type=float, default=0.1, help="share of pairs (or characters) for val.obj")
    p.add_argument("--split_by", choices=["pair", "char"], default="pair",
                   help="split single pairs, or whole characters across every style")
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--dst_json", help="zi2zi's JSON list of {\"font_name\": ...}, index = label in the file names")
    p.add_argument("--type_file", help="font names to keep, one per line; a kept font's label becomes its line")
    p.add_argument("--save_obj_dir", help="with --split_ratio 0: write every pair to this one .obj file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = package(args.dir, args.save_dir, args.split_ratio, args.seed, args.split_by, args.dst_json,
                      args.type_file, args.save_obj_dir)
    for line in summary["skipped"][:20]:
        print(f"skipped {line}")
    if len(summary["skipped"]) > 20:
        print(f"... and {len(summary['skipped']) - 20} more skipped images (all listed in split.json)")
    for split, name in (("train", Path(summary["train_file"]).name), ("val", "val.obj")):
        counts = summary.get(split)
        if counts is None:
            continue
        per_label = ", ".join(f"label {k}: {v}" for k, v in counts.items())
        print(f"{name}: {sum(counts.values())} pairs ({per_label or 'empty'})")
    if "val_chars" in summary:
        print(f"val characters ({len(summary['val_chars'])}) never appear in train.obj")
    return 0


if __name__ == "__main__":
    run(main)
