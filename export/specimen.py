"""A text specimen: a paragraph set in a font file, wrapped to a width, as a PNG to look at."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from utils.io import save_image

DEFAULT_TEXT = "永和九年，歲在癸丑，暮春之初，會於會稽山陰之蘭亭，修禊事也。群賢畢至，少長咸集。"


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Lines no wider than `width`: CJK breaks between any two characters, Latin between words."""
    lines = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for token in _tokens(paragraph):
            if line and font.getlength(line + token) > width:
                lines.append(line.rstrip())
                line = token.lstrip()
            else:
                line += token
        lines.append(line)
    return lines


def _tokens(text: str):
    """Latin words (with their trailing space) stay whole; every other character is a token."""
    word = ""
    for ch in text:
        if ch.isascii() and not ch.isspace():
            word += ch
            continue
        if word:
            yield word
            word = ""
        yield ch
    if word:
        yield word


def _file(font: str | Path | bytes):
    return io.BytesIO(font) if isinstance(font, bytes) else str(font)


def in_font(text: str, font: str | Path | bytes) -> tuple[str, str]:
    """(the text without the characters the font (a path, or the font file's bytes) lacks, those characters)."""
    from fontTools.ttLib import TTFont
    with TTFont(_file(font), lazy=True) as tt:
        cmap = tt.getBestCmap()
    kept = "".join(ch for ch in text if ch.isspace() or ord(ch) in cmap)
    return kept, "".join(dict.fromkeys(ch for ch in text if not ch.isspace() and ord(ch) not in cmap))


def write_specimen(font_file: str | Path | bytes, text: str, out: str | Path, title: str | None = None,
                   size: int = 48, width: int = 1000) -> tuple[Path, str]:
    """Set `text` in the font at `size` px, wrapped to `width` px, under a small title line.

    Characters the font lacks are left out (rather than drawn as empty boxes) and returned.
    """
    text, missing = in_font(text, font_file)
    font = ImageFont.truetype(_file(font_file), size)
    margin, leading = size // 2, round(size * 1.4)
    lines = wrap(text, font, width - 2 * margin)
    label_font = ImageFont.load_default(max(12, size // 3))
    top = margin + (round(size * 0.6) if title else 0)
    image = Image.new("L", (width, top + leading * len(lines) + margin), 255)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((margin, margin // 2), title, fill=110, font=label_font)
    for i, line in enumerate(lines):
        draw.text((margin, top + i * leading), line, fill=0, font=font)
    return save_image(image, out), missing
