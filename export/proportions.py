"""How wide a style is, from what its training pairs show.

font2img normalises every glyph on its own (ink box plus margin, centred in a square,
scaled to the image), so one pair cannot tell how big the target glyph is; but each half
keeps its glyph's aspect ratio. Across a style's pairs, the target's width-to-height ratio
over the source's is the style's width relative to the source font: about 0.8 for a
condensed style, 1.2 for an extended one. The exported font scales the source's advance
widths and glyph boxes horizontally by that factor, so a condensed style exports condensed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .trace import INK_LEVEL

SAMPLE_PAIRS = 400   # enough for a stable median, few enough to decode in a second


def aspect(image: np.ndarray) -> float | None:
    """Width over height of the ink box of a glyph image (None for an empty one)."""
    ys, xs = np.nonzero(image < INK_LEVEL)
    if len(xs) == 0:
        return None
    return (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)


def style_width_scale(obj: Path, label: int, sample: int = SAMPLE_PAIRS) -> tuple[float, int]:
    """(the median target/source aspect ratio of `label`'s pairs in `obj`, the pairs it is measured on)."""
    from data.loader import PairBank
    from data.obj import scan_obj
    if label not in set(scan_obj(obj).labels):
        return 1.0, 0

    def spread(labels: list[int]) -> list[int]:   # evenly over the file, not its first records
        return sorted(set(np.linspace(0, len(labels) - 1, min(sample, len(labels))).round().astype(int).tolist()))
    bank = PairBank.from_obj(obj, labels={label}, choose=spread)
    ratios = []
    for target, source in bank.pairs.numpy():
        a_target, a_source = aspect(target), aspect(source)
        if a_target and a_source:
            ratios.append(np.log(a_target / a_source))
    if not ratios:
        return 1.0, 0
    return float(np.exp(np.median(ratios))), len(ratios)
