"""Outlines -> an installable TrueType (.ttf) or CFF OpenType (.otf) font with fontTools.

Metrics (units per em, ascender/descender, line gap, advance widths) come from the
source font, so the exported font lines up with it in text.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pathops
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.boundsPen import BoundsPen
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.recordingPen import RecordingPen
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.pens.transformPen import TransformPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont, TTLibError

from utils.errors import UserError
from utils.io import atomic_write_bytes

from .trace import GlyphBox

MARGIN_PX = 5   # font2img's margin around the ink box, in pixels at --char_size


@dataclass
class SourceMetrics:
    """What the exported font copies from the source font."""
    units_per_em: int
    ascender: int
    descender: int
    line_gap: int
    win_ascent: int
    win_descent: int
    advance: dict[str, int] = field(default_factory=dict)     # per character
    default_advance: int = 0


class SourceFont:
    """The source font's outlines and metrics, read with fontTools."""

    def __init__(self, path: str | Path, flag: str = "--src_font", index: int = 0):
        self.path, self.index = Path(path), index
        if not self.path.is_file():
            raise UserError(f"{flag} {self.path}: no such font file")
        try:
            self.font = TTFont(str(self.path), fontNumber=index, lazy=True)
            self.cmap = self.font.getBestCmap()
            self.glyphs = self.font.getGlyphSet()
        except (TTLibError, OSError) as err:
            raise UserError(f"{flag} {self.path}: cannot read the font ({err})") from None
        head, hhea, os2 = self.font["head"], self.font["hhea"], self.font.get("OS/2")
        upm = head.unitsPerEm
        ideo = self.cmap.get(ord("永")) or self.cmap.get(ord("一"))
        default_advance = self.font["hmtx"][ideo][0] if ideo else upm
        self.metrics = SourceMetrics(
            units_per_em=upm,
            ascender=os2.sTypoAscender if os2 else hhea.ascent,
            descender=os2.sTypoDescender if os2 else hhea.descent,
            line_gap=os2.sTypoLineGap if os2 else hhea.lineGap,
            win_ascent=os2.usWinAscent if os2 else hhea.ascent,
            win_descent=os2.usWinDescent if os2 else -hhea.descent,
            default_advance=default_advance)

    def has(self, ch: str) -> bool:
        return ord(ch) in self.cmap

    def advance(self, ch: str) -> int:
        name = self.cmap.get(ord(ch))
        return self.font["hmtx"][name][0] if name else self.metrics.default_advance

    def bounds(self, ch: str) -> tuple[float, float, float, float] | None:
        pen = BoundsPen(self.glyphs)
        self.glyphs[self.cmap[ord(ch)]].draw(pen)
        return pen.bounds

    def glyph_box(self, ch: str, char_size: int) -> GlyphBox | None:
        """The em square the normalised image of `ch` covers (font2img's crop, margin and centring)."""
        bounds = self.bounds(ch)
        if bounds is None:
            return None
        x0, y0, x1, y1 = bounds
        margin = MARGIN_PX * self.metrics.units_per_em / char_size
        side = max(x1 - x0, y1 - y0) + 2 * margin
        return GlyphBox((x0 + x1) / 2, (y0 + y1) / 2, side)

    def outline(self, ch: str, units_per_em: int) -> list:
        """The source glyph of `ch` as pen commands, scaled to `units_per_em`."""
        recording = RecordingPen()
        scale = units_per_em / self.metrics.units_per_em
        self.glyphs[self.cmap[ord(ch)]].draw(TransformPen(recording, (scale, 0, 0, scale, 0, 0)))
        return recording.value


def glyph_name(ch: str) -> str:
    code = ord(ch)
    return f"uni{code:04X}" if code <= 0xFFFF else f"u{code:05X}"


def _clean_path(commands: list, clockwise: bool) -> pathops.Path:
    path = pathops.Path()
    pen = path.getPen()
    for operator, points in commands:
        getattr(pen, operator)(*points)
    return pathops.simplify(path, fix_winding=True, clockwise=clockwise)


@dataclass
class FontNames:
    family: str
    style: str = "Regular"
    version: str = "Version 1.000"
    description: str = ""

    @property
    def postscript(self) -> str:
        return re.sub(r"[^A-Za-z0-9-]", "", f"{self.family}-{self.style}")[:63] or "zi2zi-Regular"


def build_font(outlines: dict[str, list], metrics: SourceMetrics, advances: dict[str, int], names: FontNames,
               truetype: bool) -> bytes:
    """A complete font: .notdef, one glyph per character, cmap, hmtx, name, OS/2, post."""
    upm = metrics.units_per_em
    chars = sorted(outlines, key=ord)
    order = [".notdef"] + [glyph_name(ch) for ch in chars]
    fb = FontBuilder(upm, isTTF=truetype)
    fb.setupGlyphOrder(order)
    fb.setupCharacterMap({ord(ch): glyph_name(ch) for ch in chars})
    drawn, metrics_table = {}, {}
    notdef = _notdef(upm, metrics)
    for name, commands, advance in [(".notdef", notdef, upm // 2)] + [
            (glyph_name(ch), outlines[ch], advances[ch]) for ch in chars]:
        path = _clean_path(commands, clockwise=truetype)
        if truetype:
            pen = TTGlyphPen(None)
            path.draw(Cu2QuPen(pen, max_err=upm / 1000, reverse_direction=False))
            drawn[name] = pen.glyph()
        else:
            pen = T2CharStringPen(advance, None)
            path.draw(pen)
            drawn[name] = pen.getCharString()
        bounds = path.bounds if path.area else None
        metrics_table[name] = (advance, round(bounds[0]) if bounds else 0)
    if truetype:
        fb.setupGlyf(drawn)
    else:
        fb.setupCFF(names.postscript, {"FullName": f"{names.family} {names.style}", "FamilyName": names.family,
                                        "Weight": names.style}, drawn, {})
    fb.setupHorizontalMetrics(metrics_table)
    fb.setupHorizontalHeader(ascent=metrics.ascender, descent=metrics.descender, lineGap=metrics.line_gap)
    fb.setupNameTable({"familyName": names.family, "styleName": names.style,
                       "uniqueFontIdentifier": f"{names.postscript};{names.version}",
                       "fullName": f"{names.family} {names.style}", "psName": names.postscript,
                       "version": names.version, "description": names.description})
    fb.setupOS2(sTypoAscender=metrics.ascender, sTypoDescender=metrics.descender, sTypoLineGap=metrics.line_gap,
                usWinAscent=metrics.win_ascent, usWinDescent=abs(metrics.win_descent), fsType=0,
                achVendID="ZI2Z")
    fb.setupPost()
    fb.font["OS/2"].recalcUnicodeRanges(fb.font)
    fb.font["OS/2"].recalcCodePageRanges(fb.font)
    buffer = io.BytesIO()
    fb.save(buffer)
    return buffer.getvalue()


def _notdef(upm: int, metrics: SourceMetrics) -> list:
    """The usual empty box."""
    w, top, bottom, t = upm // 2, metrics.ascender * 0.8, 0, upm // 20
    x0, x1 = t, w - t
    outer = [("moveTo", ((x0, bottom),)), ("lineTo", ((x0, top),)), ("lineTo", ((x1, top),)),
             ("lineTo", ((x1, bottom),)), ("closePath", ())]
    inner = [("moveTo", ((x0 + t, bottom + t),)), ("lineTo", ((x1 - t, bottom + t),)),
             ("lineTo", ((x1 - t, top - t),)), ("lineTo", ((x0 + t, top - t),)), ("closePath", ())]
    return outer + inner


def write_font(path: str | Path, data: bytes) -> None:
    atomic_write_bytes(path, data)
