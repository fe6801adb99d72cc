"""Build tiny TrueType fonts for tests: each character a set of filled rectangles."""
from __future__ import annotations

from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen


def _glyph(rects):
    pen = TTGlyphPen(None)
    for x0, y0, x1, y1 in rects:
        pen.moveTo((x0, y0))
        pen.lineTo((x0, y1))
        pen.lineTo((x1, y1))
        pen.lineTo((x1, y0))
        pen.closePath()
    return pen.glyph()


def make_font(path: Path, shapes: dict[str, list[tuple[int, int, int, int]]],
              aliases: dict[str, str] | None = None) -> Path:
    """A font mapping each character of `shapes` to its rectangles (units of 1000/em).

    `aliases` maps further characters to the glyph of another character (how a font
    maps many code points to one placeholder glyph). An empty rectangle list gives a
    glyph with no ink.
    """
    names = [".notdef"] + [f"g{ord(c):04X}" for c in shapes]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    cmap = {ord(c): f"g{ord(c):04X}" for c in shapes}
    for alias, original in (aliases or {}).items():
        cmap[ord(alias)] = f"g{ord(original):04X}"
    fb.setupCharacterMap(cmap)
    glyphs = {".notdef": _glyph([(100, 0, 900, 800)])}
    glyphs.update({f"g{ord(c):04X}": _glyph(r) for c, r in shapes.items()})
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({n: (1000, 0) for n in names})
    fb.setupHorizontalHeader(ascent=880, descent=-120)
    fb.setupNameTable({"familyName": "Test Blocks", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=880, usWinAscent=880, usWinDescent=120)
    fb.setupPost()
    fb.save(str(path))
    return path
