"""The one glyph renderer, used by font2img.py for training pairs and by infer.py for text.

A glyph is normalised as zi2zi-pytorch's font2img does it: drawn white on a black
canvas twice the character size, cropped to its ink bounding box plus a 5 px margin,
inverted to black on white, padded with white to a square and resized to the output
size. Offsets then shift the result, so they take effect after the centring.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from utils.errors import UserError

MARGIN = 5


@dataclass(frozen=True)
class RenderSettings:
    char_size: int = 256      # font size the glyph is drawn at
    canvas_size: int = 256    # side of the output glyph image
    x_offset: int = 0         # shift of the finished glyph, pixels right
    y_offset: int = 0         # shift of the finished glyph, pixels down

    def __post_init__(self):
        if self.char_size < 8 or self.canvas_size < 8:
            raise UserError(f"--char_size and --canvas_size must be >= 8; got "
                            f"{self.char_size} and {self.canvas_size}")


class Font:
    """A font file (a face of a .ttc collection by `index`) with its character map."""

    def __init__(self, path: str | Path, char_size: int = 256, index: int = 0, flag: str = "--font"):
        from fontTools.ttLib import TTCollection, TTFont, TTLibError

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{flag} {self.path}: no such font file")
        try:
            if self.path.suffix.lower() in (".ttc", ".otc"):
                faces = len(TTCollection(str(self.path), lazy=True).fonts)
                if not 0 <= index < faces:
                    raise UserError(f"{flag} {self.path}: face index {index} out of range; the "
                                    f"collection has faces 0..{faces - 1} (see --list_faces)")
            tt = TTFont(str(self.path), fontNumber=index, lazy=True)
            cmap = tt.getBestCmap()
            self.name = tt["name"].getDebugName(4) or self.path.stem
            self.family = tt["name"].getDebugName(16) or tt["name"].getDebugName(1) or self.name
            self.em_ascent = em_ascent(tt)
            tt.close()
            self.pil = ImageFont.truetype(str(self.path), char_size, index=index)
        except (TTLibError, OSError) as err:
            raise UserError(f"{flag} {self.path}: cannot read the font ({err})") from None
        if not cmap:
            raise UserError(f"{flag} {self.path}: the font has no Unicode character map")
        self.codepoints = frozenset(cmap)
        self.index = index

    def has_char(self, ch: str) -> bool:
        return ord(ch) in self.codepoints

    def font_for(self, ch: str) -> "Font | None":
        return self if self.has_char(ch) else None


def em_ascent(tt) -> float:
    """The share of the em box above the baseline.

    A CJK font's ideographic em box runs from its typographic descender (-0.12 em in most)
    up one em; a font without a usable descender gets that common -0.12.
    """
    upm = tt["head"].unitsPerEm
    descender = tt["OS/2"].sTypoDescender if "OS/2" in tt else 0
    if not -0.5 * upm < descender < 0:
        descender = -0.12 * upm
    return (upm + descender) / upm


def draw_in_em_box(draw: ImageDraw.ImageDraw, font: "Font", ch: str, box: tuple[float, float, float],
                   fill: int = 0) -> None:
    """Draw `ch` where the font puts it in an em box of side box[2] at (box[0], box[1]) (pixels):
    baseline at the em box's ascent, advance centred (an ideograph's advance is the em)."""
    x, y, em = box
    pil = ImageFont.truetype(str(font.path), max(1, round(em)), index=font.index)
    advance = pil.getlength(ch)
    draw.text((x + (em - advance) / 2, y + font.em_ascent * em), ch, fill=fill, font=pil, anchor="ls")


class FontSet:
    """Several fonts used as one source: each character comes from the first font that has it.

    zi2zi's fonts2imgs mode: for a CJK family split over several files (for example one
    font per Unicode plane), the folder of files is the source font.
    """

    def __init__(self, folder: str | Path, char_size: int = 256, flag: str = "--src_fonts_dir"):
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"{flag} {folder}: no such folder")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".ttf", ".otf", ".ttc", ".otc"))
        if not paths:
            raise UserError(f"{flag} {folder}: holds no .ttf/.otf/.ttc font files")
        self.fonts = [Font(p, char_size, 0, flag) for p in paths]
        self.path, self.name = folder, folder.name

    def font_for(self, ch: str) -> Font | None:
        return next((f for f in self.fonts if f.has_char(ch)), None)

    def has_char(self, ch: str) -> bool:
        return self.font_for(ch) is not None


def list_faces(path: str | Path) -> list[str]:
    """Names of the faces in a font file (several for a .ttc collection)."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--list_faces {path}: no such font file")
    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            fonts = TTCollection(str(path), lazy=True).fonts
        else:
            fonts = [TTFont(str(path), lazy=True)]
        return [f["name"].getDebugName(4) or "?" for f in fonts]
    except (TTLibError, OSError, KeyError, AssertionError) as err:
        raise UserError(f"--list_faces {path}: cannot read the font ({err})") from None


def fit_glyph(ink: Image.Image, settings: RenderSettings, threshold: int = 1) -> Image.Image | None:
    """White-on-black ink image -> normalised black-on-white glyph, or None if no ink.

    The bounding box covers pixels of at least `threshold`; 1 (any ink) for fonts.
    """
    mask = ink.point(lambda v: 255 if v >= threshold else 0)
    bbox = mask.getbbox()
    if bbox is None:
        return None
    left, top, right, bottom = bbox
    left, top = max(0, left - MARGIN), max(0, top - MARGIN)
    right, bottom = min(ink.width, right + MARGIN), min(ink.height, bottom + MARGIN)
    glyph = ImageChops.invert(ink.crop((left, top, right, bottom)))
    side = max(glyph.width, glyph.height)
    square = Image.new("L", (side, side), 255)
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    out = square.resize((settings.canvas_size, settings.canvas_size), Image.Resampling.LANCZOS)
    if settings.x_offset or settings.y_offset:
        shifted = Image.new("L", out.size, 255)
        shifted.paste(out, (settings.x_offset, settings.y_offset))
        out = shifted
    return out


def render_char(font: Font | FontSet, ch: str, settings: RenderSettings) -> Image.Image | None:
    """The normalised glyph of `ch` in `font`, or None when the font lacks it or it has no ink."""
    font = font.font_for(ch)
    if font is None:
        return None
    size = settings.char_size * 2
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), ch, fill=255, font=font.pil, anchor="mm")
    return fit_glyph(canvas, settings)


def load_glyph_image(path: str | Path, settings: RenderSettings) -> Image.Image | None:
    """A glyph image file (dark ink on paper of any level) normalised like a rendered glyph.

    The paper becomes white and the ink black first (data.cleanup: grey or unevenly lit paper,
    shadows and noise), so a scanned glyph's background is the 255 a font's has.
    """
    import numpy as np

    from .cleanup import clean_glyph
    try:
        with Image.open(path) as img:
            gray = np.asarray(img.convert("L"))
    except OSError as err:
        raise UserError(f"cannot read glyph image {path}: {err}") from None
    cleaned = clean_glyph(gray)
    if cleaned.empty:
        return None
    return fit_glyph(ImageChops.invert(Image.fromarray(cleaned.image)), settings)


def paired_image(target: Image.Image, source: Image.Image) -> Image.Image:
    """zi2zi's training pair: target glyph on the left, source glyph on the right."""
    size = target.width
    pair = Image.new("L", (2 * size, size), 255)
    pair.paste(target, (0, 0))
    pair.paste(source, (size, 0))
    return pair


def image_hash(img: Image.Image) -> str:
    """Stable across processes (unlike hash()), so --filter gives the same result every run."""
    return hashlib.sha1(img.tobytes()).hexdigest()
