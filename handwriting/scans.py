"""Scans and photos in: image files, multi-page TIFFs and PDFs become grey pages to read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.pairs import IMAGE_SUFFIXES
from utils.errors import UserError

PDF_DPI = 300   # PDF pages (a scanner's "scan to PDF") are rendered at this resolution


@dataclass
class Scan:
    name: str            # the file, and the page within it for a PDF or multi-page TIFF
    gray: np.ndarray     # uint8 luminance


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Files as given; a folder stands for its image and PDF files, in name order."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + (".pdf",))
            if not inside:
                raise UserError(f"{path}: the folder holds no scans (PNG, JPEG, TIFF or PDF files)")
            files.extend(inside)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    return files


def load_scans(path: Path) -> list[Scan]:
    """Every page in one file, as grey images."""
    if path.suffix.lower() == ".pdf" or path.read_bytes()[:5] == b"%PDF-":
        return _pdf_pages(path)
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
            pages = []
            for index in range(frames):
                img.seek(index)
                # a phone stores its photo sideways and says so in EXIF; turn it as a viewer would
                upright = ImageOps.exif_transpose(img.copy())
                pages.append(np.asarray(upright.convert("L")))
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image or PDF; give scans or photos as PNG, JPEG, TIFF or PDF") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the image ({err}); is the file complete?") from None
    if len(pages) == 1:
        return [Scan(path.name, pages[0])]
    return [Scan(f"{path.name} page {i + 1}", page) for i, page in enumerate(pages)]


def _pdf_pages(path: Path) -> list[Scan]:
    import pypdfium2 as pdfium
    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as err:
        raise UserError(f"{path}: not a readable PDF ({err})") from None
    pages = []
    for index in range(len(document)):
        bitmap = document[index].render(scale=PDF_DPI / 72, grayscale=True)
        pages.append(Scan(f"{path.name} page {index + 1}", np.asarray(bitmap.to_pil().convert("L"))))
    document.close()
    if not pages:
        raise UserError(f"{path}: the PDF has no pages")
    return pages
