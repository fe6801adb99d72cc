"""Style names: zi2zi's --type_file (one name per line, line number = label), a JSON label map, or
font2img.py's styles.json (a corpus of fonts, one label each)."""
from __future__ import annotations

import json
from pathlib import Path

from utils.errors import UserError


def read_style_names(path: str | Path | None, flag: str) -> dict[int, str]:
    """label -> style name, from a type file or from font2img's --label_map JSON ({name: label});
    no names when `path` is None (the flag was not given).

    Both files say the same thing, which style each label is; either serves wherever a
    style is named (infer.py's file names and grids, package.py's relabelling).
    """
    if path is None:
        return {}
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{flag} {path}: no such file") from None
    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{flag} {path}: not valid JSON ({err})") from None
        if isinstance(mapping, dict) and isinstance(mapping.get("styles"), list):   # font2img's styles.json
            try:
                return {int(s["label"]): str(s.get("name") or s["family"]) for s in mapping["styles"]}
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{flag} {path}: a styles.json whose entries lack label or family") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
            raise UserError(f"{flag} {path}: expected a JSON object of name -> integer label")
        return {label: name for name, label in mapping.items()}
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or not all(names):
        raise UserError(f"{flag} {path}: expected one style name per line (line number = label), no blank lines")
    return dict(enumerate(names))
