"""Glyph-like paired images without fonts, for benchmarks and tests that need many pairs quickly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .obj import encode_image, write_obj


def synthetic_obj(path: str | Path, count: int, size: int = 256, labels: int = 4, distinct: int | None = None,
                  seed: int = 0) -> Path:
    """`count` pairs of blocks of ink on white, JPEG-encoded as font2img.py writes them, labels 0..labels-1 in turn.

    `distinct` cycles that many different images through the records: encoding 40,000
    JPEGs would take longer than what they are made to measure.
    """
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(min(distinct or count, count)):
        pair = np.full((size, 2 * size), 255, np.uint8)
        for half in (0, size):
            for _ in range(4):
                x, y = rng.integers(0, size - size // 4, 2)
                pair[y:y + size // 5, half + x:half + x + size // 6] = 0
        images.append(encode_image(Image.fromarray(pair)))
    write_obj(path, ((i % labels, images[i % len(images)]) for i in range(count)))
    return Path(path)
