"""Regenerate the bundled font subsets from Debian's CJK font packages.

    apt-get install fonts-noto-cjk fonts-lxgw-wenkai fonts-smiley-sans
    python fonts/make_subsets.py

Each subset keeps the same characters: the demo's ~1,000 (charset_demo.txt: an even
sample of GB2312 level 1, the 3,755 most used hanzi, plus the characters of the demo
sentence, limited to those every font has), the 500 most used hanzi (FREQ500) and the few-shot
sets (COVER1000, which holds COVER100/300/500), so the handwriting template's sets and their
training pairs need no system font. The OFL forbids a modified font from using its Reserved Font Names,
so every subset is renamed "<name> Subset" with names free of them.
"""
from __future__ import annotations

from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from data.charsets import gb2312_level1, most_covering, most_frequent

ROOT = Path(__file__).resolve().parents[1]

HERE = Path(__file__).resolve().parent
DEMO_TEXT = (HERE / "demo_text.txt").read_text(encoding="utf-8").strip()
TARGET_CHARS = 1000
FREQUENT_CHARS = 500
FEW_SHOT_CHARS = 1000   # COVER1000 holds COVER100, COVER300 and COVER500

# (output file, family name, source file, face index in a collection)
FONTS = [
    ("NotoSansSC-Subset.otf", "Noto Sans SC Subset", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("NotoSerifSC-Subset.otf", "Noto Serif SC Subset", "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("WenKai-Subset.ttf", "WenKai Subset", "/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0),
    ("SmileySans-Subset.ttf", "Smiley Sans Subset", "/usr/share/fonts/truetype/smiley-sans/SmileySans-Oblique.ttf", 0),
]


def choose_characters(cmaps: list[set[int]]) -> str:
    level1 = [c for c in gb2312_level1() if all(ord(c) in cm for cm in cmaps)]
    demo = [c for c in dict.fromkeys(DEMO_TEXT) if not c.isspace()]
    missing = [c for c in demo if not all(ord(c) in cm for cm in cmaps)]
    if missing:
        raise SystemExit(f"demo characters missing from a font: {''.join(missing)}")
    step = len(level1) / (TARGET_CHARS - len(demo))
    sample = [level1[int(i * step)] for i in range(TARGET_CHARS - len(demo))]
    return "".join(dict.fromkeys(demo + sample))


def rename(font: TTFont, family: str) -> None:
    name = font["name"]
    postscript = family.replace(" ", "") + "-Regular"
    for name_id in (1, 2, 3, 4, 6, 16, 17, 21, 22):
        name.removeNames(nameID=name_id)
    for name_id, value in ((1, family), (2, "Regular"), (3, postscript), (4, f"{family} Regular"),
                           (6, postscript)):
        name.setName(value, name_id, 3, 1, 0x409)
        name.setName(value, name_id, 1, 0, 0)
    if "CFF " in font:
        cff = font["CFF "].cff
        cff.fontNames = [postscript]
        top = cff.topDictIndex[0]
        for key in ("FullName", "FamilyName"):
            if hasattr(top, key):
                setattr(top, key, family)


def main() -> None:
    fonts = [TTFont(src, fontNumber=index) for _, _, src, index in FONTS]
    chars = choose_characters([set(f.getBestCmap()) for f in fonts])
    (HERE / "charset_demo.txt").write_text(chars + "\n", encoding="utf-8")
    chars = "".join(dict.fromkeys(chars + "".join(most_frequent(FREQUENT_CHARS))
                                  + "".join(most_covering(FEW_SHOT_CHARS))))
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False  # glyphs are rendered large and resized; hints only add bytes
    for (out_name, family, _, _), font in zip(FONTS, fonts):
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=chars)
        subsetter.subset(font)
        rename(font, family)
        font.save(HERE / out_name)
        print(f"{out_name}: {len(chars)} characters, {(HERE / out_name).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
