"""Checkpoint + style + source font + charset -> glyph rasters -> outlines -> font, verified."""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from data.charsets import load_charset
from data.render import Font, RenderSettings
from data.sources import sources_from_text
from model.inference import generate
from utils.errors import UserError
from utils.io import atomic_write_bytes

from .build import FontNames, SourceFont, build_font, plan_glyphs, to_woff2, vertical_extent
from .ufo import build_ufo, write_ufo
from .trace import trace_job
from .verify import Verification, verify_font

FORMATS = {".ttf": "TrueType", ".otf": "OpenType with CFF outlines", ".woff2": "WOFF2 for the web",
           ".ufo": "UFO folder for font editors"}

# What --copy_glyphs_from takes from the source font unchanged: Latin, Latin-1,
# general punctuation, CJK symbols and punctuation, full-width forms.
COPY_RANGES = ((0x20, 0x7E), (0xA0, 0xFF), (0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFFEF))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W) uint8 grey."""
    return ((images.mean(1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def data_charset(data_dir: Path) -> list[str]:
    """Every character of the training data (train and held-out), from package.py's split.json."""
    path = data_dir / "split.json"
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--charset data reads {path}, which does not exist; give --data_dir or another "
                        f"--charset") from None
    chars = split.get("train_chars", "") + split.get("val_chars", "")
    if not chars:
        raise UserError(f"{path} lists no characters (made by an older package.py, or from images without "
                        f"font2img's manifest); re-run package.py or give another --charset")
    return sorted(set(chars), key=ord)


def choose_chars(spec: str, data_dir: Path | None, source: SourceFont, limit: int | None) -> tuple[list[str], list[str]]:
    """(characters to export, characters the source font lacks)."""
    chars = data_charset(data_dir) if spec == "data" else load_charset(spec)
    chars = [c for c in dict.fromkeys(chars) if not c.isspace()]
    lacking = [c for c in chars if not source.has(c)]
    chars = [c for c in chars if source.has(c)]
    return (chars[:limit] if limit else chars), lacking


def real_glyphs_from_pairs(folder: Path, label: int) -> dict[str, np.ndarray]:
    """Target halves of font2img's pair images of `label` (its manifest names the characters)."""
    from data.packaging import read_manifest
    names = read_manifest(folder)
    if not names:
        raise UserError(f"--prefer_real {folder}: no manifest.jsonl naming the characters (made by font2img.py)")
    out = {}
    for file, ch in names.items():
        if int(file.split("_", 1)[0]) != label or not (folder / file).exists():
            continue
        with Image.open(folder / file) as pair:
            gray = pair.convert("L")
            out[ch] = np.asarray(gray.crop((0, 0, gray.height, gray.height)))
    return out


def real_glyphs_from_obj(obj: Path, label: int, chars: list[str], sources: dict[str, np.ndarray]
                         ) -> dict[str, np.ndarray]:
    """Targets of an .obj's records of `label`, matched to characters by their source half.

    An .obj does not name its characters; a record's source half is the character
    rendered from the source font (JPEG-compressed), so it is matched to the freshly
    rendered source glyph it is closest to (by 16x16 signatures, then at full size).
    """
    from data.loader import PairBank
    bank = PairBank.from_obj(obj, labels={label})
    record_src = bank.pairs[:, 1].float()
    size = record_src.shape[-1]
    model_size = next(iter(sources.values())).shape[0]
    if size != model_size:
        raise UserError(f"--prefer_real {obj}: its glyphs are {size} px and the model's {model_size} px; use the "
                        f".obj the model was trained on")
    rendered = torch.from_numpy(np.stack([sources[c] for c in chars])).float()
    pool = torch.nn.functional.adaptive_avg_pool2d
    sig_records, sig_chars = pool(record_src[:, None], 16).flatten(1), pool(rendered[:, None], 16).flatten(1)
    nearest = torch.cdist(sig_chars, sig_records, p=1).argmin(1)
    out = {}
    for i, ch in enumerate(chars):
        j = int(nearest[i])
        if (record_src[j] - rendered[i]).abs().mean() < 4.0:   # JPEG noise, not another glyph
            out[ch] = bank.pairs[j, 0].numpy()
    return out


@dataclass
class ExportResult:
    path: Path
    generated: list[str]
    real: list[str]
    copied: list[str]
    lacking: list[str]
    empty: list[str]
    verification: Verification
    sfnt: bytes                   # the font as OpenType, whatever the output format: for the specimen
    seconds: dict[str, float] = field(default_factory=dict)


def trace_all(rasters: dict[str, np.ndarray], boxes: dict, truetype: bool, workers: int) -> dict[str, list]:
    jobs = [(ch, rasters[ch], boxes[ch], truetype) for ch in rasters]
    progress = dict(total=len(jobs), desc="trace", unit="glyph")
    if workers <= 1 or len(jobs) < 32:
        return dict(tqdm(map(trace_job, jobs), **progress))
    # forkserver: the parent may hold CUDA state and several torch threads
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        return dict(tqdm(pool.imap_unordered(trace_job, jobs, chunksize=8), **progress))


def export_font(netG, step: int, label: int, source_path: Path, chars_spec: str, out: Path, names: FontNames,
                device, image_size: int, char_size: int | None = None, batch_size: int = 64, amp: str = "off",
                workers: int | None = None, data_dir: Path | None = None, prefer_real: Path | None = None,
                copy_glyphs_from: Path | None = None, limit: int | None = None, src_font_index: int = 0,
                width_scale: float = 1.0) -> ExportResult:
    """The whole export; every stage is timed (generation and tracing apart, as bench.py reports them).

    `width_scale` is the style's width relative to the source font (see export.proportions):
    the source's advances and glyph boxes are scaled horizontally by it."""
    fmt = check_format(out)
    truetype = fmt != ".otf"
    char_size = char_size or image_size
    workers = workers or os.cpu_count() or 1
    source = SourceFont(source_path, index=src_font_index)
    chars, lacking = choose_chars(chars_spec, data_dir, source, limit)
    if not chars:
        raise UserError(f"--src_font {source_path} has none of the --charset {chars_spec} characters")
    seconds = {}
    start = time.perf_counter()
    settings = RenderSettings(char_size, image_size)
    rendered = sources_from_text("".join(chars), Font(source_path, char_size, src_font_index, flag="--src_font"), settings)
    drawn = [name.split("_", 1)[1] for name in rendered.names]
    src_u8 = dict(zip(drawn, to_uint8(rendered.images)))
    empty = rendered.skipped                    # in the cmap but without ink (e.g. a blank glyph)
    real: dict[str, np.ndarray] = {}
    if prefer_real is not None:
        if Path(prefer_real).is_dir():
            real = {c: r for c, r in real_glyphs_from_pairs(Path(prefer_real), label).items() if c in src_u8}
        elif Path(prefer_real).is_file():
            real = real_glyphs_from_obj(Path(prefer_real), label, drawn, src_u8)
        else:
            raise UserError(f"--prefer_real {prefer_real}: no such folder or .obj file")
    to_generate = [c for c in drawn if c not in real]
    seconds["render_sources"] = time.perf_counter() - start
    start = time.perf_counter()
    rasters = dict(real)
    if to_generate:
        index = torch.tensor([drawn.index(c) for c in to_generate]) if real else torch.arange(len(drawn))
        fake = generate(netG, rendered.images[index], torch.full((len(index),), label), batch_size, device, amp,
                        desc="generate")
        rasters.update(zip(to_generate, to_uint8(fake)))
    seconds["generate"] = time.perf_counter() - start
    start = time.perf_counter()
    boxes = {c: source.glyph_box(c, char_size, width_scale) for c in rasters}
    outlines = trace_all(rasters, boxes, truetype, workers)
    seconds["trace"] = time.perf_counter() - start
    advances = {c: round(source.advance(c) * width_scale) for c in outlines}
    copied = []
    if copy_glyphs_from is not None:
        donor = SourceFont(copy_glyphs_from, "--copy_glyphs_from")
        for code in sorted(donor.cmap):
            ch = chr(code)
            if ch not in outlines and any(lo <= code <= hi for lo, hi in COPY_RANGES):
                outlines[ch] = donor.outline(ch, source.metrics.units_per_em)
                advances[ch] = round(donor.advance(ch) * source.metrics.units_per_em / donor.metrics.units_per_em)
                copied.append(ch)
    start = time.perf_counter()
    glyphs = plan_glyphs(outlines, source, advances, width_scale)
    sfnt = build_font(glyphs, source.metrics, names, truetype)
    if fmt == ".ufo":
        write_ufo(out, build_ufo(glyphs, source.metrics, names, vertical_extent(sfnt)))
    else:
        atomic_write_bytes(out, to_woff2(sfnt) if fmt == ".woff2" else sfnt)
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    verification = verify_font(out, sfnt, rasters, set(glyphs))
    seconds["verify"] = time.perf_counter() - start
    return ExportResult(out, to_generate, sorted(real, key=ord), copied, lacking, empty, verification, sfnt, seconds)


def check_format(out: Path) -> str:
    """The output format from --out's suffix, or a one-line error listing the ones there are."""
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        kinds = ", ".join(f"{suffix} ({kind})" for suffix, kind in FORMATS.items())
        raise UserError(f"--out {out}: name the font with one of {kinds}")
    return fmt
