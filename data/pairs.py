"""Paired training images from fonts or glyph image folders (the work behind font2img.py).

Each pair is written as `{label}_{count:04d}.jpg`: target glyph left, source right.
A character is drawn only if both sides have it (the font's best cmap maps it, the
glyph has ink); every skip is counted by reason and reported, never fatal.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from utils.errors import UserError
from utils.io import save_image

from .packaging import IMAGE_SUFFIXES, update_manifest
from .render import Font, RenderSettings, image_hash, load_glyph_image, paired_image, render_char

# Default glyph image names: the character itself as the file stem, e.g. 永.png
DEFAULT_NAME_PATTERN = r"^(?P<char>.)\.\w+$"


@dataclass
class PairSummary:
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=lambda: defaultdict(list))

    def skip(self, reason: str, ch: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples[reason]) < 10:
            self.examples[reason].append(ch)

    def report(self) -> str:
        lines = [f"wrote {self.written} pairs; skipped {sum(self.skipped.values())}"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  {count:6d} {reason} (e.g. {''.join(self.examples[reason])})")
        return "\n".join(lines)


def recurring_hashes(font: Font, charset: list[str], settings: RenderSettings, sample: int = 2000,
                     min_repeats: int = 3, seed: int = 0) -> set[str]:
    """Hashes of glyph images that recur across many characters.

    A font that maps characters to one placeholder glyph (a box, a blank-ish mark)
    passes the cmap test; zi2zi catches it by rendering a sample and finding images
    that repeat. The hash is hashlib's, so the result is the same every run.
    """
    chars = [c for c in charset if font.has_char(c)]
    chars = random.Random(seed).sample(chars, min(sample, len(chars)))
    counts = Counter()
    for ch in tqdm(chars, desc=f"filter {font.path.name}", unit="char", leave=False):
        img = render_char(font, ch, settings)
        if img is not None:
            counts[image_hash(img)] += 1
    return {h for h, n in counts.items() if n >= min_repeats}


def _check_output_dir(sample_dir: Path, label: int | None, overwrite: bool) -> None:
    sample_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{label}_*.jpg" if label is not None else "*_*.jpg"
    existing = sorted(sample_dir.glob(pattern))
    if existing and not overwrite:
        raise UserError(f"--sample_dir {sample_dir} already holds {len(existing)} images "
                        f"({existing[0].name}, ...); choose another --sample_dir or --label, "
                        f"or pass --overwrite to replace them")
    for path in existing:
        path.unlink()


class _PairWriter:
    """Writes `{label}_{count:04d}.jpg` files and records their characters in the manifest."""

    def __init__(self, sample_dir: Path, summary: PairSummary, replaced_labels: set[int] | None):
        self.sample_dir, self.summary = sample_dir, summary
        self.replaced_labels = replaced_labels  # None: every earlier image was replaced
        self.counts: Counter = Counter()
        self.entries: list[dict] = []

    def write(self, label: int, ch: str, target: Image.Image, source: Image.Image) -> None:
        name = f"{label}_{self.counts[label]:04d}.jpg"
        save_image(paired_image(target, source), self.sample_dir / name, quality=95)
        self.entries.append({"file": name, "label": label, "char": ch})
        self.counts[label] += 1
        self.summary.written += 1

    def close(self) -> None:
        update_manifest(self.sample_dir, self.entries, self.replaced_labels)


def font2font(src_font: Font, dst_font: Font, charset: list[str], settings: RenderSettings,
              sample_dir: Path, label: int = 0, sample_count: int | None = None,
              filter_recurring: bool = False, shuffle: bool = False, seed: int = 0,
              overwrite: bool = False) -> PairSummary:
    """Render each character in both fonts and write the pairs (target = dst_font)."""
    sample_dir = Path(sample_dir)
    _check_output_dir(sample_dir, label, overwrite)
    chars = list(charset)
    if shuffle:
        random.Random(seed).shuffle(chars)
    bad_src = recurring_hashes(src_font, chars, settings, seed=seed) if filter_recurring else set()
    bad_dst = recurring_hashes(dst_font, chars, settings, seed=seed) if filter_recurring else set()
    summary = PairSummary()
    writer = _PairWriter(sample_dir, summary, replaced_labels={label})
    progress = tqdm(chars, desc=f"label {label}", unit="char")
    for ch in progress:
        if sample_count is not None and summary.written >= sample_count:
            break
        if not src_font.has_char(ch):
            summary.skip("not in source font", ch)
            continue
        if not dst_font.has_char(ch):
            summary.skip("not in target font", ch)
            continue
        source = render_char(src_font, ch, settings)
        target = render_char(dst_font, ch, settings)
        if source is None or target is None:
            summary.skip("glyph has no ink", ch)
            continue
        if image_hash(source) in bad_src or image_hash(target) in bad_dst:
            summary.skip("recurring placeholder glyph (--filter)", ch)
            continue
        writer.write(label, ch, target, source)
    progress.close()
    writer.close()
    return summary


def read_label_map(path: str | Path | None) -> dict[str, int] | None:
    if path is None:
        return None
    path = Path(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--label_map {path}: no such file") from None
    except json.JSONDecodeError as err:
        raise UserError(f"--label_map {path}: not valid JSON ({err})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
        raise UserError(f"--label_map {path}: expected a JSON object of name -> integer label")
    return mapping


def scan_glyph_images(folder: str | Path, name_pattern: str = DEFAULT_NAME_PATTERN,
                      default_label: int = 0, label_map: dict[str, int] | None = None,
                      flag: str = "--dst_imgs") -> dict[tuple[int, str], Path]:
    """Map (label, character) -> image file for every matching image in `folder`.

    `name_pattern` is a regex matched against the file name with named groups:
    `char` (the character) or `codepoint` (hex, e.g. 4E00), and optionally `label`
    (an integer, or a name looked up in `label_map`). Without a `label` group every
    image gets `default_label`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{flag} {folder}: no such directory")
    try:
        regex = re.compile(name_pattern)
    except re.error as err:
        raise UserError(f"--name_pattern {name_pattern!r} is not a valid regex ({err})") from None
    if not ({"char", "codepoint"} & set(regex.groupindex)):
        raise UserError("--name_pattern needs a named group (?P<char>...) or (?P<codepoint>...)")
    found: dict[tuple[int, str], Path] = {}
    unmatched = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = regex.search(path.name)
        if m is None:
            unmatched.append(path.name)
            continue
        groups = m.groupdict()
        if groups.get("char"):
            ch = groups["char"]
        else:
            ch = chr(int(re.sub(r"^(U\+|uni|u)", "", groups["codepoint"], flags=re.I), 16))
        label = default_label
        if groups.get("label") is not None:
            raw = groups["label"]
            if label_map is not None:
                if raw not in label_map:
                    raise UserError(f"{path}: label {raw!r} is not in --label_map")
                label = label_map[raw]
            elif raw.isdigit():
                label = int(raw)
            else:
                raise UserError(f"{path}: label {raw!r} is not a number; pass --label_map "
                                f"to map names to labels")
        found[(label, ch)] = path
    if unmatched:
        print(f"note: {len(unmatched)} image(s) in {folder} do not match --name_pattern "
              f"(e.g. {unmatched[0]}); they are not used")
    if not found:
        raise UserError(f"{flag} {folder}: no image names match --name_pattern {name_pattern!r}")
    return found


def images2pairs(targets: dict[tuple[int, str], Path], settings: RenderSettings, sample_dir: Path,
                 src_font: Font | None = None, sources: dict[tuple[int, str], Path] | None = None,
                 sample_count: int | None = None, shuffle: bool = False, seed: int = 0,
                 overwrite: bool = False) -> PairSummary:
    """font2imgs (sources rendered from `src_font`) and imgs2imgs (sources from images).

    Source images are looked up by (label, char), then by char alone, so one source
    folder serves every target style.
    """
    sample_dir = Path(sample_dir)
    _check_output_dir(sample_dir, None, overwrite)
    by_char = {ch: p for (_, ch), p in (sources or {}).items()}
    keys = sorted(targets)
    if shuffle:
        random.Random(seed).shuffle(keys)
    summary = PairSummary()
    writer = _PairWriter(sample_dir, summary, replaced_labels=None)
    for label, ch in tqdm(keys, desc="pairs", unit="img"):
        if sample_count is not None and summary.written >= sample_count:
            break
        if src_font is not None:
            if not src_font.has_char(ch):
                summary.skip("not in source font", ch)
                continue
            source = render_char(src_font, ch, settings)
        else:
            path = (sources or {}).get((label, ch)) or by_char.get(ch)
            if path is None:
                summary.skip("no source image", ch)
                continue
            source = load_glyph_image(path, settings)
        target = load_glyph_image(targets[(label, ch)], settings)
        if source is None or target is None:
            summary.skip("glyph has no ink", ch)
            continue
        writer.write(label, ch, target, source)
    writer.close()
    return summary
