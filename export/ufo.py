"""The exported glyphs as a UFO: the source format font editors (FontForge, Glyphs, RoboFont)
open, for redrawing the weakest glyphs by hand; fontmake/ufo2ft compile it back into a font.

Glyphs are named by code point (uni4E00), with the same outlines (cubic, overlaps removed),
advance widths, vertical advances and origins, line metrics and names as the binary font.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from utils.io import WriteFailed

from .build import FontNames, GlyphPlan, SourceMetrics, _clean_path, _notdef, glyph_name, win_metrics


def build_ufo(glyphs: dict[str, GlyphPlan], metrics: SourceMetrics, names: FontNames, y_extent: tuple[int, int]):
    """A ufoLib2 Font of `glyphs`; `y_extent` (lowest, highest ink) sets the Windows line metrics."""
    import ufoLib2
    ufo = ufoLib2.Font()
    info, upm = ufo.info, metrics.units_per_em
    info.familyName, info.styleName = names.family, names.style
    info.styleMapFamilyName, info.styleMapStyleName = names.family, "regular"
    info.versionMajor, info.versionMinor = 1, 0
    info.openTypeNameVersion = names.version
    info.openTypeNameDescription = names.description or None
    info.postscriptFontName = names.postscript
    info.unitsPerEm = upm
    info.ascender, info.descender = metrics.ascender, metrics.descender
    info.openTypeHheaAscender, info.openTypeHheaDescender = metrics.ascender, metrics.descender
    info.openTypeHheaLineGap = metrics.line_gap
    info.openTypeOS2TypoAscender, info.openTypeOS2TypoDescender = metrics.ascender, metrics.descender
    info.openTypeOS2TypoLineGap = metrics.line_gap
    info.openTypeOS2WinAscent, info.openTypeOS2WinDescent = win_metrics(metrics, *y_extent)
    info.openTypeOS2Selection = [7]   # USE_TYPO_METRICS, as in the binary font
    info.openTypeOS2Type = []          # installable
    info.openTypeOS2VendorID = "ZI2Z"
    info.openTypeVheaVertTypoAscender, info.openTypeVheaVertTypoDescender = upm // 2, -(upm - upm // 2)
    info.openTypeVheaVertTypoLineGap = 0
    notdef = GlyphPlan(_notdef(upm, metrics), upm // 2, *metrics.default_vertical)
    order = [".notdef"]
    for name, plan, code in [(".notdef", notdef, None)] + [(glyph_name(ch), glyphs[ch], ord(ch))
                                                            for ch in sorted(glyphs, key=ord)]:
        glyph = ufo.newGlyph(name)
        glyph.unicodes = [] if code is None else [code]
        glyph.width, glyph.height = plan.advance, plan.vertical_advance
        glyph.lib["public.verticalOrigin"] = plan.vertical_origin
        _clean_path(plan.commands, clockwise=False).draw(glyph.getPen())   # PostScript direction, as UFOs use
        if code is not None:
            order.append(name)
    ufo.glyphOrder = order
    return ufo


def write_ufo(path: str | Path, ufo) -> Path:
    """Save the UFO folder whole or not at all: written beside, then swapped in for the earlier one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        ufo.save(tmp, overwrite=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)   # the earlier UFO back in place
        raise WriteFailed(err.errno, err.strerror, str(path)) from None
    shutil.rmtree(old, ignore_errors=True)
    return path
