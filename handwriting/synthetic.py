"""A bench that imitates filled-in paper: the template rendered, glyphs of a font written into its
cells with a hand's jitter, then a scanner's or a phone camera's distortions. Every written glyph's
ink is known in the glyph image's own frame, so what the reader returns can be scored against it.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from data.render import Font, draw_in_em_box

from .sheet import Layout, Page

INK = 35            # a pen's darkness on white paper
SUPERSAMPLE = 4     # glyphs are drawn this many times finer than the glyph image, then averaged


@dataclass
class Jitter:
    """A hand's variation, drawn per glyph: offsets and size as shares of the em."""
    offset: float = 0.04
    scale: tuple[float, float] = (0.8, 0.96)
    rotation: float = 4.0            # degrees either way
    weight: tuple[int, int] = (-1, 2)  # stroke thinning/thickening, pixels of the fine drawing


@dataclass
class WrittenPage:
    image: np.ndarray                      # grey page, 255 paper
    truth: dict[str, np.ndarray] = field(default_factory=dict)   # char -> ink cover (0..1) in the glyph frame
    empty: list[str] = field(default_factory=list)               # cells left blank on purpose


def render_page(pdf_path: str | Path, number: int, dpi: int = 300) -> np.ndarray:
    import pypdfium2 as pdfium
    document = pdfium.PdfDocument(str(pdf_path))
    bitmap = document[number - 1].render(scale=dpi / 72, grayscale=True)
    page = np.asarray(bitmap.to_pil().convert("L")).copy()
    document.close()
    return page


def hand_written(font: Font, ch: str, size: int, rng: np.random.Generator, jitter: Jitter) -> np.ndarray:
    """Ink coverage (0..1) of `ch` in an em box of size*SUPERSAMPLE pixels, moved as a hand would."""
    import cv2
    fine = size * SUPERSAMPLE
    canvas = Image.new("L", (fine, fine), 0)
    draw_in_em_box(ImageDraw.Draw(canvas), font, ch, (0, 0, fine), fill=255)
    ink = np.asarray(canvas)
    weight = int(rng.integers(jitter.weight[0], jitter.weight[1] + 1)) * SUPERSAMPLE // 2
    if weight:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(weight) + 1,) * 2)
        ink = cv2.dilate(ink, kernel) if weight > 0 else cv2.erode(ink, kernel)
    scale = rng.uniform(*jitter.scale)
    angle = rng.uniform(-jitter.rotation, jitter.rotation)
    matrix = cv2.getRotationMatrix2D((fine / 2, fine / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-jitter.offset, jitter.offset, 2) * fine
    return cv2.warpAffine(ink, matrix, (fine, fine), flags=cv2.INTER_LINEAR).astype(np.float32) / 255


def write_page(page_image: np.ndarray, layout: Layout, page: Page, font: Font, size: int,
               seed: int = 0, jitter: Jitter | None = None, blank_every: int = 13) -> WrittenPage:
    """Write `font`'s glyphs into the page's cells (every `blank_every`-th left empty).

    The truth of each glyph is how much of each pixel its ink covers at the reader's output
    size, `size` pixels for the writing square.
    """
    import cv2
    jitter = jitter or Jitter()
    rng = np.random.default_rng(seed)
    out = WrittenPage(page_image.astype(np.float32).copy())
    # the renderer rounds the page to whole pixels: write where the cells were really printed
    page_width, page_height = layout.geometry.page_size
    px_per_mm_x, px_per_mm_y = page_image.shape[1] / page_width, page_image.shape[0] / page_height
    for index, cell in enumerate(page.cells):
        if blank_every and index % blank_every == blank_every - 1:
            out.empty.append(cell.char)
            continue
        coverage = hand_written(font, cell.char, size, rng, jitter)
        out.truth[cell.char] = cv2.resize(coverage, (size, size), interpolation=cv2.INTER_AREA)
        x, y, side = cell.writing
        coverage = cv2.resize(coverage, (round(side * px_per_mm_x),) * 2, interpolation=cv2.INTER_AREA)
        step_x, step_y = side * px_per_mm_x / coverage.shape[0], side * px_per_mm_y / coverage.shape[0]
        # pixel (u, v) of the em box -> page pixel, pixel centres at integers as the reader samples them;
        # drawn into a patch around the cell, not the whole page
        left, top = int(x * px_per_mm_x) - 2, int(y * px_per_mm_y) - 2
        matrix = np.array([[step_x, 0, x * px_per_mm_x + step_x / 2 - 0.5 - left],
                           [0, step_y, y * px_per_mm_y + step_y / 2 - 0.5 - top]])
        span = coverage.shape[0] + 5
        placed = cv2.warpAffine(coverage, matrix, (span, span), flags=cv2.INTER_LINEAR)
        pressure = rng.uniform(0.9, 1.0)
        patch = out.image[top:top + span, left:left + span]
        patch[:] = patch * (1 - placed * pressure) + INK * placed * pressure
    out.image = np.clip(out.image, 0, 255).astype(np.uint8)
    return out


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def scanner(page: np.ndarray, seed: int = 0, paper: float = 225, light: float = 40, noise: float = 4,
            skew: float = 2.0, quality: int = 60) -> np.ndarray:
    """A flatbed scan of grey paper: paper level ~225, light changing by +-`light` levels across the
    page, sensor noise, the page skewed by `skew` degrees on the glass, saved as JPEG."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = page.shape
    xx = np.linspace(-1, 1, w)[None, :]
    yy = np.linspace(-1, 1, h)[:, None]
    gradient = light * (0.7 * xx + 0.3 * yy)
    image = page.astype(np.float32) / 255 * (paper + gradient)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), skew, 1.0)
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=paper)
    image += rng.normal(0, noise, image.shape)
    return jpeg(np.clip(image, 0, 255).astype(np.uint8), quality)


def phone_photo(page: np.ndarray, seed: int = 0, tilt: float = 20.0, rotation: float = 5.0,
                paper: float = 215, shadow: float = 70, noise: float = 5, quality: int = 60,
                long_side: int = 4000) -> np.ndarray:
    """A phone photo of the page on a darker table: tilted `tilt` degrees (perspective), turned
    `rotation` degrees, a soft shadow band across it, uneven light, noise, JPEG."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = page.shape
    lit = page.astype(np.float32) / 255
    xx = np.linspace(-1, 1, w)[None, :]
    yy = np.linspace(-1, 1, h)[:, None]
    band = np.exp(-((0.8 * xx + 0.6 * yy - 0.2) / 0.25) ** 2)          # a soft diagonal shadow
    lit = lit * (paper + 30 * xx - shadow * band)
    # the camera: pitched by `tilt` about the page's horizontal axis, so the far edge is narrower
    squeeze = math.tan(math.radians(tilt)) * 0.5
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[w * squeeze / 2, 0], [w * (1 - squeeze / 2), 0], [w, h * 0.9], [0, h * 0.9]])
    out_w, out_h = int(long_side * 0.75), long_side
    fit = cv2.getPerspectiveTransform(src, dst)
    turn = np.vstack([cv2.getRotationMatrix2D((w / 2, h * 0.45), rotation, 0.8), [0, 0, 1]])
    place = np.array([[out_w / w, 0, 0], [0, out_h / h, out_h * 0.05], [0, 0, 1]])
    matrix = place @ turn @ fit
    image = cv2.warpPerspective(lit, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderValue=90.0)
    image += rng.normal(0, noise, image.shape)
    return jpeg(np.clip(image, 0, 255).astype(np.uint8), quality)


def curled(page: np.ndarray, bulge_mm: float = 1.2, dpi: int = 300) -> np.ndarray:
    """Paper that is not flat, or a lens that bends straight lines: the page's middle displaced by
    up to `bulge_mm` (sideways and down) while its corners stay where they are."""
    import cv2
    h, w = page.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bulge = bulge_mm * dpi / 25.4 * np.sin(np.pi * yy / h) * np.sin(np.pi * xx / w)
    return cv2.remap(page, xx - bulge, yy - 0.8 * bulge, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class GlyphScore:
    char: str
    iou: float
    background_min: int      # the lightest-kept paper: the darkest pixel away from the written ink
    ink_median: int          # the level inside the written strokes


def score(read: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> list[GlyphScore]:
    """Each written glyph read back against the ink that was written: IoU of the pixels at least
    half covered; the paper is every pixel 3 or more pixels from any ink at all."""
    import cv2
    scores = []
    for ch, cover in truth.items():
        image = read.get(ch)
        if image is None:
            scores.append(GlyphScore(ch, 0.0, 0, 255))
            continue
        ink, mask = image < 128, cover >= 0.5
        iou = float((ink & mask).sum() / max((ink | mask).sum(), 1))
        near = cv2.dilate((cover > 0.02).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        background = int(image[~near].min()) if (~near).any() else 255
        ink_median = int(np.median(image[inner])) if inner.any() else int(np.median(image[mask]))
        scores.append(GlyphScore(ch, iou, background, ink_median))
    return scores
