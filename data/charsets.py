"""Character sets, derived from Python's codecs instead of large data files.

    CN    GB2312 hanzi (6,763; the first 3,755 are level 1, the most used)
    CN_T  Big5 level-1 hanzi (5,401)
    JP    JIS X 0208 kanji (6,355)
    KR    KS X 1001 hangul syllables (2,350)
    FREQn the n most used GB2312 hanzi (FREQ300, FREQ1000, ...: any n from 1 to 6,763),
          in the order of data/charsets_data/hanzi_by_frequency.txt
          (scripts/make_frequency_list.py says where the order comes from)
    COVERn n of the 2,000 most used hanzi chosen to cover the components and structures of all
          GB2312 (COVER100/300/500/1000: the few-shot sets; any n up to 2,000), in the order of
          data/charsets_data/hanzi_by_coverage.txt (scripts/make_coverage_list.py)

Anything else given as a charset is read as a text file: every character of every
line, de-duplicated in order of first appearance, whitespace ignored.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from utils.errors import UserError

BUILTIN = ("CN", "CN_T", "JP", "KR")
DATA = Path(__file__).resolve().parent / "charsets_data"
FREQUENCY_FILE = DATA / "hanzi_by_frequency.txt"
COVERAGE_FILE = DATA / "hanzi_by_coverage.txt"
COMPONENTS_FILE = DATA / "gb2312_components.txt"
RANKED_NAME = re.compile(r"^(FREQ|COVER)(\d+)$")
FEW_SHOT_SIZES = (100, 300, 500, 1000)
NAMES_HELP = ("CN, CN_T, JP, KR, FREQn (the n most used hanzi, e.g. FREQ300), COVERn (n hanzi covering "
              "GB2312's components, e.g. COVER300) or a UTF-8 text file")


def _decode_rows(codec: str, leads: range, trails: list[int]) -> list[str]:
    chars = []
    for lead in leads:
        for trail in trails:
            try:
                ch = bytes([lead, trail]).decode(codec)
            except UnicodeDecodeError:
                continue
            if len(ch) == 1 and unicodedata.category(ch) == "Lo":
                chars.append(ch)
    return chars


def _dedupe(chars) -> list[str]:
    return list(dict.fromkeys(chars))


@lru_cache(maxsize=None)
def builtin_charset(name: str) -> tuple[str, ...]:
    euc_trails = list(range(0xA1, 0xFF))
    if name == "CN":  # GB2312 rows 16-87 hold the hanzi
        return tuple(_dedupe(_decode_rows("gb2312", range(0xB0, 0xF8), euc_trails)))
    if name == "CN_T":  # Big5 level 1 runs from A440 to C67E
        trails = list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF))
        chars = []
        for lead in range(0xA4, 0xC7):
            for trail in trails:
                if (lead << 8 | trail) > 0xC67E:
                    break
                try:
                    ch = bytes([lead, trail]).decode("big5")
                except UnicodeDecodeError:
                    continue
                if unicodedata.category(ch) == "Lo":
                    chars.append(ch)
        return tuple(_dedupe(chars))
    if name == "JP":  # JIS X 0208 rows 16-84 hold the kanji
        return tuple(_dedupe(_decode_rows("euc_jp", range(0xB0, 0xF5), euc_trails)))
    if name == "KR":  # KS X 1001 rows 16-40 hold the hangul syllables
        return tuple(c for c in _dedupe(_decode_rows("euc_kr", range(0xB0, 0xC9), euc_trails))
                     if "\uac00" <= c <= "\ud7a3")
    raise KeyError(name)


def gb2312_level1() -> tuple[str, ...]:
    """The 3,755 most used simplified hanzi (GB2312 level 1, rows 16-55)."""
    return builtin_charset("CN")[:3755]


@lru_cache(maxsize=None)
def hanzi_by_frequency() -> tuple[str, ...]:
    """Every GB2312 hanzi, the most used first."""
    return tuple(ch for ch in FREQUENCY_FILE.read_text(encoding="utf-8") if not ch.isspace())


@lru_cache(maxsize=None)
def hanzi_by_coverage() -> tuple[str, ...]:
    """The 2,000 most used hanzi, each next the one adding most components not yet covered."""
    return tuple(ch for ch in COVERAGE_FILE.read_text(encoding="utf-8") if not ch.isspace())


@lru_cache(maxsize=None)
def components() -> dict[str, frozenset[str]]:
    """GB2312 hanzi -> the parts of its decomposition and its structure (`@op`)."""
    table = {}
    for line in COMPONENTS_FILE.read_text(encoding="utf-8").splitlines():
        ch, _, parts = line.partition("\t")
        table[ch] = frozenset(parts.split())
    return table


def components_covered(chars) -> set[str]:
    table = components()
    return set().union(*(table.get(ch, frozenset()) for ch in chars))


def most_frequent(count: int) -> list[str]:
    ranked = hanzi_by_frequency()
    if not 1 <= count <= len(ranked):
        raise UserError(f"--charset FREQ{count}: n must be 1 to {len(ranked)} (the GB2312 hanzi)")
    return list(ranked[:count])


def most_covering(count: int) -> list[str]:
    ranked = hanzi_by_coverage()
    if not 1 <= count <= len(ranked):
        raise UserError(f"--charset COVER{count}: n must be 1 to {len(ranked)} (the most used hanzi)")
    return list(ranked[:count])


def read_charset_file(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--charset {path}: no such file, and not one of {', '.join(BUILTIN)}, FREQn, COVERn")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"--charset {path}: not UTF-8 text") from None
    chars = _dedupe(ch for ch in text if not ch.isspace())
    if not chars:
        raise UserError(f"--charset {path}: the file has no characters")
    return chars


def load_charset(spec: str) -> list[str]:
    """A built-in name (CN, CN_T, JP, KR, FREQn, COVERn) or a text file path."""
    if spec in BUILTIN:
        return list(builtin_charset(spec))
    ranked = RANKED_NAME.match(spec)
    if ranked:
        count = int(ranked.group(2))
        return most_frequent(count) if ranked.group(1) == "FREQ" else most_covering(count)
    return read_charset_file(spec)
