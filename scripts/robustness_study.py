"""Does SN keep zi2zi from collapsing? Recipes trained across settings that destabilise GANs, one report.

    python scripts/robustness_study.py                # CPU size: 32 px, ngf = ndf = 16, 300 steps a run
    python scripts/robustness_study.py --full         # 256 px, zi2zi's widths, 20,000 steps: for a GPU
    python scripts/robustness_study.py --settings A,H --recipes plain,recommended --seeds 1 --steps 100

In the manner of SN-GAN's settings A-F: from zi2zi's defaults (A) to the harshest
combination (H) of a high learning rate, Adam beta1 0.9, a small batch, a weak L1 term
(so the adversarial term matters more) and one generator update per iteration. Every
setting runs with each recipe and seed on the bundled fonts (10% of the characters held
out); the runs land in OUT/runs/SETTING__RECIPE_sSEED, and compare.py judges them all on
the held-out pairs (OUT/report/report.html): outcomes from each run's own log (the
collapse watch and the divergence guard), held-out SSIM and ink IoU per recipe, a heat
map and the paired differences from plain per setting. A rerun skips finished runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from evaluation.robustness import STUDY_FILE, run_outcome
from model.checkpoint import available_steps
from utils.cli import run
from utils.errors import UserError
from utils.experiment import Experiment
from utils.io import atomic_write_text, check_output_dir

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {   # each adds to zi2zi's defaults: --lr 0.001, beta1 0.5, --batch_size 16, --L1_penalty 100, --g_steps 2
    "A": "",
    "B": "--lr 0.004",
    "C": "--lr 0.01",
    "D": "--lr 0.004 --beta1 0.9",
    "E": "--lr 0.004 --batch_size 4",
    "F": "--lr 0.004 --L1_penalty 10",
    "G": "--lr 0.004 --beta1 0.9 --L1_penalty 10 --g_steps 1",
    "H": "--lr 0.01 --beta1 0.9 --batch_size 4 --L1_penalty 10 --g_steps 1",
}
RECIPES = {"plain": "", "snD": "--sn-discriminator",
           "recommended": "--sn-generator --sn-discriminator --norm_D none"}
STYLES = 3   # the labels of scripts/bundled_data.sh's data: Noto Serif SC, LXGW WenKai, Smiley Sans


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/robustness", help="the study folder")
    p.add_argument("--full", action="store_true", help="256 px, ngf = ndf = 64, 20,000 steps, bf16 (a GPU's budget)")
    p.add_argument("--settings", help=f"comma-separated subset of {','.join(SETTINGS)} (default: all)")
    p.add_argument("--settings_file", help="JSON {name: flags} replacing the built-in settings")
    p.add_argument("--recipes", help=f"comma-separated subset of {','.join(RECIPES)} (default: all)")
    p.add_argument("--seeds", default="1,2", help="comma-separated seeds (default 1,2)")
    p.add_argument("--steps", type=int, help="steps per run (default 300; 20,000 with --full)")
    p.add_argument("--image_size", type=int, help="glyph size (default 32; 256 with --full)")
    p.add_argument("--width", type=int, help="ngf = ndf (default 16; 64 with --full)")
    p.add_argument("--chars", type=int, default=0, help="use only the first N demo characters (0: all 993)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cpu, or CUDA with --full)")
    p.add_argument("--parallel", type=int, help="runs trained at once (default: one per CPU core on the CPU, each "
                   "with one thread: small models use cores better so; 1 on a GPU)")
    return p.parse_args(argv)


def pick(table: dict[str, str], chosen: str | None, flag: str) -> dict[str, str]:
    if not chosen:
        return dict(table)
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UserError(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(table)}")
    return {n: table[n] for n in names}


def python(script: str, *args, threads: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=env)


def make_data(out: Path, size: int, chars: int) -> Path:
    """Pairs of the bundled fonts at `size`, packaged with 10% of the characters held out (once)."""
    experiment = Experiment.at(out)
    if experiment.val_obj.is_file():
        return experiment.data
    charset = ROOT / "fonts" / "charset_demo.txt"
    if chars:
        charset = out / "charset.txt"
        atomic_write_text(charset, (ROOT / "fonts" / "charset_demo.txt").read_text(encoding="utf-8")[:chars])
    done = subprocess.run(["bash", str(ROOT / "scripts" / "bundled_data.sh"), str(out), str(size), str(charset)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PY": sys.executable})
    if done.returncode:
        raise UserError(f"scripts/bundled_data.sh failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return experiment.data


def finished(exp: Path, steps: int) -> bool:
    return steps in available_steps(Experiment.at(exp).checkpoint, complete=True) or run_outcome(exp)[0] == "diverged"


def main(argv=None) -> int:
    args = parse_args(argv)
    check_output_dir(args.out, "--out")
    out = Path(args.out)
    settings = SETTINGS
    if args.settings_file:
        try:
            settings = json.loads(Path(args.settings_file).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"--settings_file {args.settings_file}: {err}") from None
    settings, recipes = pick(settings, args.settings, "--settings"), pick(RECIPES, args.recipes, "--recipes")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    size, width, steps = (256, 64, 20000) if args.full else (32, 16, 300)
    size, width, steps = args.image_size or size, args.width or width, args.steps or steps
    device = args.device or ("cuda" if args.full else "cpu")
    speed = ["--amp", "bf16", "--channels_last"] if args.full else []
    data = make_data(out, size, args.chars)
    atomic_write_text(out / STUDY_FILE, json.dumps({
        "settings": settings, "recipes": recipes, "baseline": next(iter(recipes)), "seeds": seeds, "steps": steps,
        "image_size": size, "width": width, "device": device}, indent=1) + "\n")
    grid = [(s, r, seed) for seed in seeds for s in settings for r in recipes]
    parallel = args.parallel or (1 if device.startswith("cuda") else os.cpu_count() or 1)
    threads = None if parallel == 1 else 1

    def train(item) -> str:
        setting, recipe, seed = item
        exp = out / "runs" / f"{setting}__{recipe}_s{seed}"
        if finished(exp, steps):
            return f"{exp.name}: {run_outcome(exp)[0]} (done before)"
        resume = ["--resume", "latest"] if available_steps(Experiment.at(exp).checkpoint, complete=True) else []
        done = python("train.py", "--experiment_dir", exp, "--data_dir", data, "--image_size", size, "--ngf", width,
                      "--ndf", width, "--embedding_num", STYLES, "--batch_size", 16, "--epoch", 100000,
                      "--max_steps", steps, "--random_seed", seed, "--sample_steps", steps,
                      "--checkpoint_steps", max(1, steps // 2), "--log_steps", 5, "--eval_steps", 0,
                      "--device", device, *speed, *resume, *settings[setting].split(), *recipes[recipe].split(),
                      threads=threads)
        outcome, step, _ = run_outcome(exp)
        if done.returncode and outcome != "diverged":   # a diverged run stops by design; anything else is a fault
            raise UserError(f"training {exp.name} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        return f"{exp.name}: {outcome}" + (f" at step {step}" if step is not None else "")

    began = time.time()
    with ThreadPoolExecutor(parallel) as pool:   # threads only wait on the training processes
        for line in tqdm(pool.map(train, grid), total=len(grid), desc="runs", unit="run"):
            tqdm.write(line)
    print(f"trained {len(grid)} runs in {(time.time() - began) / 60:.1f} min, {parallel} at a time")
    report = python("compare.py", "--run", out, "--val_obj", data / "val.obj", "--out_dir", out / "report",
                    "--checkpoints", 0, "--device", device)
    print(report.stdout.strip())
    if report.returncode:
        raise UserError(f"compare.py failed: {(report.stderr.strip().splitlines() or ['?'])[-1]}")
    return 0


if __name__ == "__main__":
    run(main)
