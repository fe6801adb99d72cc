"""Cutting registered pages into glyph images: one CHAR.png per written cell, a contact sheet per
page, and a record of which scan each page came from (so a page read again replaces its glyphs).

A cell's writing square becomes the whole glyph image, as a font's em box does when a glyph
is drawn in it: the writer's placement and size are kept. `center=True` moves the ink's
bounding box to the middle instead (its size unchanged).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from data.cleanup import FAINT_INK, clean_glyph
from data.render import Font
from utils.errors import UserError
from utils.io import atomic_write_text, save_image

from .register import RegisteredPage, found_frame, warp, writing_box
from .sheet import Layout

RECORD_DIR = "reading"            # beside the glyphs: pages.json and the contact sheets
BORDER_SHARE = 0.015              # ink this close to the square's edge ran past it
FRAGMENT_GAP = 0.2                # share of the square: ink farther than this from the rest is a fragment
FRAGMENT_INK = 0.05               # a fragment holding less than this share of the ink is doubtful
BUNDLED_LABEL_FONT = Path(__file__).resolve().parents[1] / "fonts" / "NotoSansSC-Subset.otf"


@dataclass
class CellResult:
    char: str
    image: np.ndarray | None      # None: empty
    doubts: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.image is None:
            return "empty"
        return "doubtful: " + ", ".join(self.doubts) if self.doubts else "ok"


def centred(image: np.ndarray) -> np.ndarray:
    """The ink's bounding box moved to the middle of the image, its size unchanged."""
    ys, xs = np.nonzero(image < 255)
    dy = (image.shape[0] - 1 - ys.max() - ys.min()) // 2
    dx = (image.shape[1] - 1 - xs.max() - xs.min()) // 2
    out = np.full_like(image, 255)
    out[ys + dy, xs + dx] = image[ys, xs]
    return out


def doubts_about(image: np.ndarray, ink_level: float) -> list[str]:
    import cv2
    ink = image < 128
    size = image.shape[0]
    band = max(2, round(size * BORDER_SHARE))
    doubts = []
    if ink[:band].any() or ink[-band:].any() or ink[:, :band].any() or ink[:, -band:].any():
        doubts.append("ink touches the border")
    reach = max(3, round(size * FRAGMENT_GAP))
    grouped = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach)))
    count, labels = cv2.connectedComponents(grouped)
    if count > 2:
        mass = np.bincount(labels[ink], minlength=count)[1:]
        if mass.min() < FRAGMENT_INK * mass.sum():
            doubts.append("fragments far apart")
    if ink_level > FAINT_INK:
        doubts.append("too faint")
    return doubts


def read_page(page: RegisteredPage, layout: Layout, size: int, center: bool = False) -> list[CellResult]:
    results = []
    columns, _ = layout.geometry.grid_shape()
    found: dict[tuple[int, int], tuple[float, float]] = {}
    for index, cell in enumerate(tqdm(page.page.cells, desc=f"{page.name}", unit="cell", leave=False)):
        # bent paper moves neighbouring cells alike: start from the offsets found left of and above this one
        row, column = divmod(index, columns)
        around = [found[k] for k in ((row, column - 1), (row - 1, column)) if k in found]
        guess = tuple(np.mean(around, axis=0)) if around else (0.0, 0.0)
        lines = found_frame(page.gray, page.homography, cell.frame, guess)
        found[row, column] = ((lines[0] + lines[1]) / 2, (lines[2] + lines[3]) / 2)
        cleaned = clean_glyph(warp(page.gray, page.homography, writing_box(cell, lines), size))
        if cleaned.empty:
            results.append(CellResult(cell.char, None))
            continue
        image = centred(cleaned.image) if center else cleaned.image
        results.append(CellResult(cell.char, image, doubts_about(cleaned.image, cleaned.ink_level)))
    return results


class GlyphFolder:
    """The reader's output folder: CHAR.png per glyph, and reading/pages.json recording where each
    page's glyphs came from."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.record_path = self.folder / RECORD_DIR / "pages.json"
        # pages: what each page's reading found; glyphs: which page each CHAR.png came from last
        self.record = {"pages": {}, "glyphs": {}}
        if self.record_path.exists():
            try:
                self.record = json.loads(self.record_path.read_text(encoding="utf-8"))
                self.record.setdefault("glyphs", {})
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                raise UserError(f"{self.record_path}: damaged; move it away to start the record again "
                                f"(the glyphs beside it are kept)") from None

    @staticmethod
    def key(layout: Layout, number: int) -> str:
        return f"{layout.digest}:{number}"

    def write_page(self, layout: Layout, page: RegisteredPage, cells: list[CellResult]) -> str:
        """Write the page's glyphs (replacing what an earlier reading of it wrote); say what happened."""
        key = self.key(layout, page.page.number)
        owners = self.record["glyphs"]
        earlier = self.record["pages"].get(key)
        if earlier:   # this page's earlier glyphs go, unless another page has written that character since
            for ch in earlier["cells"]:
                if owners.get(ch) == key:
                    (self.folder / f"{ch}.png").unlink(missing_ok=True)
                    del owners[ch]
        taken_over = []
        for cell in cells:
            if cell.image is not None:
                save_image(Image.fromarray(cell.image), self.folder / f"{cell.char}.png")
                if owners.get(cell.char, key) != key:
                    taken_over.append(cell.char)
                owners[cell.char] = key
        name = re.sub(r"[^\w.-]+", "_", layout.charset_name).strip("_") or "sheet"
        sheet = self.folder / RECORD_DIR / f"page_{name}_{page.page.number:02d}.png"
        save_image(contact_sheet(layout, page, cells), sheet)
        self.record["pages"][key] = {
            "page": page.page.number, "pages": len(layout.pages), "charset_name": layout.charset_name,
            "source": page.name, "read_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "dpi": round(page.dpi),
            "turned": page.turned, "contact_sheet": sheet.name,
            "cells": {cell.char: cell.status for cell in cells}}
        atomic_write_text(self.record_path, json.dumps(self.record, ensure_ascii=False, indent=1))
        written = sum(cell.image is not None for cell in cells)
        line = f"{page.name}: page {page.page.number}/{len(layout.pages)}, {written} glyphs"
        if page.turned:
            line += f" (the page was turned {page.turned} degrees; read the right way round)"
        if earlier:
            line += f"; replaces the glyphs read from {earlier['source']} at {earlier['read_at']}"
        if taken_over:
            line += (f"; {len(taken_over)} replace glyphs another page wrote "
                     f"(e.g. {''.join(taken_over[:10])})")
        return line


def contact_sheet(layout: Layout, page: RegisteredPage, cells: list[CellResult], thumb: int = 96) -> Image.Image:
    """The page's glyphs as read, in the template's grid: green frame ok, orange doubtful (with why),
    grey empty."""
    columns, _ = layout.geometry.grid_shape()
    rows = -(-len(cells) // columns)
    label_height, pad = 30, 8
    width = columns * (thumb + pad) + pad
    header = 34
    sheet = Image.new("RGB", (width, header + rows * (thumb + label_height + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    small = ImageFont.load_default()
    label_font = Font(BUNDLED_LABEL_FONT, 16)
    draw.text((pad, 8), f"{page.name}: page {page.page.number}/{len(layout.pages)}  "
                        f"green ok, orange doubtful, grey empty", fill="black", font=small)
    colours = {"ok": (40, 160, 60), "doubtful": (235, 130, 0), "empty": (170, 170, 170)}
    for i, cell in enumerate(cells):
        row, column = divmod(i, columns)
        x, y = pad + column * (thumb + pad), header + row * (thumb + label_height + pad)
        kind = cell.status.split(":")[0]
        if cell.image is not None:
            sheet.paste(Image.fromarray(cell.image).resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
        draw.rectangle((x - 2, y - 2, x + thumb + 1, y + thumb + 1), outline=colours[kind], width=3)
        if label_font.has_char(cell.char):
            draw.text((x, y + thumb + 4), cell.char, fill="black", font=label_font.pil)
        else:
            draw.text((x, y + thumb + 4), f"U+{ord(cell.char):04X}", fill="black", font=small)
        if cell.doubts:
            why = " ".join(d.split()[-1] for d in cell.doubts)   # border, apart, faint
            draw.text((x + 20 if label_font.has_char(cell.char) else x + 44, y + thumb + 8), why, fill=colours["doubtful"], font=small)
        elif cell.image is None:
            draw.text((x + 20, y + thumb + 8), "empty", fill=colours["empty"], font=small)
    return sheet
