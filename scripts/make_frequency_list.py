"""Regenerate data/charsets_data/hanzi_by_frequency.txt, the GB2312 hanzi in order of use.

    pip install wordfreq==3.1.1
    python scripts/make_frequency_list.py

The order comes from wordfreq 3.1.1's large Chinese word list (Robyn Speer et al.,
https://github.com/rspeer/wordfreq; its data is CC BY-SA 4.0, built from SUBTLEX-CH film
subtitles, Wikipedia, Google Books, OpenSubtitles, Reddit and web text): each character's
frequency is the sum of the frequencies of the words it occurs in, counted once per occurrence.
Only GB2312 hanzi (data.charsets' CN) are kept, so every built-in FREQn set can be drawn by
any GB2312 font. Characters wordfreq never saw keep GB2312's order at the end.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from data.charsets import FREQUENCY_FILE, builtin_charset


def main() -> None:
    from wordfreq import get_frequency_dict

    gb2312 = builtin_charset("CN")
    allowed = set(gb2312)
    weight: Counter = Counter()
    for word, frequency in get_frequency_dict("zh", wordlist="large").items():
        for ch in word:
            if ch in allowed:
                weight[ch] += frequency
    ranked = sorted(gb2312, key=lambda ch: (-weight[ch], gb2312.index(ch)))
    # 50 characters a line, so a diff of a regenerated list is readable
    lines = ["".join(ranked[i:i + 50]) for i in range(0, len(ranked), 50)]
    Path(FREQUENCY_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {FREQUENCY_FILE}: {len(ranked)} hanzi, {sum(1 for c in ranked if weight[c])} seen by wordfreq")


if __name__ == "__main__":
    main()
