"""Deterministic quality, mode-collapse and stability measures for comparing runs.

Images are (N, 1, H, W) tensors in [0, 1] (ink dark). Per-sample metrics come back as
1-D tensors so runs can be compared pair by pair on the same characters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytorch_msssim
import torch

# name -> True when higher is better
METRICS = {"l1": False, "rmse": False, "psnr": True, "ssim": True, "ink_iou": True}
INK_LEVEL = 0.5          # a pixel darker than this is ink
NEAR_DUPLICATE_L1 = 0.01  # mean |a - b| below this: the same picture for the eye


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (any channels) -> [0, 1] single channel, float64 for exact sums."""
    return ((images.double().mean(dim=1, keepdim=True) + 1) / 2).clamp(0, 1)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03), by pytorch-msssim.

    Its statistics match Wang et al. and scikit-image's gaussian_weights=True with the
    population covariance, averaged over the "valid" region. The window is built in the
    images' own precision (the library's default window is float32).
    """
    x = torch.arange(11, dtype=a.dtype, device=a.device) - 5
    window = torch.exp(-(x ** 2) / (2 * 1.5 ** 2))
    window = (window / window.sum()).view(1, 1, 1, -1).repeat(a.shape[1], 1, 1, 1)
    return pytorch_msssim.ssim(a, b, data_range=data_range, size_average=False, win=window,
                               nonnegative_ssim=False)


def per_sample_metrics(fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1, RMSE, PSNR (dB, data range 1), SSIM and ink IoU per image pair."""
    diff = fake - real
    mse = diff.pow(2).flatten(1).mean(1)
    ink_f, ink_r = fake < INK_LEVEL, real < INK_LEVEL
    inter = (ink_f & ink_r).flatten(1).sum(1).double()
    union = (ink_f | ink_r).flatten(1).sum(1).double()
    return {
        "l1": diff.abs().flatten(1).mean(1),
        "rmse": mse.sqrt(),
        "psnr": 10 * torch.log10(1.0 / mse.clamp_min(1e-10)),
        "ssim": ssim(fake, real),
        "ink_iou": torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)),
    }


def score_outputs(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor
                  ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Generated vs real glyphs in [-1, 1]: per-sample metrics and the collapse measures.

    The one scoring used by the A/B report (compare.py) and by validation during training.
    """
    fake_u, real_u = to_unit(fake), to_unit(real)
    return per_sample_metrics(fake_u, real_u), collapse_measures(fake_u, real_u, labels)


FLOOR_NAME = "copy the source"


def copy_source_scores(source: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """The trivial answer's per-sample metrics: the source glyph itself given as the output.

    Source and target glyphs of one character already overlap a great deal (SSIM about a third
    across fonts), so a raw score says little until it is set against this floor.
    """
    return per_sample_metrics(to_unit(source), to_unit(real))


def held_out_record(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
                    floor: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Mean metrics and diversity as `val_*` values for the training log; with `floor` (copy_source_scores
    of the same pairs), also `val_floor_*`, the floor's means, and `val_*_gain`, how far past it each is."""
    per_sample, collapse = score_outputs(fake, real, labels)
    record = {f"val_{name}": values.mean().item() for name, values in per_sample.items()}
    record.update({f"val_{k}": collapse[k] for k in ("diversity_ratio", "near_duplicate_rate")})
    if floor is not None:
        for name, values in floor.items():
            record[f"val_floor_{name}"] = values.mean().item()
            gain = record[f"val_{name}"] - record[f"val_floor_{name}"]
            record[f"val_{name}_gain"] = gain if METRICS[name] else -gain   # positive: better than the floor
    return record


@dataclass
class PairedDifference:
    mean: float
    low: float
    high: float
    verdict: str


def paired_bootstrap(a: torch.Tensor, b: torch.Tensor, higher_is_better: bool, names=("A", "B"),
                     n_boot: int = 2000, seed: int = 0) -> PairedDifference:
    """Mean of (b - a) over the same samples with a bootstrap 95% interval (scipy, BCa).

    Resampling the per-sample differences keeps the pairing: both runs are judged on
    the same characters. Identical differences (e.g. a run against itself) have a
    zero-width interval, which BCa cannot compute, so they are returned as is.
    """
    d = (b - a).double().cpu().numpy()
    mean = float(d.mean())
    if np.ptp(d) == 0:
        low = high = mean
    else:
        import scipy.stats   # here, not at the top: it adds a second to every script's start (train.py's too)
        result = scipy.stats.bootstrap((d,), np.mean, n_resamples=n_boot, confidence_level=0.95,
                                       method="BCa", random_state=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if low > 0 or high < 0:
        b_better = (low > 0) == higher_is_better
        verdict = f"{names[1]} better" if b_better else f"{names[0]} better"
    else:
        verdict = "no clear difference"
    return PairedDifference(mean, low, high, verdict)


def _pairwise_l1(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return torch.cdist(flat, flat, p=1) / flat.shape[1]


def collapse_measures(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
                      max_per_label: int = 256) -> dict[str, float]:
    """Diversity of outputs across characters, relative to the real targets, and duplicates.

    diversity_ratio: mean pairwise L1 between generated glyphs of different characters
    (same style) divided by the same figure on the real targets; ~1 is healthy, near 0
    means every character comes out alike. near_duplicate_rate: share of generated
    glyphs with another character's output within NEAR_DUPLICATE_L1.
    """
    fake_div, real_div, dup, count = [], [], 0, 0
    for label in labels.unique().tolist():
        keep = (labels == label).nonzero().flatten()[:max_per_label]
        if len(keep) < 2:
            continue
        df, dr = _pairwise_l1(fake[keep]), _pairwise_l1(real[keep])
        off = ~torch.eye(len(keep), dtype=torch.bool)
        fake_div.append(df[off].mean())
        real_div.append(dr[off].mean())
        dup += int((df + torch.eye(len(keep), dtype=df.dtype) * 1e9).min(1).values.lt(NEAR_DUPLICATE_L1).sum())
        count += len(keep)
    if not fake_div:
        return {"diversity": float("nan"), "real_diversity": float("nan"), "diversity_ratio": float("nan"),
                "near_duplicate_rate": float("nan")}
    fd, rd = torch.stack(fake_div).mean().item(), torch.stack(real_div).mean().item()
    return {"diversity": fd, "real_diversity": rd, "diversity_ratio": fd / rd if rd > 0 else float("nan"),
            "near_duplicate_rate": dup / count}


def label_sensitivity(outputs_by_label: dict[int, torch.Tensor], real_by_label: dict[int, torch.Tensor] | None
                      ) -> dict[str, float]:
    """How much the output changes when only the style label changes.

    `outputs_by_label[k]` holds every source rendered with label k (same order).
    Reported as the mean L1 between styles, and relative to how much the real fonts
    differ for the same characters when `real_by_label` is given (aligned the same way).
    """
    labels = sorted(outputs_by_label)
    if len(labels) < 2:
        return {"label_sensitivity": float("nan"), "real_label_difference": float("nan"),
                "label_sensitivity_ratio": float("nan")}
    diffs = [(outputs_by_label[i] - outputs_by_label[j]).abs().mean().item()
             for k, i in enumerate(labels) for j in labels[k + 1:]]
    out = {"label_sensitivity": sum(diffs) / len(diffs)}
    if real_by_label:
        rl = sorted(real_by_label)
        real = [(real_by_label[i] - real_by_label[j]).abs().mean().item()
                for k, i in enumerate(rl) for j in rl[k + 1:]]
        out["real_label_difference"] = sum(real) / len(real) if real else float("nan")
        out["label_sensitivity_ratio"] = (out["label_sensitivity"] / out["real_label_difference"]
                                          if real and out["real_label_difference"] > 0 else float("nan"))
    else:
        out["real_label_difference"] = out["label_sensitivity_ratio"] = float("nan")
    return out


def is_collapsed(measures: dict[str, float]) -> bool:
    """Flag a run whose outputs barely differ across characters (or are mostly duplicates)."""
    ratio, dup = measures.get("diversity_ratio", float("nan")), measures.get("near_duplicate_rate", 0.0)
    return (not math.isnan(ratio) and ratio < 0.25) or (not math.isnan(dup) and dup > 0.5)


# --------------------------------------------------------------- stability

def _series(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None and math.isfinite(float(r[key]))]


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


def count_spikes(values: list[float], window: int = 20, k: float = 6.0) -> int:
    """Points above the trailing median by more than k median absolute deviations."""
    spikes = 0
    for i in range(window, len(values)):
        past = values[i - window:i]
        med = _median(past)
        mad = _median([abs(v - med) for v in past]) or 1e-12
        if values[i] > med + k * mad * 1.4826:
            spikes += 1
    return spikes


def windowed_std(values: list[float], window: int = 20) -> float:
    """Mean standard deviation over consecutive windows (how noisy the curve is)."""
    stds = [torch.tensor(values[i:i + window], dtype=torch.float64).std().item()
            for i in range(0, len(values) - window + 1, window)]
    return sum(stds) / len(stds) if stds else float("nan")


def stability_measures(rows: list[dict]) -> dict[str, float]:
    """Spikes, noise, D saturation, gradient norms and SN trends from a run's train.jsonl."""
    out: dict[str, float] = {"log_lines": float(len(rows))}
    for key in ("d_loss", "g_loss"):
        values = _series(rows, key)
        out[f"{key}_spikes"] = float(count_spikes(values))
        out[f"{key}_windowed_std"] = windowed_std(values)
    both = [r for r in rows if r.get("d_real_prob") is not None and r.get("d_fake_prob") is not None]
    saturated = [r for r in both if r["d_real_prob"] > 0.99 and r["d_fake_prob"] < 0.01]
    out["d_saturated_share"] = len(saturated) / len(both) if both else float("nan")
    for key in ("g_grad_norm", "d_grad_norm"):
        values = _series(rows, key)
        out[f"{key}_median"] = _median(values)
        out[f"{key}_p95"] = _quantile(values, 0.95)
        out[f"{key}_max"] = max(values) if values else float("nan")
    for key in ("sigma_G", "sigma_D"):
        values = _series(rows, key)
        out[f"{key}_first"] = values[0] if values else float("nan")
        out[f"{key}_last"] = values[-1] if values else float("nan")
    return out
