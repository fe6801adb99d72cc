"""The geometry of a handwriting sheet, shared by the template writer and the scan reader.

Everything is in millimetres from the page's top-left corner. A sheet has four ArUco markers
in its corners (their ids say which corner is which, so a page scanned upside down or sideways
is turned back), a QR code naming the page, the charset's digest and the layout's digest, and
a grid of cells. A cell's writing square is the character's em box: the reader maps it onto
the whole glyph image, as a font's em box is, so the writer's own placement and size are kept.
The printed frame sits a gap outside the writing square, so a few tenths of a millimetre of
registration error never brings it into the glyph; the character's label is printed above
the frame.

The layout (Layout.to_json) lists every cell's box and character, for the reader, the tests
and anyone's own tooling.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.errors import UserError
from utils.io import atomic_write_text

LAYOUT_VERSION = 1
PAPER_MM = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}
ARUCO_DICTIONARY = "DICT_4X4_50"
CORNERS = ("top-left", "top-right", "bottom-right", "bottom-left")  # marker ids 0, 1, 2, 3
QR_PREFIX = "zi2zi-sheet"


@dataclass(frozen=True)
class Geometry:
    """Sizes of a sheet's parts (mm); what the layout digest covers, with the paper."""
    paper: str = "A4"
    marker: float = 12.0          # side of a corner marker
    marker_inset: float = 8.0     # from the page edge to a marker (inside most printers' margins)
    qr: float = 22.0              # side of the QR code, quiet zone included
    writing: float = 15.0         # side of a cell's writing square (the em box)
    frame_gap: float = 1.5        # between the writing square and its printed frame
    label_height: float = 4.0     # band above the frame where the character is printed
    column_gap: float = 2.0
    row_gap: float = 1.5
    header: float = 36.0          # top of the grid
    footer: float = 22.0          # from the page's bottom to the grid's bottom

    @property
    def page_size(self) -> tuple[float, float]:
        return PAPER_MM[self.paper]

    @property
    def frame(self) -> float:
        return self.writing + 2 * self.frame_gap

    @property
    def pitch(self) -> tuple[float, float]:
        return self.frame + self.column_gap, self.label_height + self.frame + self.row_gap

    def grid_shape(self) -> tuple[int, int]:
        width, height = self.page_size
        usable_width = width - 2 * (self.marker_inset + 7.0)
        usable_height = height - self.header - self.footer
        columns = int((usable_width + self.column_gap) // self.pitch[0])
        rows = int((usable_height + self.row_gap) // self.pitch[1])
        return columns, rows

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(f"{LAYOUT_VERSION}:{text}".encode()).hexdigest()[:8]

    def marker_boxes(self) -> dict[int, tuple[float, float, float]]:
        """Marker id -> (x, y, side) of its square."""
        width, height = self.page_size
        near, m = self.marker_inset, self.marker
        far_x, far_y = width - near - m, height - near - m
        return {0: (near, near, m), 1: (far_x, near, m), 2: (far_x, far_y, m), 3: (near, far_y, m)}

    def qr_box(self) -> tuple[float, float, float]:
        width, _ = self.page_size
        return width - self.marker_inset - self.marker - 4.0 - self.qr, self.marker_inset, self.qr


@dataclass(frozen=True)
class Cell:
    char: str
    writing: tuple[float, float, float]   # x, y, side of the writing square (the em box)
    frame: tuple[float, float, float]     # x, y, side of the printed frame
    label: tuple[float, float]            # where the label's text starts (x, baseline y)


@dataclass
class Page:
    number: int
    cells: list[Cell] = field(default_factory=list)


def charset_digest(chars: list[str] | str) -> str:
    return hashlib.sha1("".join(chars).encode("utf-8")).hexdigest()[:12]


@dataclass
class Layout:
    """Every page of a template: its cells and characters, and what identifies it."""
    geometry: Geometry
    charset: str                   # the characters, in order
    charset_name: str              # what --charset said (for people; the digest is what is checked)
    pages: list[Page]

    @classmethod
    def plan(cls, chars: list[str], charset_name: str, geometry: Geometry) -> "Layout":
        if not chars:
            raise UserError("--charset gives no characters to write")
        columns, rows = geometry.grid_shape()
        per_page = columns * rows
        width, _ = geometry.page_size
        pitch_x, pitch_y = geometry.pitch
        left = (width - (columns * pitch_x - geometry.column_gap)) / 2
        pages = []
        for start in range(0, len(chars), per_page):
            page = Page(number=len(pages) + 1)
            for i, ch in enumerate(chars[start:start + per_page]):
                row, column = divmod(i, columns)
                frame_x = left + column * pitch_x
                frame_y = geometry.header + row * pitch_y + geometry.label_height
                gap = geometry.frame_gap
                page.cells.append(Cell(ch, writing=(frame_x + gap, frame_y + gap, geometry.writing),
                                       frame=(frame_x, frame_y, geometry.frame),
                                       label=(frame_x + 0.3, frame_y - 0.9)))
            pages.append(page)
        return cls(geometry, "".join(chars), charset_name, pages)

    @property
    def digest(self) -> str:
        return charset_digest(self.charset)

    def qr_text(self, page: Page) -> str:
        return (f"{QR_PREFIX};v={LAYOUT_VERSION};page={page.number};pages={len(self.pages)};"
                f"charset={self.digest};layout={self.geometry.digest()}")

    def page(self, number: int) -> Page:
        return self.pages[number - 1]

    def to_json(self) -> str:
        width, height = self.geometry.page_size
        return json.dumps({
            "layout_version": LAYOUT_VERSION,
            "units": "mm from the page's top-left corner; boxes are [x, y, side]",
            "paper": self.geometry.paper, "page_size": [width, height],
            "charset_name": self.charset_name, "charset_digest": self.digest,
            "layout_digest": self.geometry.digest(), "charset": self.charset,
            "geometry": asdict(self.geometry),
            "aruco_dictionary": ARUCO_DICTIONARY,
            "markers": {str(i): {"corner": CORNERS[i], "box": list(box)}
                        for i, box in self.geometry.marker_boxes().items()},
            "qr": {"box": list(self.geometry.qr_box())},
            "pages": [{"number": p.number, "qr": self.qr_text(p),
                       "cells": [{"char": c.char, "writing": list(c.writing), "frame": list(c.frame)}
                                 for c in p.cells]} for p in self.pages],
        }, ensure_ascii=False, indent=1)

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Layout":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"--layout {path}: no such file (make_template.py writes it beside the PDF)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"--layout {path}: not a layout JSON file ({err})") from None
        if not isinstance(data, dict) or "geometry" not in data or "charset" not in data:
            raise UserError(f"--layout {path}: not a layout written by make_template.py")
        if data.get("layout_version") != LAYOUT_VERSION:
            raise UserError(f"--layout {path}: layout version {data.get('layout_version')}; this reader "
                            f"reads version {LAYOUT_VERSION}: print a new template with make_template.py")
        try:
            geometry = Geometry(**data["geometry"])
        except TypeError as err:
            raise UserError(f"--layout {path}: its geometry is not this version's ({err})") from None
        # the cells are planned again from the geometry, so a hand-edited box cannot disagree with the print
        layout = cls.plan(list(data["charset"]), data.get("charset_name", ""), geometry)
        if layout.digest != data.get("charset_digest") or geometry.digest() != data.get("layout_digest"):
            raise UserError(f"--layout {path}: its digests do not match its own charset and geometry "
                            f"(the file was edited); use the file make_template.py wrote")
        return layout


def parse_qr(text: str) -> dict[str, str] | None:
    """The fields of a sheet's QR text, or None when it is not a sheet's code."""
    parts = text.split(";")
    if not parts or parts[0] != QR_PREFIX:
        return None
    fields = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
    return fields if {"v", "page", "pages", "charset", "layout"} <= fields.keys() else None
