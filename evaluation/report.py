"""Write a comparison as metrics.json, report.md, a self-contained report.html and PNGs."""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import markdown
from PIL import Image, ImageDraw

from data.loader import label_balanced
from utils.images import grid_image
from utils.io import atomic_write_text, save_image
from .curves import plot_training_log

from . import robustness
from .comparison import Comparison
from .metrics import FLOOR_NAME

METRIC_LABELS = {"l1": "L1 (lower better)", "rmse": "RMSE (lower better)", "psnr": "PSNR dB (higher better)",
                 "ssim": "SSIM (higher better)", "ink_iou": "ink IoU (higher better)"}
COLLAPSE_LABELS = {"diversity_ratio": "diversity vs real (1 = as varied as the fonts)",
                   "near_duplicate_rate": "near-duplicate outputs",
                   "label_sensitivity_ratio": "label sensitivity vs real fonts"}
STABILITY_LABELS = {"d_loss_spikes": "D loss spikes", "g_loss_spikes": "G loss spikes",
                    "d_loss_windowed_std": "D loss windowed std", "g_loss_windowed_std": "G loss windowed std",
                    "d_saturated_share": "share of steps with D saturated",
                    "g_grad_norm_median": "G grad norm, median", "g_grad_norm_p95": "G grad norm, p95",
                    "d_grad_norm_median": "D grad norm, median", "d_grad_norm_p95": "D grad norm, p95",
                    "sigma_G_last": "largest sigma(W) of G, last", "sigma_D_last": "largest sigma(W) of D, last"}


MAX_STYLE_GRIDS = 12   # per-style grids in the report (the first labels of a larger set)
STYLE_GRID_COUNT = 6   # characters in each


HEAT_MAP = "Held-out SSIM across settings and recipes"


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _finite(value):
    """NaN and infinity become null, so metrics.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def comparison_grid(report: Comparison, evalset, path: Path, count: int = 12, seed: int = 0,
                    label: int | None = None) -> Path:
    """source | target | run A | run B ... for a fixed, label-balanced sample (of one style with `label`)."""
    labels = evalset.labels.tolist()
    if label is None:
        picked = label_balanced(labels, count, seed)
    else:
        picked = [i for i in label_balanced(labels, len(labels), seed) if labels[i] == label][:count]
    columns = [evalset.sources[picked], evalset.targets[picked]] + [r.evaluated.fake[picked] for r in report.runs]
    grid = grid_image(columns, rows_per_block=len(picked), pad=2)
    header = 16
    titled = Image.new("L", (grid.width, grid.height + header), 255)
    titled.paste(grid, (0, header))
    draw = ImageDraw.Draw(titled)
    w = evalset.image_size + 2
    for k, title in enumerate(["source", "target"] + [r.name for r in report.runs]):
        draw.text((2 + k * w + 2, 2), title[: max(4, w // 6)], fill=0)
    save_image(titled, path)
    return path


def curves(report: Comparison, path: Path) -> Path | None:
    rows = {r.name: list(r.log) for r in report.runs}
    # metrics over checkpoints are drawn as further panels in the same figure
    for r in report.runs:
        for s in r.series:
            rows[r.name].append({"step": s["step"], "ckpt_ssim": s["ssim"], "ckpt_l1": s["l1"],
                                    "ckpt_diversity_ratio": s["diversity_ratio"]})
    extra = [("ckpt_ssim", "SSIM on the eval set, per checkpoint"), ("ckpt_l1", "L1 on the eval set, per checkpoint"),
             ("ckpt_diversity_ratio", "diversity vs real, per checkpoint")]
    return plot_training_log(rows, path, extra_panels=extra)


def _verdict_rows(report: Comparison):
    base = report.runs[0]
    for r in report.runs[1:]:
        for metric, d in r.versus_first.items():
            yield (METRIC_LABELS[metric], fmt(base.summary["overall"][metric]), fmt(r.summary["overall"][metric]),
                   f"{fmt(d.mean)} [{fmt(d.low)}, {fmt(d.high)}]", d.verdict, base.name, r.name)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _per_run_table(report: Comparison, first: str, measures: dict[str, str], values) -> list[str]:
    """One row per measure, one column per run; `values(run, key)` gives a cell."""
    return _table([first] + [r.name for r in report.runs],
                  [[label] + [values(r, key) for r in report.runs] for key, label in measures.items()])


def verdict_summary(report: Comparison) -> list[str]:
    """One sentence per metric: how every other run compares with the first."""
    base, others = report.runs[0], report.runs[1:]
    sentences = []
    for metric, label in METRIC_LABELS.items():
        parts = []
        for r in others:
            d = r.versus_first[metric]
            outcome = {f"{r.name} better": "better", f"{base.name} better": "worse"}.get(d.verdict, d.verdict)
            parts.append(f"{r.name} {outcome} ({fmt(d.mean, 3)} [{fmt(d.low, 3)}, {fmt(d.high, 3)}])")
        sentences.append(f"- **{label}**, against {base.name}: " + "; ".join(parts) + ".")
    gains = "; ".join(f"{r.name} {_gain(r.versus_floor['ssim'])}" for r in report.runs)
    sentences.append(f"- **SSIM over {FLOOR_NAME}** ({fmt(report.floor['overall']['ssim'], 3)}): {gains}.")
    collapsed = [r.name for r in report.runs if r.collapsed]
    sentences.append(f"- **Mode collapse**: {', '.join(collapsed) + ' collapsed' if collapsed else 'no run collapsed'}.")
    return sentences


def _markdown(report: Comparison, images: dict[str, str], study: dict | None = None) -> str:
    runs = report.runs
    if study is not None:   # a study's table and heat map first; sentences about every run would bury them
        lines = [f"# Robustness study: {study['folder']}", "", *robustness.markdown_section(study, fmt),
                 f"![{_alt_text(HEAT_MAP)}]({images.pop(HEAT_MAP)})", "", "## Every run", ""]
    else:
        lines = ["# Comparison of zi2zi runs", "", *verdict_summary(report), ""]
    lines += [
             f"Evaluation set: {report.eval_set}, labels {report.labels}. Eval mode, seed {report.seed}; "
             f"differences are run minus **{runs[0].name}** with a paired bootstrap 95% interval.", ""]
    lines += _table(["run", "experiment", "step", "SN on G", "SN on D", "collapsed"],
                    [[r.name, r.experiment_dir, str(r.step), str(r.config.sn_generator), str(r.config.sn_discriminator),
                      "**yes**" if r.collapsed else "no"] for r in runs])
    lines += ["", "## Quality", "",
              f"The first column, *{FLOOR_NAME}*, scores the source glyph itself as the answer: the floor "
              f"a model must clear before any of its score is learned.", ""]
    lines += _table(["metric", FLOOR_NAME] + [r.name for r in runs],
                    [[label, fmt(report.floor["overall"][k])] + [fmt(r.summary["overall"][k]) for r in runs]
                     for k, label in METRIC_LABELS.items()])
    lines += ["", "Gain over the floor (run minus copying the source, sign as the metric's; 95% interval):", ""]
    lines += _per_run_table(report, "metric", METRIC_LABELS, lambda r, k: _gain(r.versus_floor[k]))
    lines += [""] + _table([ "metric", runs[0].name, "other run", "difference [95% CI]", "verdict"],
                           [[f"{label} ({name} vs {base_name})", a, b, diff, f"**{verdict}**"]
                            for label, a, b, diff, verdict, base_name, name in _verdict_rows(report)])
    lines += ["", "Per style label (SSIM / L1):", ""]
    lines += _table(["label", FLOOR_NAME] + [r.name for r in runs],
                    [[str(k), _ssim_l1(report.floor["by_label"][k])] + [_ssim_l1(r.summary["by_label"][k]) for r in runs]
                     for k in report.labels])
    lines += ["", "## Mode collapse", ""]
    lines += _per_run_table(report, "measure", COLLAPSE_LABELS, lambda r, k: fmt(r.collapse.get(k)))
    lines.append("| across checkpoints | " + " | ".join(r.trend for r in runs) + " |")
    lines += ["", "## Training stability (from logs/train.jsonl)", ""]
    lines += _per_run_table(report, "measure", STABILITY_LABELS, lambda r, k: fmt(r.stability.get(k)))
    lines += ["", "## Pictures", ""]
    for title, src in images.items():
        lines += [f"### {title}", "", f"![{_alt_text(title)}]({src})", ""]
    return "\n".join(lines) + "\n"


def _gain(d) -> str:
    verdict = "" if d.low <= 0 <= d.high else (" (above)" if d.verdict != f"{FLOOR_NAME} better" else " (below)")
    return f"{fmt(d.mean, 3)} [{fmt(d.low, 3)}, {fmt(d.high, 3)}]{verdict}"


def _ssim_l1(scores: dict) -> str:
    return f"{fmt(scores['ssim'])} / {fmt(scores['l1'])}"


def _alt_text(title: str) -> str:
    """Alt text that cannot end the Markdown image early or open a table cell."""
    return "".join(c for c in title if c not in "[]()|")


def _html(body_markdown: str) -> str:
    """The report as one HTML page (Python-Markdown with tables); images are already data: URIs."""
    body = markdown.markdown(body_markdown, extensions=["tables"], output_format="html")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;display:block;overflow-x:auto}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}th{background:#f3f3f3}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>zi2zi comparison</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_report(report: Comparison, evalset, out_dir: str | Path, grid_count: int = 12,
                 study: dict | None = None) -> dict[str, Path]:
    """metrics.json, report.md (pictures beside it) and report.html (pictures embedded), each written atomically.

    `study` (evaluation.robustness.study_summary) adds the robustness section and its heat map."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {}
    if study is not None:
        images[HEAT_MAP] = robustness.heat_map(study, out_dir / "robustness_ssim.png")
    images["Side by side (source | target | runs)"] = comparison_grid(report, evalset, out_dir / "comparison_grid.png",
                                                                      grid_count, report.seed)
    for label in report.labels[:MAX_STYLE_GRIDS]:
        images[f"Style {label} (source | target | runs)"] = comparison_grid(
            report, evalset, out_dir / f"grid_style_{label}.png", STYLE_GRID_COUNT, report.seed, label)
    curve_path = None if study is not None else curves(report, out_dir / "curves.png")   # dozens of runs: noise
    if curve_path is not None:
        images["Training curves and metrics over checkpoints"] = curve_path
    record = {**report.to_json(), **({"study": study} if study is not None else {})}
    files = {"metrics.json": atomic_write_text(
        out_dir / "metrics.json", json.dumps(_finite(record), indent=1, ensure_ascii=False, allow_nan=False) + "\n")}
    files["report.md"] = atomic_write_text(
        out_dir / "report.md", _markdown(report, {k: v.name for k, v in images.items()}, study))
    files["report.html"] = atomic_write_text(
        out_dir / "report.html", _html(_markdown(report, {k: _data_uri(v) for k, v in images.items()}, study)))
    return {**files, **{p.name: p for p in images.values()}}
