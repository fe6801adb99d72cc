"""Read an exported font back and check every glyph against the raster it was traced from."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image

from data.render import Font, RenderSettings, fit_glyph, render_char

from .trace import INK_LEVEL, TRACE_SIZE, ink_mask


def ink_iou(a: np.ndarray, b: np.ndarray) -> float:
    ink_a, ink_b = a < INK_LEVEL, b < INK_LEVEL
    union = (ink_a | ink_b).sum()
    return float((ink_a & ink_b).sum() / union) if union else 1.0


def renormalised(raster: np.ndarray, settings: RenderSettings) -> np.ndarray | None:
    """A glyph image put through font2img's crop-and-centre again, as a rendered glyph is.

    The raster is thresholded first, as for tracing: a generator's faint grey specks
    would otherwise widen the ink box.
    """
    ink, _ = ink_mask(raster)   # the very mask that was traced (enlarged for small models)
    glyph = fit_glyph(Image.fromarray(np.where(ink, 255, 0).astype(np.uint8)), settings)
    return None if glyph is None else np.asarray(glyph)


@dataclass
class Verification:
    cmap_matches: bool
    missing_from_cmap: list[str]
    extra_in_cmap: list[str]
    iou: dict[str, float] = field(default_factory=dict)

    @property
    def mean_iou(self) -> float:
        return float(np.mean(list(self.iou.values()))) if self.iou else float("nan")

    def worst(self, count: int = 5) -> list[tuple[str, float]]:
        return sorted(self.iou.items(), key=lambda item: item[1])[:count]

    def below(self, threshold: float) -> list[str]:
        return [ch for ch, value in self.iou.items() if value < threshold]


def exported_chars(path: Path) -> set[str]:
    """The characters the written file maps, read back as a user's tools would read it."""
    if path.suffix.lower() == ".ufo":
        import ufoLib2
        ufo = ufoLib2.Font.open(path)
        return {chr(code) for glyph in ufo for code in glyph.unicodes}
    with TTFont(str(path)) as font:   # WOFF2 too (fontTools decompresses it)
        return {chr(code) for code in font.getBestCmap()}


def verify_font(path: str | Path, sfnt: bytes, rasters: dict[str, np.ndarray], expected: set[str]) -> Verification:
    """The written font (`path`, any format) maps exactly `expected`; Pillow renders every traced
    glyph of its OpenType form (`sfnt`, the same outlines), and its ink is compared (IoU) with
    the raster it came from, both normalised the way font2img normalises a glyph, at >= 256 px
    (the size tracing works at), so that the check measures the outlines rather than a small
    raster's pixels."""
    mapped = exported_chars(Path(path))
    verification = Verification(mapped == expected, sorted(expected - mapped), sorted(mapped - expected))
    size = max(next(iter(rasters.values())).shape[0], TRACE_SIZE) if rasters else TRACE_SIZE
    settings = RenderSettings(char_size=size, canvas_size=size)
    with tempfile.TemporaryDirectory() as tmp:
        opentype = Path(tmp) / "font.otf"
        opentype.write_bytes(sfnt)
        rendered_font = Font(opentype, size, flag="the exported font")
        for ch, raster in rasters.items():
            expected_image = renormalised(raster, settings)
            rendered = render_char(rendered_font, ch, settings)
            if expected_image is None:
                verification.iou[ch] = 1.0 if rendered is None else 0.0
            else:
                verification.iou[ch] = 0.0 if rendered is None else ink_iou(np.asarray(rendered), expected_image)
    return verification
