"""Pack paired images into train.obj / val.obj (the work behind package.py).

Splitting `by="char"` puts every style of a character on the same side, so val.obj
holds characters the model never saw in any style: seen fonts, unseen characters.
That needs to know which character each image shows, which font2img.py records in
`manifest.jsonl` beside the images.
"""
from __future__ import annotations

import io
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from utils.errors import UserError
from utils.io import atomic_write_text, check_output_dir, check_output_file

from .obj import check_record, write_obj

# zi2zi's rule: a .jpg/.png/.tif whose name starts with the integer label and "_"
PAIR_NAME = re.compile(r"^(\d+)_.*\.(jpe?g|png|tiff?)$", re.IGNORECASE)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class PairFile:
    path: Path
    label: int
    char: str | None


def read_manifest(folder: Path) -> dict[str, str]:
    """file name -> character, from font2img.py's manifest (empty if there is none)."""
    path = folder / MANIFEST
    if not path.exists():
        return {}
    chars = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                entry = json.loads(line)
                chars[entry["file"]] = entry["char"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{path}: line {line_no} is not a manifest entry") from None
    return chars


def update_manifest(folder: Path, entries: list[dict], drop_labels: set[int] | None = None) -> None:
    """Append entries; first drop those of `drop_labels` (None: drop all), whose images were replaced."""
    path = folder / MANIFEST
    kept = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                if drop_labels is not None and entry.get("label") not in drop_labels:
                    kept.append(entry)
    lines = [json.dumps(e, ensure_ascii=False) for e in kept + entries]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def collect_pairs(dirs: list[str | Path], skipped: list[str] | None = None) -> list[PairFile]:
    """Every `{label}_*.{jpg,png,tif}` in the given folders, in a stable order.

    Images whose names do not follow that rule are listed in `skipped` (file: reason),
    so the caller can say what was left out.
    """
    pairs = []
    for folder in map(Path, dirs):
        if not folder.is_dir():
            raise UserError(f"--dir {folder}: no such directory")
        chars = read_manifest(folder)
        for path in sorted(folder.iterdir()):
            if PAIR_NAME.match(path.name):
                pairs.append(PairFile(path, int(path.name.split("_", 1)[0]), chars.get(path.name)))
            elif skipped is not None and path.suffix.lower() in IMAGE_SUFFIXES:
                reason = ("not .jpg/.png/.tif" if re.match(r"^\d+_", path.name)
                          else "the name does not start with {label}_")
                skipped.append(f"{path}: {reason}")
    if not pairs:
        raise UserError(f"no paired images named {{label}}_*.jpg (or .png, .tif) in {', '.join(map(str, dirs))}; "
                        f"run font2img.py first")
    return pairs


def relabel(pairs: list[PairFile], dst_json: str | Path, type_file: str | Path) -> list[PairFile]:
    """zi2zi's relabelling: keep the styles named in `type_file`, numbered by their line there.

    `dst_json` is a JSON list of {"font_name": ...} in label order (index = the label in
    the file names); a pair whose font is not in the type file is dropped.
    """
    from .styles import read_style_names
    try:
        fonts = json.loads(Path(dst_json).read_text(encoding="utf-8"))
        font_names = [entry["font_name"] for entry in fonts]
    except FileNotFoundError:
        raise UserError(f"--dst_json {dst_json}: no such file") from None
    except (json.JSONDecodeError, TypeError, KeyError):
        raise UserError(f"--dst_json {dst_json}: expected a JSON list of {{\"font_name\": ...}}") from None
    new_label = {name: label for label, name in read_style_names(type_file, "--type_file").items()}
    kept = []
    for pair in pairs:
        if pair.label >= len(font_names):
            raise UserError(f"{pair.path}: label {pair.label} has no entry in --dst_json {dst_json} "
                            f"({len(font_names)} fonts)")
        name = font_names[pair.label]
        if name in new_label:
            kept.append(PairFile(pair.path, new_label[name], pair.char))
    if not kept:
        raise UserError(f"no pair's font in --dst_json is named in --type_file {type_file}")
    return kept


def split_pairs(pairs: list[PairFile], split_ratio: float, seed: int = 0,
                by: str = "pair") -> tuple[list[PairFile], list[PairFile]]:
    """Seeded split into (train, val); `by` is "pair" or "char"."""
    if not 0 <= split_ratio < 1:
        raise UserError(f"--split_ratio must be in [0, 1); got {split_ratio}")
    rng = random.Random(seed)
    if by == "char":
        unknown = [p for p in pairs if p.char is None]
        if unknown:
            raise UserError(f"--split_by char needs the character of every image, but "
                            f"{unknown[0].path} is not in {unknown[0].path.parent / MANIFEST}; "
                            f"render with this project's font2img.py or use --split_by pair")
        chars = sorted({p.char for p in pairs})
        rng.shuffle(chars)
        val_chars = set(chars[:round(len(chars) * split_ratio)])
        if split_ratio > 0 and not val_chars:
            raise UserError(f"--split_ratio {split_ratio} of {len(chars)} characters leaves no "
                            f"validation character; raise it or add characters")
        return ([p for p in pairs if p.char not in val_chars], [p for p in pairs if p.char in val_chars])
    if by != "pair":
        raise UserError(f"--split_by must be pair or char; got {by!r}")
    order = list(range(len(pairs)))
    rng.shuffle(order)
    n_val = round(len(pairs) * split_ratio)
    if split_ratio > 0 and n_val == 0:
        raise UserError(f"--split_ratio {split_ratio} of {len(pairs)} images leaves no validation image")
    val_idx = set(order[:n_val])
    return ([p for i, p in enumerate(pairs) if i not in val_idx], [p for i, p in enumerate(pairs) if i in val_idx])


def check_one_size(pairs: list[PairFile]) -> None:
    """Every pair one size, or an error naming each size with its count and an example file.

    The model trains at one image size, and the loader stacks pairs into batches, so a
    mix (a folder rendered twice at two --canvas_size values) must stop here, before a
    .obj is written, not as a shape error in training.
    """
    sizes: dict[tuple[int, int], list] = {}
    for pair in tqdm(pairs, desc="sizes", unit="img", leave=False, disable=len(pairs) < 5000):
        try:
            with Image.open(pair.path) as img:   # reads the header only
                size = img.size
        except OSError as err:
            raise UserError(f"{pair.path}: the image does not decode ({err}); re-render or remove it") from None
        entry = sizes.setdefault(size, [0, pair.path])
        entry[0] += 1
    if len(sizes) > 1:
        ranked = sorted(sizes.items(), key=lambda item: -item[1][0])
        listing = "; ".join(f"{count} of {w}x{h} (e.g. {example})" for (w, h), (count, example) in ranked)
        raise UserError(f"the pairs are of {len(sizes)} sizes: {listing}. One .obj holds one size: render "
                        f"them all at one --canvas_size, or package each size into its own --save_dir")


def pack(pairs: list[PairFile], obj_path: Path, desc: str) -> Counter:
    """Write the pairs' file bytes as records; returns the count per label."""
    def records():
        for index, pair in enumerate(tqdm(pairs, desc=desc, unit="img")):
            data = pair.path.read_bytes()
            check_record((pair.label, data), pair.path, index)  # refuse to pack a bad image
            try:  # the header alone can look fine: decode the whole image (a truncated JPEG fails here)
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
            except OSError as err:
                raise UserError(f"{pair.path}: the image does not decode ({err}); re-render or remove it") from None
            yield pair.label, data
    write_obj(obj_path, records())
    return Counter(p.label for p in pairs)


def package(dirs: list[str | Path], save_dir: str | Path, split_ratio: float = 0.1, seed: int = 0,
            by: str = "pair", dst_json: str | None = None, type_file: str | None = None,
            save_obj_dir: str | None = None) -> dict:
    """Collect, split and pack; returns a summary (also written as split.json).

    zi2zi's options: `dst_json` with `type_file` relabel (see `relabel`); `save_obj_dir`
    with `split_ratio` 0 writes every pair to that one file instead of train.obj.
    With `split_ratio` 0 an empty val.obj is written, as zi2zi does.
    """
    if bool(dst_json) != bool(type_file):
        raise UserError("--dst_json and --type_file go together (the fonts of the labels, and the ones to keep)")
    if save_obj_dir and split_ratio != 0:
        raise UserError(f"--save_obj_dir writes every pair to one file, so it needs --split_ratio 0; "
                        f"got {split_ratio}")
    check_output_dir(save_dir, "--save_dir")
    if save_obj_dir:
        check_output_file(save_obj_dir, "--save_obj_dir")
    skipped: list[str] = []
    pairs = collect_pairs(dirs, skipped)
    if dst_json:
        pairs = relabel(pairs, dst_json, type_file)
    check_one_size(pairs)
    train, val = split_pairs(pairs, split_ratio, seed, by)
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    train_path = Path(save_obj_dir) if save_obj_dir else save_dir / "train.obj"
    summary = {"split_by": by, "split_ratio": split_ratio, "seed": seed, "skipped": skipped,
               "train_file": str(train_path),
               "train": dict(sorted(pack(train, train_path, train_path.name).items()))}
    if not save_obj_dir:
        summary["val"] = dict(sorted(pack(val, save_dir / "val.obj", "val.obj").items()))
    if val and by == "char":
        summary["val_chars"] = "".join(sorted({p.char for p in val}))
    train_chars = {p.char for p in train if p.char}
    if train_chars:   # what the model saw: export_font.py --charset data uses it
        summary["train_chars"] = "".join(sorted(train_chars))
    atomic_write_text(save_dir / "split.json", json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    return summary
