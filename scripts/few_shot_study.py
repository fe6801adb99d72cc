"""How many characters must a writer give? Fine-tuning a base against training from scratch.

    python scripts/few_shot_study.py --out experiments/few_shot          # the CPU study (docs/few_shot.md)
    python scripts/few_shot_study.py --out ... --sizes 300 --sweep 0    # one size only

A base is trained (scripts/train_base.sh) on the fonts of docs/corpus_fonts.txt except the
held-out ones; each held-out font then plays a writer who gives N glyphs (the COVERn sets,
and FREQ300 beside COVER300). For each N a run fine-tuned from the base with `--recipe
few_shot` and a run from scratch with the same architecture and step count are scored on
characters outside every training set, rendered from the held-out font, with compare.py's
paired bootstrap intervals and the copy-the-source floor. `--sweep` also trains the recipe's
alternatives at N = 300 on the first held-out font (slower rate, frozen encoder, random new
label, base pairs mixed into the batches), which is how the recipe's values were chosen.
Writes OUT/table.md, OUT/study.json and OUT/grid.png. A rerun skips what is done.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.charsets import load_charset  # noqa: E402
from data.obj import read_obj, write_obj  # noqa: E402
from evaluation.comparison import RunSpec, compare_runs, eval_set_from_fonts  # noqa: E402
from model.checkpoint import Checkpoints  # noqa: E402
from training.recipes import FEW_SHOT  # noqa: E402
from utils.cli import run  # noqa: E402
from utils.experiment import Experiment  # noqa: E402
from utils.images import grid_image  # noqa: E402
from utils.io import atomic_write_text, save_image  # noqa: E402

SRC_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
SRC_INDEX = 2
# one kai (handwriting-like) and one display font, never in the base
HELD_OUT = {"kai": "/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf",
            "display": "/usr/share/fonts/truetype/smiley-sans/SmileySans-Oblique.ttf"}
EVAL_COUNT = 100
SIZE, WIDTH, BATCH, SEED = 64, 32, 16, 1
ARCH = ["--image_size", str(SIZE), "--ngf", str(WIDTH), "--ndf", str(WIDTH), "--sn-generator", "--sn-discriminator",
        "--norm_D", "none"]
SHOWN = ["ft50", "ft100", "ft300", "ft1000", "scratch300", "scratch1000"]
# the recipe's alternatives, each against the recipe at N = 300 (flags after --recipe few_shot)
SWEEP = {"frozen encoder": ["--freeze_encoder"], "random new label": ["--new_label_init", "random"],
         "lr 2e-4": ["--lr", "0.0002"], "base pairs mixed in": None}


def sh(cmd: list, log: Path) -> float:
    """Run a command, its output to `log`; the seconds it took."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([str(c) for c in cmd], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}; see {log}")
    return time.perf_counter() - start


def amp_flags() -> list[str]:
    return ["--amp", "bf16"] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else []


def eval_chars(sets: list[str]) -> list[str]:
    """Common characters outside every training set of the study, in frequency order."""
    seen = set().union(*(load_charset(s) for s in sets))
    return [c for c in load_charset("FREQ2000") if c not in seen][:EVAL_COUNT]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="experiments/few_shot")
    p.add_argument("--sizes", default="50,100,300,1000", help="N: the COVERn sets written")
    p.add_argument("--base_steps", type=int, default=1500)
    p.add_argument("--cap_steps", type=int, help="at most this many steps a run (a quick try of the script)")
    p.add_argument("--sweep", type=int, default=len(SWEEP), help="how many of the alternatives to train (0: none)")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    sizes = [int(n) for n in args.sizes.split(",")]
    times_file = out / "times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}

    def timed(key, cmd, log):
        if key not in times:
            times[key] = round(sh(cmd, out / log), 1)
            atomic_write_text(times_file, json.dumps(times, indent=1))
            print(f"{key}: {times[key]:.0f} s", flush=True)

    # the base, from every corpus font but the held-out ones
    fonts = [line for line in (ROOT / "docs/corpus_fonts.txt").read_text().splitlines()
             if line.strip() and not any(line.startswith(f) for f in HELD_OUT.values())]
    (out / "base_fonts.txt").write_text("\n".join(fonts) + "\n")
    base = out / "base"
    if Checkpoints(Experiment.at(base).checkpoint).best() is None:
        timed("base", ["env", f"STEPS={args.base_steps}", "bash", "scripts/train_base.sh", out / "base_fonts.txt",
                       base], "base.log")
    labels = len(json.loads((base / "styles.json").read_text())["styles"])
    sets = [f"COVER{n}" for n in sizes] + (["FREQ300"] if 300 in sizes else [])
    chars = eval_chars(sets)

    def data_for(font_key: str, charset: str) -> Path:
        data = out / "data" / f"{font_key}_{charset}"
        if not (data / "train.obj").exists():
            sh([py, "font2img.py", "--src_font", SRC_FONT, "--src_font_index", SRC_INDEX, "--dst_font",
                HELD_OUT[font_key], "--charset", charset, "--label", labels, "--char_size", SIZE, "--canvas_size",
                SIZE, "--sample_count", 0, "--sample_dir", data / "pairs", "--overwrite"], out / "render.log")
            sh([py, "package.py", "--dir", data / "pairs", "--save_dir", data, "--split_ratio", 0], out / "render.log")
        return data

    def mixed(data: Path) -> Path:
        """The new glyphs and as many base pairs, drawn evenly from the base's labels."""
        mix = data.with_name(data.name + "_mix")
        if not (mix / "train.obj").exists():
            new = read_obj(data / "train.obj")
            pool = read_obj(base / "data" / "train.obj")
            picked = random.Random(SEED).sample(pool, len(new))
            mix.mkdir(parents=True, exist_ok=True)
            write_obj(mix / "train.obj", [(r.label, r.image_bytes) for r in new + picked])
        return mix

    def train(name: str, data: Path, steps: int, extra: list, fine_tune: bool):
        steps = min(steps, args.cap_steps or steps)
        exp = out / "runs" / name
        if steps in Checkpoints(Experiment.at(exp).checkpoint).steps():
            return exp
        common = ["--experiment_dir", exp, "--data_dir", data, "--device", "cpu", *amp_flags(), "--batch_size",
                  BATCH, "--random_seed", SEED, "--eval_steps", 0, "--max_steps", steps]
        if fine_tune:
            cmd = [py, "train.py", *common, "--init_from", f"{base}:best", "--recipe", "few_shot", *extra]
        else:
            interval = max(1, steps // FEW_SHOT.checkpoints)
            cmd = [py, "train.py", *common, *ARCH, "--embedding_num", labels + 1, "--epoch", 1_000_000,
                   "--checkpoint_steps", interval, "--sample_steps", interval, *extra]
        if exp.exists():   # an interrupted run starts again
            subprocess.run(["rm", "-rf", str(exp)], check=True)
        timed(name, cmd, f"{name}.log")
        return exp

    rows, series, grids = [], [], []
    for font_key, font in HELD_OUT.items():
        runs = {}
        for n in sizes:
            data = data_for(font_key, f"COVER{n}")
            steps = FEW_SHOT.steps(n)
            runs[f"ft{n}"] = train(f"{font_key}_ft{n}", data, steps, [], True)
            runs[f"scratch{n}"] = train(f"{font_key}_scratch{n}", data, steps, [], False)
        if 300 in sizes:
            runs["ft300 FREQ300"] = train(f"{font_key}_ft300_freq", data_for(font_key, "FREQ300"),
                                          FEW_SHOT.steps(300), [], True)
            if args.sweep and font_key == next(iter(HELD_OUT)):
                for variant, flags in list(SWEEP.items())[:args.sweep]:
                    data = data_for(font_key, "COVER300")
                    name = f"{font_key}_ft300_" + variant.replace(" ", "_")
                    runs[f"ft300 {variant}"] = (train(name, mixed(data), FEW_SHOT.steps(300),
                                                      ["--fine_tune", ",".join(map(str, range(labels + 1)))], True)
                                                if flags is None else train(name, data, FEW_SHOT.steps(300), flags, True))
        evalset = eval_set_from_fonts(SRC_FONT, {labels: font}, chars, SIZE)
        results = {}

        def versus(first: str, second: str):
            comparison = compare_runs([RunSpec(first, runs[first]), RunSpec(second, runs[second])], evalset, "cpu",
                                      checkpoints=FEW_SHOT.checkpoints)
            for r in comparison.runs:
                results[r.name] = r
            return comparison.runs[1].versus_first, comparison.floor["overall"]

        for n in sizes:
            diff, floor = versus(f"scratch{n}", f"ft{n}")
            rows.append(_row(font_key, f"COVER{n}", n, "fine-tuned vs scratch", results[f"ft{n}"],
                             results[f"scratch{n}"], diff, floor))
        if 300 in sizes:
            diff, floor = versus("ft300 FREQ300", "ft300")
            rows.append(_row(font_key, "COVER300 vs FREQ300", 300, "fine-tuned, COVER300 vs FREQ300",
                             results["ft300"], results["ft300 FREQ300"], diff, floor))
            for variant in list(SWEEP)[:args.sweep] if font_key == next(iter(HELD_OUT)) else []:
                diff, floor = versus(f"ft300 {variant}", "ft300")
                rows.append(_row(font_key, f"recipe vs {variant}", 300, f"recipe vs {variant}", results["ft300"],
                                 results[f"ft300 {variant}"], diff, floor))
        shown = [k for k in SHOWN if k in results]
        grids.append([evalset.sources[:10], evalset.targets[:10]] + [results[k].evaluated.fake[:10] for k in shown])
        for key, r in results.items():
            series.append({"font": font_key, "run": key, "steps": r.series})
    atomic_write_text(out / "study.json", json.dumps({"eval_chars": "".join(chars), "labels": labels, "rows": rows,
                                                      "series": series, "times_s": times}, indent=1, ensure_ascii=False))
    table = _table(rows, chars, times)
    atomic_write_text(out / "table.md", table)
    columns = [torch.cat([g[k] for g in grids]) for k in range(len(grids[0]))]
    save_image(grid_image(columns, rows_per_block=10), out / "grid.png")
    print(table)
    print(f"columns of {out / 'grid.png'}: source, target, {', '.join(shown)}; one block per held-out font "
          f"({', '.join(HELD_OUT)}), rows: the first 10 evaluation characters {''.join(chars[:10])}")
    return 0


def _row(font, what, n, comparison, a, b, diff, floor) -> dict:
    """a: the run judged; b: the one it is judged against; diff: a minus b, paired."""
    return {"font": font, "what": what, "n": n, "comparison": comparison, "a": a.evaluated.means(),
            "b": b.evaluated.means(), "diff": {m: vars(d) for m, d in diff.items()}, "floor": floor,
            "gain_a": {m: vars(d) for m, d in a.versus_floor.items()},
            "gain_b": {m: vars(d) for m, d in b.versus_floor.items()}}


def _table(rows: list[dict], chars: list[str], times: dict) -> str:
    def cell(row, metric):
        d = row["diff"][metric]
        star = "*" if d["low"] > 0 or d["high"] < 0 else ""
        return (f"{row['a'][metric]:.3f} vs {row['b'][metric]:.3f} ({d['mean']:+.3f} [{d['low']:+.3f}, "
                f"{d['high']:+.3f}]{star})")

    lines = [f"Held-out: {len(chars)} characters outside every training set, rendered from each held-out font. "
             f"Each cell: the first run vs the second (paired difference [95% interval], * when it excludes 0). "
             f"Gain: over copying the source (SSIM).", "",
             "| font | N, set | comparison | SSIM | L1 | ink IoU | SSIM gain over the floor (first / second) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        gain = f"{r['gain_a']['ssim']['mean']:+.3f} / {r['gain_b']['ssim']['mean']:+.3f} (floor {r['floor']['ssim']:.3f})"
        lines.append(f"| {r['font']} | {r['what']} | {r['comparison']} | {cell(r, 'ssim')} | {cell(r, 'l1')} | "
                     f"{cell(r, 'ink_iou')} | {gain} |")
    total = sum(times.values())
    lines += ["", f"Wall time: {total / 60:.1f} min of training (base {times.get('base', 0) / 60:.1f} min)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run(main)
