"""A corpus from many fonts in one command: every font of a folder (or a list) becomes one style
label, each drawn against the same source font (font2img.py --dst_fonts).

Beside the pairs it writes styles.json: for each label the font's family, file, face and
coverage of the charset, the pairs written and what was skipped and why. infer.py's
--type_file reads it for style names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError
from utils.io import atomic_write_text

from .pairs import PairSummary, font2font
from .render import Font, FontSet, RenderSettings

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
STYLES_FILE = "styles.json"


@dataclass(frozen=True)
class FontEntry:
    path: Path
    index: int = 0   # face of a collection


def list_fonts(spec: str | Path, flag: str = "--dst_fonts") -> list[FontEntry]:
    """The fonts of a folder (searched below it, in path order: Debian puts each package in its own
    folder) or of a text file listing one `PATH` or `PATH#FACE` per line (# FACE: a .ttc's face)."""
    spec = Path(spec)
    if spec.is_dir():
        paths = sorted(p for p in spec.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())
        if not paths:
            raise UserError(f"{flag} {spec}: holds no .ttf/.otf/.ttc font files")
        return [FontEntry(p) for p in paths]
    if not spec.is_file():
        raise UserError(f"{flag} {spec}: no such folder or font list")
    entries = []
    for number, line in enumerate(spec.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        path, sep, face = line.rpartition("#") if "#" in line else (line, "", "0")
        if not face.isdigit():
            raise UserError(f"{flag} {spec} line {number}: expected PATH or PATH#FACE; got {line!r}")
        path = Path(path)
        if not path.is_absolute():
            path = spec.parent / path
        entries.append(FontEntry(path, int(face)))
    if not entries:
        raise UserError(f"{flag} {spec}: lists no fonts")
    return entries


def read_styles(sample_dir: Path) -> dict[int, dict]:
    path = Path(sample_dir) / STYLES_FILE
    if not path.exists():
        return {}
    try:
        return {int(s["label"]): s for s in json.loads(path.read_text(encoding="utf-8"))["styles"]}
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a styles file written by font2img.py ({err}); move it away") from None


def build_corpus(src: Font | FontSet, entries: list[FontEntry], charset: list[str], settings: RenderSettings,
                 sample_dir: Path, first_label: int = 0, sample_count: int | None = None,
                 filter_recurring: bool = False, shuffle: bool = False, seed: int = 0,
                 overwrite: bool = False) -> dict[int, PairSummary]:
    """One label per font, from `first_label` up, all against `src`; styles.json records them all."""
    sample_dir = Path(sample_dir)
    # every font is opened before any is drawn: a bad one stops the run before anything is written
    fonts = [Font(e.path, settings.char_size, e.index, "--dst_fonts") for e in entries]
    labels = range(first_label, first_label + len(fonts))
    if not overwrite:
        taken = sorted(set(labels) & {int(p.name.split("_")[0]) for p in sample_dir.glob("*_*.jpg")
                                      if p.name.split("_")[0].isdigit()}) if sample_dir.is_dir() else []
        if taken:
            raise UserError(f"--sample_dir {sample_dir} already holds images of labels {taken[:5]}; choose another "
                            f"--sample_dir or --label, or pass --overwrite to replace them")
    styles = read_styles(sample_dir)
    summaries = {}
    for label, entry, font in zip(labels, entries, fonts):
        summary = font2font(src, font, charset, settings, sample_dir, label=label, sample_count=sample_count,
                            filter_recurring=filter_recurring, shuffle=shuffle, seed=seed, overwrite=True)
        summaries[label] = summary
        covered = sum(font.has_char(c) for c in charset)
        styles[label] = {"label": label, "family": font.family, "name": font.name, "file": str(entry.path),
                         "face": entry.index,
                         "coverage": round(covered / len(charset), 4), "pairs": summary.written,
                         "skipped": dict(summary.skipped.most_common())}
        atomic_write_text(sample_dir / STYLES_FILE, json.dumps(
            {"source": str(src.path), "styles": [styles[k] for k in sorted(styles)]}, ensure_ascii=False, indent=1))
    return summaries
