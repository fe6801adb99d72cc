"""Outlines -> an installable TrueType (.ttf) or CFF OpenType (.otf) font with fontTools.

Metrics (units per em, ascender/descender, line gap, advance widths) come from the
source font, so the exported font lines up with it in text.
"""
from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pathops
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.boundsPen import BoundsPen
from fontTools.misc.roundTools import otRound
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.filterPen import FilterPen
from fontTools.pens.recordingPen import RecordingPen
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.pens.transformPen import TransformPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont, TTLibError

from utils.errors import UserError

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
    default_advance: int = 0          # an ideograph's advance width
    default_vertical: tuple[int, int] = (0, 0)   # an ideograph's (advance height, vertical origin y)


# The spaces every exported font has, so typed text shows a space and not .notdef:
# space and no-break space, en and em space, and the ideographic (full-width) space.
SPACES = " \u00a0\u2002\u2003\u3000"


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
        ascender = os2.sTypoAscender if os2 else hhea.ascent
        descender = os2.sTypoDescender if os2 else hhea.descent
        # CJK fonts centre the ideographic em box on the line: its top is the vertical origin
        em_top = round((ascender + descender + upm) / 2)
        self.metrics = SourceMetrics(
            units_per_em=upm, ascender=ascender, descender=descender,
            line_gap=os2.sTypoLineGap if os2 else hhea.lineGap,
            win_ascent=os2.usWinAscent if os2 else hhea.ascent,
            win_descent=os2.usWinDescent if os2 else -hhea.descent,
            default_advance=default_advance, default_vertical=(upm, em_top))
        if ideo and "vmtx" in self.font:
            self.metrics.default_vertical = self._vertical_of(ideo)

    def has(self, ch: str) -> bool:
        return ord(ch) in self.cmap

    def advance(self, ch: str) -> int:
        name = self.cmap.get(ord(ch))
        return self.font["hmtx"][name][0] if name else self.metrics.default_advance

    def space_advance(self, ch: str) -> int:
        """The source's advance of a space character, or the usual share of the em where it has none."""
        name = self.cmap.get(ord(ch)) or (self.cmap.get(0x20) if ch == "\u00a0" else None)
        if name:
            return self.font["hmtx"][name][0]
        upm = self.metrics.units_per_em
        return {" ": upm // 4, "\u00a0": upm // 4, "\u2002": upm // 2, "\u2003": upm}.get(
            ch, self.metrics.default_advance)

    def vertical(self, ch: str) -> tuple[int, int]:
        """(advance height, vertical origin y) of `ch` in vertical text: the source's own where it has
        vertical metrics, otherwise the ideographic em box's."""
        name = self.cmap.get(ord(ch))
        if name is None or "vmtx" not in self.font:
            return self.metrics.default_vertical
        return self._vertical_of(name)

    def _vertical_of(self, name: str) -> tuple[int, int]:
        advance_height, top_bearing = self.font["vmtx"][name]
        if "VORG" in self.font:
            vorg = self.font["VORG"]
            return advance_height, vorg.VOriginRecords.get(name, vorg.defaultVertOriginY)
        pen = BoundsPen(self.glyphs)
        self.glyphs[name].draw(pen)
        top = pen.bounds[3] if pen.bounds else self.metrics.ascender
        return advance_height, round(top_bearing + top)   # TrueType: the origin sits top_bearing above the ink

    def bounds(self, ch: str) -> tuple[float, float, float, float] | None:
        pen = BoundsPen(self.glyphs)
        self.glyphs[self.cmap[ord(ch)]].draw(pen)
        return pen.bounds

    def glyph_box(self, ch: str, char_size: int, width_scale: float = 1.0) -> GlyphBox | None:
        """The em square the normalised image of `ch` covers (font2img's crop, margin and centring),
        for a style `width_scale` times as wide as the source (its ink box and its place in the
        advance scaled horizontally)."""
        bounds = self.bounds(ch)
        if bounds is None:
            return None
        x0, y0, x1, y1 = bounds
        margin = MARGIN_PX * self.metrics.units_per_em / char_size
        side = max((x1 - x0) * width_scale, y1 - y0) + 2 * margin
        return GlyphBox((x0 + x1) / 2 * width_scale, (y0 + y1) / 2, side)

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


class RoundedSegmentsPen(FilterPen):
    """Points rounded to font units, as the font stores them, and the segments that rounding
    shrinks to nothing dropped (font checkers flag such zero-length segments)."""

    def moveTo(self, pt):
        self.current = otRound(pt[0]), otRound(pt[1])
        self._outPen.moveTo(self.current)

    def lineTo(self, pt):
        self._segment("lineTo", [pt])

    def curveTo(self, *points):
        self._segment("curveTo", points)

    def qCurveTo(self, *points):
        self._segment("qCurveTo", points)

    def _segment(self, operator: str, points) -> None:
        rounded = [None if p is None else (otRound(p[0]), otRound(p[1])) for p in points]
        if all(p is None or p == self.current for p in rounded):
            return
        getattr(self._outPen, operator)(*rounded)
        self.current = rounded[-1]


@dataclass
class FontNames:
    family: str
    style: str = "Regular"
    version: str = "Version 1.000"
    description: str = ""

    @property
    def postscript(self) -> str:
        return re.sub(r"[^A-Za-z0-9-]", "", f"{self.family}-{self.style}")[:63] or "zi2zi-Regular"


@dataclass
class GlyphPlan:
    """One glyph of the font to build: its outline (pen commands, font units) and metrics."""
    commands: list
    advance: int
    vertical_advance: int
    vertical_origin: int


def plan_glyphs(outlines: dict[str, list], source: SourceFont, advances: dict[str, int],
                width_scale: float = 1.0) -> dict[str, GlyphPlan]:
    """Every character's glyph with its horizontal and vertical metrics, plus the spaces (the
    ideographic space as wide as the style's ideographs)."""
    plans = {ch: GlyphPlan(commands, advances[ch], *source.vertical(ch)) for ch, commands in outlines.items()}
    for ch in SPACES:
        if ch not in plans:
            scale = width_scale if ch == "\u3000" else 1.0
            plans[ch] = GlyphPlan([], round(source.space_advance(ch) * scale), *source.vertical(ch))
    return plans


def looks_monospaced(advances: dict[str, int]) -> bool:
    """Whether text set in the font is fixed-pitch, as font checkers decide it: where the font has
    most of ASCII, 80% of its glyphs share one width; otherwise its characters have at most two
    widths (CJK's full width and half width)."""
    widths = [a for a in advances.values() if a]
    ascii_widths = [a for ch, a in advances.items() if 0x20 <= ord(ch) < 0x7F and a]
    if len(ascii_widths) > 0.8 * 95:
        return max(Counter(ascii_widths).values()) >= 0.8 * len(ascii_widths)
    return len(set(widths)) <= 2


def build_font(glyphs: dict[str, GlyphPlan], metrics: SourceMetrics, names: FontNames, truetype: bool) -> bytes:
    """A complete font: .notdef, one glyph per character, cmap, horizontal and vertical metrics
    (hhea/hmtx, vhea/vmtx, and VORG for CFF), name (Windows records only), OS/2 with the line
    metrics covering every glyph, post; TrueType gets smart dropout (gasp, prep)."""
    upm = metrics.units_per_em
    chars = sorted(glyphs, key=ord)
    order = [".notdef"] + [glyph_name(ch) for ch in chars]
    fb = FontBuilder(upm, isTTF=truetype)
    fb.setupGlyphOrder(order)
    fb.setupCharacterMap({ord(ch): glyph_name(ch) for ch in chars})
    notdef = GlyphPlan(_notdef(upm, metrics), upm // 2, *metrics.default_vertical)
    drawn, horizontal, vertical, origins = {}, {}, {}, {}
    y_min, y_max = 0.0, 0.0
    for name, plan in [(".notdef", notdef)] + [(glyph_name(ch), glyphs[ch]) for ch in chars]:
        path = _clean_path(plan.commands, clockwise=truetype)
        if truetype:
            pen = TTGlyphPen(None)
            path.draw(Cu2QuPen(RoundedSegmentsPen(pen), max_err=upm / 1000, reverse_direction=False))
            drawn[name] = pen.glyph()
        else:
            pen = T2CharStringPen(plan.advance, None)
            path.draw(RoundedSegmentsPen(pen))
            drawn[name] = pen.getCharString()
        bounds = path.bounds if path.area else None
        horizontal[name] = (plan.advance, round(bounds[0]) if bounds else 0)
        vertical[name] = (plan.vertical_advance, round(plan.vertical_origin - bounds[3]) if bounds else 0)
        origins[name] = plan.vertical_origin
        if bounds:
            y_min, y_max = min(y_min, bounds[1]), max(y_max, bounds[3])
    if truetype:
        fb.setupGlyf(drawn)
    else:
        fb.setupCFF(names.postscript, {"FullName": f"{names.family} {names.style}", "FamilyName": names.family,
                                        "Weight": names.style}, drawn, {})
        fb.setupVerticalOrigins(origins, defaultVerticalOrigin=Counter(origins.values()).most_common(1)[0][0])
    fb.setupHorizontalMetrics(horizontal)
    fb.setupHorizontalHeader(ascent=metrics.ascender, descent=metrics.descender, lineGap=metrics.line_gap)
    fb.setupVerticalMetrics(vertical)
    fb.setupVerticalHeader(ascent=upm // 2, descent=-(upm - upm // 2), lineGap=0)
    # Mac (platform 1) records are obsolete and make font checkers complain; Windows records serve every system
    strings = {"familyName": names.family, "styleName": names.style,
               "uniqueFontIdentifier": f"{names.postscript};{names.version}",
               "fullName": f"{names.family} {names.style}", "psName": names.postscript,
               "version": names.version, "description": names.description}
    fb.setupNameTable({key: text for key, text in strings.items() if text}, mac=False)
    fixed_pitch = looks_monospaced({ch: plan.advance for ch, plan in glyphs.items()})
    win_ascent, win_descent = win_metrics(metrics, y_min, y_max)
    fb.setupOS2(sTypoAscender=metrics.ascender, sTypoDescender=metrics.descender, sTypoLineGap=metrics.line_gap,
                usWinAscent=win_ascent, usWinDescent=win_descent, fsType=0, achVendID="ZI2Z", version=4,
                fsSelection=0x40 | 0x80,   # REGULAR, USE_TYPO_METRICS: lines are spaced by the source's typo metrics
                panose=_panose(fixed_pitch))
    fb.setupPost(isFixedPitch=int(fixed_pitch))
    if truetype:
        _smart_dropout(fb.font)
    fb.font["OS/2"].recalcUnicodeRanges(fb.font)
    fb.font["OS/2"].recalcCodePageRanges(fb.font)
    buffer = io.BytesIO()
    fb.save(buffer)
    return buffer.getvalue()


def win_metrics(metrics: SourceMetrics, y_min: float, y_max: float) -> tuple[int, int]:
    """usWinAscent/usWinDescent: Windows clips what lies outside them, so they cover every glyph; the
    source's values where those do, but no more than twice the glyphs' extent (font checkers hold a
    larger value to be an error: the source's cover characters this font does not have). Line
    spacing comes from the typo metrics (USE_TYPO_METRICS), so these only bound the ink."""
    def bounded(source_value: int, extent: float) -> int:
        extent = max(0, otRound(extent))   # as the font stores the glyph boxes
        return min(max(abs(source_value), extent), 2 * extent)
    return bounded(metrics.win_ascent, y_max), bounded(metrics.win_descent, -y_min)


def _panose(fixed_pitch: bool):
    """PANOSE with only what is known: family 'Latin text' and proportion 'monospaced' for a fixed-pitch font,
    'any' (0) everywhere else."""
    from fontTools.ttLib.tables.O_S_2f_2 import Panose
    panose = Panose()
    for field_name in ("bFamilyType", "bSerifStyle", "bWeight", "bProportion", "bContrast", "bStrokeVariation",
                       "bArmStyle", "bLetterForm", "bMidline", "bXHeight"):
        setattr(panose, field_name, 0)
    if fixed_pitch:
        panose.bFamilyType, panose.bProportion = 2, 9
    return panose


def _smart_dropout(font: TTFont) -> None:
    """An unhinted TrueType font's one instruction: smart dropout control at every size (what
    fontbakery and `gftools fix-nonhinting` ask for), so thin strokes do not vanish at small sizes."""
    from fontTools.ttLib import newTable
    from fontTools.ttLib.tables import ttProgram
    prep = newTable("prep")
    prep.program = ttProgram.Program()
    prep.program.fromAssembly(["PUSHW[]", "511", "SCANCTRL[]", "PUSHB[]", "4", "SCANTYPE[]"])
    font["prep"] = prep
    gasp = newTable("gasp")
    gasp.version = 1
    gasp.gaspRange = {0xFFFF: 0x000F}   # grid-fit, greyscale, symmetric smoothing and grid-fit, at every size
    font["gasp"] = gasp


def _notdef(upm: int, metrics: SourceMetrics) -> list:
    """The usual empty box."""
    w, top, bottom, t = upm // 2, metrics.ascender * 0.8, 0, upm // 20
    x0, x1 = t, w - t
    outer = [("moveTo", ((x0, bottom),)), ("lineTo", ((x0, top),)), ("lineTo", ((x1, top),)),
             ("lineTo", ((x1, bottom),)), ("closePath", ())]
    inner = [("moveTo", ((x0 + t, bottom + t),)), ("lineTo", ((x1 - t, bottom + t),)),
             ("lineTo", ((x1 - t, top - t),)), ("lineTo", ((x0 + t, top - t),)), ("closePath", ())]
    return outer + inner


def to_woff2(sfnt: bytes) -> bytes:
    """An OpenType font's bytes as WOFF2 (brotli-compressed, for the web)."""
    font = TTFont(io.BytesIO(sfnt))
    font.flavor = "woff2"
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


def vertical_extent(sfnt: bytes) -> tuple[int, int]:
    """(lowest, highest) ink of an OpenType font's glyphs, from its head table."""
    head = TTFont(io.BytesIO(sfnt), lazy=True)["head"]
    return head.yMin, head.yMax
