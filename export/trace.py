"""Generated glyph rasters -> outlines in font units.

Tracing uses `potracer`, the pure-Python port of Peter Selinger's potrace: the same
algorithm as the potrace tool every font-from-bitmap workflow uses (polygon fit, then
corner/curve decisions with `alphamax`, then curve optimisation), installable from PyPI
on any platform without a C toolchain; its pace (~0.05 s for a 256 px glyph) is fine
when spread over processes. Its cubic curves go through skia-pathops, which removes
overlaps and fixes the winding (clockwise outer contours for TrueType,
counter-clockwise for CFF), and then, for TrueType, through fontTools' cu2qu.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pathops
from PIL import Image

INK_LEVEL = 128           # a pixel darker than this is ink
TRACE_SIZE = 256          # small rasters are enlarged (smoothly) to this before thresholding


@dataclass(frozen=True)
class GlyphBox:
    """Where the normalised glyph square lies in the em (font units, y up).

    font2img draws a glyph, crops it to its ink box plus a 5 px margin, centres that in a
    square and scales the square to the image. Mapping the image back onto the source
    glyph's square puts the generated glyph where the source glyph sits in the em.
    """
    center_x: float
    center_y: float
    side: float

    def to_units(self, x: float, y: float, image_size: float) -> tuple[float, float]:
        return (self.center_x + (x / image_size - 0.5) * self.side,
                self.center_y - (y / image_size - 0.5) * self.side)


def ink_mask(raster: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 glyph (dark ink on white) -> boolean ink at >= TRACE_SIZE px, and the enlargement."""
    size = raster.shape[0]
    factor = max(1, TRACE_SIZE // size)
    if factor > 1:   # enlarge the grey image first: its anti-aliased edges place the outline
        raster = np.asarray(Image.fromarray(raster).resize((size * factor,) * 2, Image.Resampling.BICUBIC))
    return raster < INK_LEVEL, float(factor)


def trace_raster(raster: np.ndarray, box: GlyphBox, clockwise: bool, turdsize: int = 16,
                 alphamax: float = 1.0) -> pathops.Path:
    """Outlines of the ink of `raster` placed by `box`, overlaps removed, winding fixed.

    `turdsize`: specks of at most this many pixels (of the >= 256 px traced mask, so a
    4 x 4 px speck, a pixel of a 64 px glyph) are dropped, as a generator's stray
    specks should be; a real dot stroke is several times larger.
    """
    import potrace
    ink, factor = ink_mask(raster)
    path = pathops.Path()
    if not ink.any():
        return path
    size = ink.shape[0]
    # potracer reads True as background (it inverts), so hand it the paper
    curves = potrace.Bitmap(~ink).trace(turdsize=turdsize, alphamax=alphamax, opticurve=True, opttolerance=0.2)
    pen = path.getPen()

    def at(point):
        return box.to_units(point.x, point.y, size)

    for curve in curves:
        pen.moveTo(at(curve.start_point))
        for segment in curve.segments:
            if isinstance(segment, potrace.CornerSegment):
                pen.lineTo(at(segment.c))
                pen.lineTo(at(segment.end_point))
            else:
                pen.curveTo(at(segment.c1), at(segment.c2), at(segment.end_point))
        pen.closePath()
    return pathops.simplify(path, fix_winding=True, clockwise=clockwise)


def trace_job(job: tuple[str, np.ndarray, GlyphBox, bool]) -> tuple[str, list]:
    """One glyph for a worker process: (char, raster, box, clockwise) -> (char, pen commands).

    Pen commands ((operator, points) tuples), because skia paths cannot be pickled.
    """
    from fontTools.pens.recordingPen import RecordingPen
    ch, raster, box, clockwise = job
    pen = RecordingPen()
    trace_raster(raster, box, clockwise).draw(pen)
    return ch, pen.value
