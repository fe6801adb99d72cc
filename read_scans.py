"""Read scans or photos of filled-in template pages into one clean glyph image per character.

    python read_scans.py --layout template.json --out_dir glyphs scans/ IMG_2041.jpg page3.pdf

Takes PNG, JPEG, TIFF (multi-page too) and PDF (every page), from a scanner at 150-600 dpi or
a phone at an angle. Each page is found by its corner markers (so it may be turned, tilted or
upside down), checked against --layout by its QR code, straightened, and every written cell is
cut out, its paper made white (grey paper, uneven light, shadows and JPEG noise removed with an
adaptive threshold) and written as CHAR.png (the writing square is the glyph's em box) into
--out_dir, ready for `font2img.py --mode font2imgs --dst_imgs OUT_DIR`. A contact sheet per page
(OUT_DIR/reading/page_*.png) shows what was read and marks doubtful cells: ink touching the
border, fragments far apart, too faint. A page read again replaces its glyphs.

Every input is checked before anything is written: a bad scan stops the run in one line
naming it, and the glyphs already in --out_dir stay as they are.
"""
from __future__ import annotations

import argparse
from collections import Counter

from tqdm import tqdm

from handwriting.reader import RECORD_DIR, GlyphFolder, read_page
from handwriting.register import register
from handwriting.scans import expand_inputs, load_scans
from handwriting.sheet import Layout
from utils.cli import run
from utils.errors import UserError
from utils.io import check_output_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scans", nargs="+", help="scan or photo files (PNG, JPEG, TIFF, PDF), or folders of them")
    p.add_argument("--layout", required=True, help="the layout JSON make_template.py wrote with the PDF")
    p.add_argument("--out_dir", required=True, help="where CHAR.png files go (and reading/: contact sheets)")
    p.add_argument("--size", type=int, default=256, help="side of each glyph image in pixels (default 256)")
    p.add_argument("--center", action="store_true",
                   help="move each glyph's ink to the middle of its image (default: keep the writer's placement)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not 32 <= args.size <= 2048:
        raise UserError(f"--size must be 32 to 2048 pixels; got {args.size}")
    layout = Layout.load(args.layout)
    check_output_dir(args.out_dir, "--out_dir")
    folder = GlyphFolder(args.out_dir)
    pages, seen = [], {}
    for path in tqdm(expand_inputs(args.scans), desc="finding pages", unit="file"):
        for scan in load_scans(path):
            page = register(scan.name, scan.gray, layout)
            number = page.page.number
            if number in seen:
                raise UserError(f"{seen[number]} and {scan.name} are both page {number}/{len(layout.pages)}; "
                                f"give one scan of each page")
            seen[number] = scan.name
            pages.append(page)
    counts = Counter()
    for page in sorted(pages, key=lambda p: p.page.number):
        cells = read_page(page, layout, args.size, center=args.center)
        print(folder.write_page(layout, page, cells))
        for cell in cells:
            counts[cell.status.split(":")[0]] += 1
            if cell.status != "ok":
                print(f"  {cell.char} {cell.status}")
    missing = [n for n in range(1, len(layout.pages) + 1) if str(n) not in {k.split(":")[1] for k in
                                                                          folder.record["pages"]
                                                                          if k.startswith(layout.digest)}]
    print(f"read {len(pages)} page{'s' if len(pages) != 1 else ''}: {counts['ok']} glyphs ok, {counts['doubtful']} doubtful, "
          f"{counts['empty']} empty; contact sheets in {args.out_dir}/{RECORD_DIR}/")
    if missing:
        print(f"pages of this template not read yet: {', '.join(map(str, missing))}")
    return 0


if __name__ == "__main__":
    run(main)
