"""The printable template: a PDF of writing cells with markers and a QR code on every page.

Markers and QR codes are drawn as vector squares from the bit matrices OpenCV makes, so they
print sharp at any resolution. The characters are set in an embedded subset of the label font
(fpdf2 embeds only the glyphs used). Guides and the optional guide glyph are printed light
enough (grey 225 and 238 of 255) that the reader's clean-up turns them to paper.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.render import Font
from utils.errors import UserError
from utils.io import atomic_write_bytes

from .sheet import ARUCO_DICTIONARY, Cell, Layout, Page

GUIDE_GREY = 225        # centre and baseline guides
GUIDE_GLYPH_GREY = 238  # the faint glyph to write over (--guide_font)
FRAME_GREY = 120
LABEL_POINTS = 8.0
MM_PER_POINT = 25.4 / 72


def aruco_dictionary():
    import cv2
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))


def marker_bits(marker_id: int) -> np.ndarray:
    """The marker as a boolean matrix, True = black, its black border included (6 x 6)."""
    import cv2
    dictionary = aruco_dictionary()
    side = dictionary.markerSize + 2
    return cv2.aruco.generateImageMarker(dictionary, marker_id, side, borderBits=1) < 128


def qr_bits(text: str) -> np.ndarray:
    """The QR code of `text` as a boolean matrix, True = black, with its quiet zone."""
    import cv2
    params = cv2.QRCodeEncoder.Params()
    params.correction_level = cv2.QRCodeEncoder_CORRECT_LEVEL_M
    return cv2.QRCodeEncoder.create(params).encode(text) < 128


def draw_bits(pdf, bits: np.ndarray, box: tuple[float, float, float]) -> None:
    """Black squares for the True cells of `bits`, filling the square `box` (x, y, side)."""
    x, y, side = box
    step = side / bits.shape[0]
    pdf.set_fill_color(0)
    rows, columns = bits.shape
    for row, column in zip(*np.nonzero(bits)):
        # a hair over into a black neighbour, so neighbouring squares print as one area with no seam,
        # and never past the code's outer edge, where the reader measures
        wider = 0.02 if column + 1 < columns and bits[row, column + 1] else 0.0
        taller = 0.02 if row + 1 < rows and bits[row + 1, column] else 0.0
        pdf.rect(x + column * step, y + row * step, step + wider, step + taller, style="F")


class TemplateWriter:
    def __init__(self, layout: Layout, label_font: Font, guide_font: Font | None = None):
        from fpdf import FPDF

        self.layout, self.label_font, self.guide_font = layout, label_font, guide_font
        check_covers(label_font, layout.charset, "--label_font")
        if guide_font is not None:
            check_covers(guide_font, layout.charset, "--guide_font")
        width, height = layout.geometry.page_size
        self.pdf = FPDF(unit="mm", format=(width, height))
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(0, 0, 0)
        self.pdf.set_title(f"Handwriting sheets: {layout.charset_name} ({len(layout.charset)} characters)")
        self.pdf.set_creator("zi2zi-sn make_template.py")
        self.pdf.add_font("label", fname=str(label_font.path))
        if guide_font is not None:
            self.pdf.add_font("guide", fname=str(guide_font.path))

    def write(self, path: str | Path) -> Path:
        for page in self.layout.pages:
            self.draw_page(page)
        return atomic_write_bytes(path, bytes(self.pdf.output()))

    def draw_page(self, page: Page) -> None:
        pdf, geometry = self.pdf, self.layout.geometry
        pdf.add_page()
        for marker_id, box in geometry.marker_boxes().items():
            draw_bits(pdf, marker_bits(marker_id), box)
        draw_bits(pdf, qr_bits(self.layout.qr_text(page)), geometry.qr_box())
        left = geometry.marker_inset + geometry.marker + 4.0
        total = len(self.layout.pages)
        pdf.set_text_color(0)
        pdf.set_font("helvetica", "B", 20)
        pdf.text(left, geometry.marker_inset + 7.5, f"{page.number}/{total}")
        lines = [f"Handwriting sheet {page.number} of {total}: {self.layout.charset_name}, "
                 f"{len(self.layout.charset)} characters",
                 "Write each character inside its square, in dark ink (pen or marker).",
                 "Keep the corner squares and the code uncovered; scan or photograph the whole page."]
        # the notes end before the QR code's quiet zone, however long the charset's name
        room = geometry.qr_box()[0] - 1.0 - (left + 22)
        points = 9.0
        pdf.set_font("helvetica", "", points)
        while points > 5 and max(pdf.get_string_width(line) for line in lines) > room:
            points -= 0.5
            pdf.set_font("helvetica", "", points)
        for i, line in enumerate(lines):
            line = line.encode("latin-1", "replace").decode("latin-1")   # the core font's characters only
            while pdf.get_string_width(line) > room:
                line = line[:-1]
            pdf.text(left + 22, geometry.marker_inset + 4.5 + 4.5 * i, line)
        for cell in page.cells:
            self.draw_cell(cell)

    def draw_cell(self, cell: Cell) -> None:
        pdf = self.pdf
        x, y, side = cell.writing
        if self.guide_font is not None:
            pdf.set_font("guide", size=side / MM_PER_POINT)
            pdf.set_text_color(GUIDE_GLYPH_GREY)
            advance = pdf.get_string_width(cell.char)
            pdf.text(x + (side - advance) / 2, y + self.guide_font.em_ascent * side, cell.char)
        pdf.set_draw_color(GUIDE_GREY)
        pdf.set_line_width(0.15)
        pdf.set_dash_pattern(dash=0.8, gap=0.8)
        pdf.line(x + side / 2, y, x + side / 2, y + side)
        pdf.line(x, y + side / 2, x + side, y + side / 2)
        pdf.set_dash_pattern(dash=0.3, gap=1.2)
        baseline = y + self.label_font.em_ascent * side
        pdf.line(x, baseline, x + side, baseline)
        pdf.set_dash_pattern()
        fx, fy, fside = cell.frame
        pdf.set_draw_color(FRAME_GREY)
        pdf.set_line_width(0.25)
        pdf.rect(fx, fy, fside, fside)
        pdf.set_text_color(0)
        pdf.set_font("label", size=LABEL_POINTS)
        pdf.text(*cell.label, cell.char)
        pdf.set_font("helvetica", "", 5)
        pdf.set_text_color(110)
        pdf.text(cell.label[0] + 3.6, cell.label[1] - 0.2, f"U+{ord(cell.char):04X}")


def check_covers(font: Font, chars: str, flag: str) -> None:
    missing = [c for c in chars if not font.has_char(c)]
    if missing:
        raise UserError(f"{flag} {font.path} lacks {len(missing)} of the {len(chars)} characters "
                        f"(e.g. {''.join(missing[:10])}); give a font that has them all, such as "
                        f"Noto Sans CJK (Debian: fonts-noto-cjk)")
