"""Pack paired images into train.obj / val.obj (the work behind package.py).

Splitting `by="char"` puts every style of a character on the same side, so val.obj
holds characters the model never saw in any style: seen fonts, unseen characters.
That needs to know which character each image shows, which font2img.py records in
`manifest.jsonl` beside the images.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from utils.errors import UserError
from utils.io import atomic_write_text

from .obj import check_record, write_obj

PAIR_NAME = re.compile(r"^(\d+)_(\d+)\.(jpe?g|png)$", re.IGNORECASE)
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


def collect_pairs(dirs: list[str | Path]) -> list[PairFile]:
    """Every `{label}_{count}.jpg` in the given folders, in a stable order."""
    pairs = []
    for folder in map(Path, dirs):
        if not folder.is_dir():
            raise UserError(f"--dir {folder}: no such directory")
        chars = read_manifest(folder)
        found = [(p, PAIR_NAME.match(p.name)) for p in sorted(folder.iterdir())]
        pairs += [PairFile(p, int(m.group(1)), chars.get(p.name)) for p, m in found if m]
    if not pairs:
        raise UserError(f"no paired images named {{label}}_{{count}}.jpg in {', '.join(map(str, dirs))}; "
                        f"run font2img.py first")
    return pairs


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


def pack(pairs: list[PairFile], obj_path: Path, desc: str) -> Counter:
    """Write the pairs' file bytes as records; returns the count per label."""
    def records():
        for index, pair in enumerate(tqdm(pairs, desc=desc, unit="img")):
            data = pair.path.read_bytes()
            check_record((pair.label, data), pair.path, index)  # refuse to pack a bad image
            yield pair.label, data
    write_obj(obj_path, records())
    return Counter(p.label for p in pairs)


def package(dirs: list[str | Path], save_dir: str | Path, split_ratio: float = 0.1, seed: int = 0,
            by: str = "pair") -> dict:
    """Collect, split and pack; returns a summary (also written as split.json)."""
    pairs = collect_pairs(dirs)
    train, val = split_pairs(pairs, split_ratio, seed, by)
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    summary = {"split_by": by, "split_ratio": split_ratio, "seed": seed,
               "train": dict(sorted(pack(train, save_dir / "train.obj", "train.obj").items()))}
    if val:
        summary["val"] = dict(sorted(pack(val, save_dir / "val.obj", "val.obj").items()))
        if by == "char":
            summary["val_chars"] = "".join(sorted({p.char for p in val}))
    summary_path = save_dir / "split.json"
    atomic_write_text(summary_path, json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    return summary
