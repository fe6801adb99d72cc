"""Glyph images from paper: the paper made white and the ink black, whatever the levels.

Scans and photos have grey paper, light that changes across the page, shadows and JPEG
noise; a fixed threshold keeps some of that as the glyph's background or eats faint ink.
Here each image is divided by an estimate of its own paper (a smooth surface fitted to
the pixels that are not ink), so the paper is 1.0 everywhere; Otsu's threshold on that
flat image separates ink from paper, and each pixel's share of ink (from the paper's level to
the ink's own darkness) is mapped so that paper is 255, ink 0, and the anti-aliased edge keeps
its greys, half-covered pixels staying half grey (strokes keep their width). Printed guides
lighter than a fifth of the ink's darkness vanish with the paper.

Used by the handwriting reader for every cell and by font2img.py for any glyph image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAPER_COVER = 0.20      # a pixel the ink covers less than this much is paper (and above 1 - this, ink)
INK_AT_MOST = 0.60      # a pixel is ink only if at most this share of the paper's brightness
EMPTY_SHARE = 2e-4      # fewer ink pixels than this share of the image: no ink at all
FAINT_INK = 0.50        # ink whose typical level is lighter than this share of the paper is faint
SPECK_SHARE = 4e-5      # ink specks smaller than this share of the image are noise


@dataclass
class CleanGlyph:
    image: np.ndarray        # uint8, 255 paper, 0 ink
    empty: bool              # no ink at all
    ink_level: float         # the ink's typical level as a share of the paper (0 black, 1 paper)


def paper_surface(gray: np.ndarray, degree: int = 3) -> np.ndarray:
    """The paper's brightness at every pixel: a polynomial surface fitted to the non-ink pixels.

    A low-degree surface follows grey paper, a light gradient and a soft shadow but cannot
    follow strokes, however thick, because the pixels taken for ink are left out of the fit.
    """
    import cv2

    h, w = gray.shape
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    # first guess of the paper: the brightest level near each pixel (strokes are narrower than the window)
    coarse = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    coarse = cv2.blur(coarse, (9, 9))
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0 - 0.5
    terms = [xx ** i * yy ** j for i in range(degree + 1) for j in range(degree + 1 - i)]
    basis = np.stack([t.ravel() for t in terms], axis=1)
    values = small.ravel()
    paper = values > 0.85 * coarse.ravel()
    for _ in range(2):
        if paper.sum() < basis.shape[1] * 4:   # almost all ink: the coarse estimate is all there is
            fit = coarse
            break
        coef, *_ = np.linalg.lstsq(basis[paper], values[paper], rcond=None)
        fit = (basis @ coef).reshape(64, 64)
        paper = values > 0.85 * fit.ravel()
    fit = np.maximum(fit, 1.0)
    return cv2.resize(fit.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def clean_glyph(gray: np.ndarray) -> CleanGlyph:
    """Dark ink on light paper (uint8 grey levels) -> black ink on white paper."""
    import cv2
    from skimage.filters import threshold_otsu

    gray = np.asarray(gray)
    flat = np.clip(gray.astype(np.float32) / paper_surface(gray), 0.0, 1.0)
    candidates = flat < INK_AT_MOST
    if candidates.mean() < EMPTY_SHARE:
        return CleanGlyph(np.full(gray.shape, 255, np.uint8), True, 1.0)
    threshold = min(float(threshold_otsu(flat)), INK_AT_MOST)
    ink = flat < threshold
    dark = min(float(np.percentile(flat[ink], 10)), threshold - 0.05)
    level = float(np.median(flat[ink]))
    # how much of each pixel the ink covers (0 paper, 1 the ink's full darkness), then a ramp that is
    # symmetric about half cover, so a stroke keeps its width: faint greys (guides, stains) become
    # paper, nearly full cover becomes black, and the edge between keeps its anti-aliasing
    cover = (1.0 - flat) / (1.0 - dark)
    ramp = np.clip((cover - PAPER_COVER) / (1.0 - 2 * PAPER_COVER), 0.0, 1.0)
    image = np.round((1.0 - ramp) * 255).astype(np.uint8)
    # grey is an edge only beside ink: grey anywhere else (a guide's trace, noise, a stain) is paper
    edge_reach = 2 * max(1, round(min(gray.shape) / 128)) + 1
    image[cv2.dilate((image < 128).astype(np.uint8), np.ones((edge_reach, edge_reach), np.uint8)) == 0] = 255
    count, labels, stats, _ = cv2.connectedComponentsWithStats((image < 128).astype(np.uint8), connectivity=8)
    specks = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] < SPECK_SHARE * gray.size]
    if specks:
        # a speck's grey halo goes with it
        halo = cv2.dilate(np.isin(labels, specks).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        image[halo & (labels == 0) | np.isin(labels, specks)] = 255
    if (image < 128).mean() < EMPTY_SHARE:
        return CleanGlyph(np.full(gray.shape, 255, np.uint8), True, 1.0)
    return CleanGlyph(image, False, level)
