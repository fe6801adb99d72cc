"""The training curves: which train.jsonl keys are drawn, with which titles (train.py's
logs/losses.png and the comparison report's curves)."""
from __future__ import annotations

from pathlib import Path

from utils.logs import plot_curves

TRAINING_PANELS = [
    ("d_loss", "D loss"), ("g_loss", "G loss"), ("l1_loss", "L1 loss (weighted)"),
    ("cheat_loss", "G adversarial loss"), ("d_real_prob", "D(real)"), ("d_fake_prob", "D(fake)"),
    ("g_grad_norm", "G grad norm"), ("d_grad_norm", "D grad norm"),
    ("sigma_G", "largest sigma(W), G"), ("sigma_D", "largest sigma(W), D"),
    ("val_l1", "held-out L1"), ("val_ssim", "held-out SSIM"), ("val_ink_iou", "held-out ink IoU"),
    ("val_ssim_gain", "held-out SSIM gain over copying the source"),
    ("val_diversity_ratio", "held-out diversity (1 = as varied as the real glyphs)"),
]
LOG_SCALE = ("g_grad_norm", "d_grad_norm")   # they span orders of magnitude


def plot_training_log(rows_by_run: dict[str, list[dict]], path: str | Path,
                      extra_panels: list[tuple[str, str]] = ()) -> Path | None:
    """The curves of one or more runs' train.jsonl rows as one PNG; `extra_panels` adds (key, title) panels."""
    return plot_curves(rows_by_run, path, [*TRAINING_PANELS, *extra_panels], LOG_SCALE)
