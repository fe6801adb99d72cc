"""Checkpoint + style + source font + charset -> glyph rasters -> outlines -> font, verified."""
from __future__ import annotations

import json
import multiprocessing
import os
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
from utils.timing import StageTimer

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


@dataclass(frozen=True)
class ExportOptions:
    """What export_font.py's flags ask for (see its --help)."""
    label: int                          # the style
    source_font: Path                   # the training source font: metrics, advances, glyph boxes
    out: Path                           # .ttf, .otf, .woff2 or .ufo
    names: FontNames
    charset: str = "data"               # CN, CN_T, JP, KR, a text file, or "data" (the training characters)
    data_dir: Path | None = None        # where split.json is, for charset "data"
    source_index: int = 0               # face inside a .ttc
    char_size: int | None = None        # font2img's --char_size (default: the glyph size)
    width_scale: float = 1.0            # the style's width relative to the source (export.proportions)
    prefer_real: Path | None = None     # real drawings (pair folder or .obj) used where they exist
    copy_glyphs_from: Path | None = None  # Latin and punctuation taken unchanged from this font
    limit: int | None = None            # only the first N characters
    batch_size: int = 64
    amp: str = "off"
    workers: int | None = None          # tracing processes (default: one per CPU core)


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
    timer: StageTimer = field(default_factory=StageTimer)


def trace_all(rasters: dict[str, np.ndarray], boxes: dict, truetype: bool, workers: int) -> dict[str, list]:
    jobs = [(ch, rasters[ch], boxes[ch], truetype) for ch in rasters]
    progress = dict(total=len(jobs), desc="trace", unit="glyph")
    if workers <= 1 or len(jobs) < 32:
        return dict(tqdm(map(trace_job, jobs), **progress))
    # forkserver: the parent may hold CUDA state and several torch threads
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        return dict(tqdm(pool.imap_unordered(trace_job, jobs, chunksize=8), **progress))


def export_font(netG, step: int, options: ExportOptions, device, image_size: int) -> ExportResult:
    """The whole export; every stage is timed (generation and tracing apart, as bench.py reports them)."""
    fmt = check_format(options.out)
    truetype = fmt != ".otf"
    char_size = options.char_size or image_size
    source = SourceFont(options.source_font, index=options.source_index)
    chars, lacking = choose_chars(options.charset, options.data_dir, source, options.limit)
    if not chars:
        raise UserError(f"--src_font {options.source_font} has none of the --charset {options.charset} characters")
    timer = StageTimer()
    with timer.stage("render_sources"):
        font = Font(options.source_font, char_size, options.source_index, flag="--src_font")
        rendered = sources_from_text("".join(chars), font, RenderSettings(char_size, image_size))
        drawn = [name.split("_", 1)[1] for name in rendered.names]
        src_u8 = dict(zip(drawn, to_uint8(rendered.images)))
        real = real_glyphs(options, drawn, src_u8)
    generate_at = [i for i, c in enumerate(drawn) if c not in real]   # positions in `rendered`
    to_generate = [drawn[i] for i in generate_at]
    rasters = dict(real)
    with timer.stage("generate"):
        if to_generate:
            fake = generate(netG, rendered.images[generate_at], torch.full((len(generate_at),), options.label),
                            options.batch_size, device, options.amp, desc="generate")
            rasters.update(zip(to_generate, to_uint8(fake)))
    with timer.stage("trace"):
        boxes = {c: source.glyph_box(c, char_size, options.width_scale) for c in rasters}
        outlines = trace_all(rasters, boxes, truetype, options.workers or os.cpu_count() or 1)
    advances = {c: round(source.advance(c) * options.width_scale) for c in outlines}
    copied = copy_glyphs(options.copy_glyphs_from, source, outlines, advances)
    with timer.stage("build"):
        glyphs = plan_glyphs(outlines, source, advances, options.width_scale)
        sfnt = build_font(glyphs, source.metrics, options.names, truetype)
        if fmt == ".ufo":
            write_ufo(options.out, build_ufo(glyphs, source.metrics, options.names, vertical_extent(sfnt)))
        else:
            atomic_write_bytes(options.out, to_woff2(sfnt) if fmt == ".woff2" else sfnt)
    with timer.stage("verify"):
        verification = verify_font(options.out, sfnt, rasters, set(glyphs))
    return ExportResult(options.out, to_generate, sorted(real, key=ord), copied, lacking, rendered.skipped,
                        verification, sfnt, timer)


def real_glyphs(options: ExportOptions, drawn: list[str], src_u8: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """--prefer_real: the style's real drawings of the characters, from font2img's pair folder or an .obj."""
    where = options.prefer_real
    if where is None:
        return {}
    if where.is_dir():
        return {c: r for c, r in real_glyphs_from_pairs(where, options.label).items() if c in src_u8}
    if where.is_file():
        return real_glyphs_from_obj(where, options.label, drawn, src_u8)
    raise UserError(f"--prefer_real {where}: no such folder or .obj file")


def copy_glyphs(donor_path: Path | None, source: SourceFont, outlines: dict, advances: dict) -> list[str]:
    """--copy_glyphs_from: add the donor's Latin and punctuation the export lacks (in place); returns them."""
    if donor_path is None:
        return []
    donor = SourceFont(donor_path, "--copy_glyphs_from")
    scale = source.metrics.units_per_em / donor.metrics.units_per_em
    copied = []
    for code in sorted(donor.cmap):
        ch = chr(code)
        if ch not in outlines and any(lo <= code <= hi for lo, hi in COPY_RANGES):
            outlines[ch] = donor.outline(ch, source.metrics.units_per_em)
            advances[ch] = round(donor.advance(ch) * scale)
            copied.append(ch)
    return copied


def check_format(out: Path) -> str:
    """The output format from --out's suffix, or a one-line error listing the ones there are."""
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        kinds = ", ".join(f"{suffix} ({kind})" for suffix, kind in FORMATS.items())
        raise UserError(f"--out {out}: name the font with one of {kinds}")
    return fmt
