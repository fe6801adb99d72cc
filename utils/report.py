"""Write a comparison as metrics.json, report.md, a self-contained report.html and PNGs."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from data.loader import label_balanced

from .images import grid_image
from .logs import plot_training_log

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


def to_json(report: dict) -> dict:
    """The report without tensors and internal objects, for metrics.json."""
    runs = []
    for r in report["runs"]:
        runs.append({k: v for k, v in r.items() if k not in ("fake", "metrics", "config", "log")}
                    | {"config": r["config"].to_dict()})
    return _finite({k: v for k, v in report.items() if k != "runs"} | {"runs": runs})


def comparison_grid(report: dict, evalset, path: Path, count: int = 12, seed: int = 0) -> Path:
    """source | target | run A | run B ... for a fixed, label-balanced sample."""
    picked = label_balanced(evalset.labels.tolist(), count, seed)
    columns = [evalset.sources[picked], evalset.targets[picked]] + [r["fake"][picked] for r in report["runs"]]
    grid = grid_image(columns, rows_per_block=len(picked), pad=2)
    header = 16
    titled = Image.new("L", (grid.width, grid.height + header), 255)
    titled.paste(grid, (0, header))
    draw = ImageDraw.Draw(titled)
    w = evalset.image_size + 2
    for k, title in enumerate(["source", "target"] + [r["name"] for r in report["runs"]]):
        draw.text((2 + k * w + 2, 2), title[: max(4, w // 6)], fill=0)
    titled.save(path)
    return path


def curves(report: dict, path: Path) -> Path | None:
    rows = {r["name"]: list(r["log"]) for r in report["runs"]}
    # metrics over checkpoints are drawn as further panels in the same figure
    for r in report["runs"]:
        for s in r["series"]:
            rows[r["name"]].append({"step": s["step"], "ckpt_ssim": s["ssim"], "ckpt_l1": s["l1"],
                                    "ckpt_diversity_ratio": s["diversity_ratio"]})
    extra = [("ckpt_ssim", "SSIM on the eval set, per checkpoint"), ("ckpt_l1", "L1 on the eval set, per checkpoint"),
             ("ckpt_diversity_ratio", "diversity vs real, per checkpoint")]
    return plot_training_log(rows, path, extra_panels=extra)


def _verdict_rows(report: dict):
    base = report["runs"][0]
    for r in report["runs"][1:]:
        for metric, d in r["versus_first"].items():
            yield (METRIC_LABELS[metric], fmt(base["summary"]["overall"][metric]), fmt(r["summary"]["overall"][metric]),
                   f"{fmt(d['mean'])} [{fmt(d['low'])}, {fmt(d['high'])}]", d["verdict"], base["name"], r["name"])


def _markdown(report: dict, images: dict[str, str]) -> str:
    runs = report["runs"]
    lines = ["# Comparison of zi2zi runs", "",
             f"Evaluation set: {report['eval_set']}, labels {report['labels']}. Eval mode, seed {report['seed']}; "
             f"differences are run minus **{runs[0]['name']}** with a paired bootstrap 95% interval.", "",
             "| run | experiment | step | SN on G | SN on D | collapsed |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['experiment_dir']} | {r['step']} | {r['sn']['generator']} | "
                     f"{r['sn']['discriminator']} | {'**yes**' if r['collapsed'] else 'no'} |")
    lines += ["", "## Quality", "", "| metric | " + " | ".join(r["name"] for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for metric, label in METRIC_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(fmt(r["summary"]["overall"][metric]) for r in runs) + " |")
    lines += ["", "| metric | " + runs[0]["name"] + " | other run | difference [95% CI] | verdict |", "|---|---|---|---|---|"]
    for label, a, b, diff, verdict, base_name, name in _verdict_rows(report):
        lines.append(f"| {label} ({name} vs {base_name}) | {a} | {b} | {diff} | **{verdict}** |")
    lines += ["", "Per style label (SSIM / L1):", "", "| label | " + " | ".join(r["name"] for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for label in report["labels"]:
        cells = [f"{fmt(r['summary']['by_label'][label]['ssim'])} / {fmt(r['summary']['by_label'][label]['l1'])}"
                 for r in runs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Mode collapse", "", "| measure | " + " | ".join(r["name"] for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for key, label in COLLAPSE_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(fmt(r["collapse"].get(key)) for r in runs) + " |")
    lines.append("| across checkpoints | " + " | ".join(r["trend"] for r in runs) + " |")
    lines += ["", "## Training stability (from logs/train.jsonl)", "",
              "| measure | " + " | ".join(r["name"] for r in runs) + " |", "|---|" + "---|" * len(runs)]
    for key, label in STABILITY_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(fmt(r["stability"].get(key)) for r in runs) + " |")
    lines += ["", "## Pictures", ""]
    for title, src in images.items():
        lines += [f"### {title}", "", f"![{title}]({src})", ""]
    return "\n".join(lines) + "\n"


def _html(markdown_text: str, images: dict[str, Path]) -> str:
    """A small Markdown-table renderer: enough for this report, with images embedded."""
    embedded = {p.name: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode() for p in images.values()}
    out, in_table = [], False
    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table, tag = True, "th"
            else:
                tag = "td"
            cells_html = "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells)
            out.append(f"<tr>{cells_html}</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("### "):
            out.append(f"<h3>{html.escape(line[4:])}</h3>")
        elif line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            out.append(f'<img src="{embedded.get(src, src)}" alt="{html.escape(src)}">')
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_table:
        out.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:14px}th{background:#f3f3f3}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>zi2zi comparison</title>"
            f"<style>{style}</style></head><body>{''.join(out)}</body></html>\n")


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def write_report(report: dict, evalset, out_dir: str | Path, grid_count: int = 12) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {"Side by side (source | target | runs)": comparison_grid(report, evalset, out_dir / "comparison_grid.png",
                                                                       grid_count, report["seed"])}
    curve_path = curves(report, out_dir / "curves.png")
    if curve_path is not None:
        images["Training curves and metrics over checkpoints"] = curve_path
    (out_dir / "metrics.json").write_text(json.dumps(to_json(report), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    md = _markdown(report, {k: v.name for k, v in images.items()})
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    (out_dir / "report.html").write_text(_html(md, images), encoding="utf-8")
    return {"report.md": out_dir / "report.md", "report.html": out_dir / "report.html",
            "metrics.json": out_dir / "metrics.json", **{p.name: p for p in images.values()}}
