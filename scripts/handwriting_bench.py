"""How well read_scans.py reads paper: the template written in several "hands" (fonts, jittered),
captured as a scanner and a phone would, read back and scored against the ink that was written.

    python scripts/handwriting_bench.py --out docs/handwriting_bench.json --picture docs/handwriting_bench.png

Prints, per hand and capture, the share of characters identified, ink IoU (mean, worst), the
darkest pixel left on the paper and the ink's median level, and the reading time per page.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

from data.render import Font  # noqa: E402
from handwriting import synthetic  # noqa: E402
from handwriting.reader import contact_sheet, read_page  # noqa: E402
from handwriting.register import register  # noqa: E402
from handwriting.sheet import Geometry, Layout  # noqa: E402
from handwriting.template import TemplateWriter  # noqa: E402
from data.charsets import load_charset  # noqa: E402

HANDS = {"kai (WenKai)": "WenKai-Subset.ttf", "display (Smiley Sans)": "SmileySans-Subset.ttf",
         "serif hairlines (Noto Serif)": "NotoSerifSC-Subset.otf"}


def captures():
    """name -> (dpi the page is rendered at, distortion)."""
    return {
        "scan 300 dpi, clean": (300, lambda im, seed: im),
        "scan 300 dpi: grey paper, light +-40, noise, 2 deg, JPEG 60": (300, lambda im, seed: synthetic.scanner(im, seed)),
        "scan 150 dpi, the same": (150, lambda im, seed: synthetic.scanner(im, seed)),
        "scan 600 dpi, dark paper 190, light +-60": (600, lambda im, seed: synthetic.scanner(im, seed, paper=190, light=60)),
        "phone: tilt 20 deg, turned 5 deg, shadow band, JPEG 60": (300, lambda im, seed: synthetic.phone_photo(im, seed)),
        "phone, harsher: tilt 30, turned 12, deep shadow, dim": (300, lambda im, seed: synthetic.phone_photo(
            im, seed, tilt=30, rotation=12, paper=180, shadow=90, long_side=3000)),
        "phone upside down": (300, lambda im, seed: synthetic.phone_photo(im, seed)[::-1, ::-1].copy()),
        "phone, paper curled: middle 1.5 mm off": (300, lambda im, seed: synthetic.phone_photo(
            synthetic.curled(im, 1.5), seed)),
        "scan, paper bent: middle 2.5 mm off": (300, lambda im, seed: synthetic.scanner(synthetic.curled(im, 2.5), seed)),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pages", type=int, default=2, help="template pages per hand and capture")
    p.add_argument("--size", type=int, default=256, help="glyph image side")
    p.add_argument("--out", help="write the numbers here (JSON)")
    p.add_argument("--picture", help="write a phone photo beside its contact sheet here (PNG)")
    args = p.parse_args(argv)
    layout = Layout.plan(load_charset("FREQ300"), "FREQ300", Geometry())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "template.pdf"
        TemplateWriter(layout, Font(ROOT / "fonts" / "NotoSansSC-Subset.otf"),
                       Font(ROOT / "fonts" / "NotoSerifSC-Subset.otf")).write(pdf)
        rendered = {}
        for hand, font_file in HANDS.items():
            font = Font(ROOT / "fonts" / font_file)
            for capture, (dpi, distort) in tqdm(captures().items(), desc=hand, unit="capture"):
                if dpi not in rendered:
                    rendered[dpi] = {n: synthetic.render_page(pdf, n, dpi) for n in range(1, args.pages + 1)}
                scores, seconds, identified, cells_total = [], 0.0, 0, 0
                for n in range(1, args.pages + 1):
                    written = synthetic.write_page(rendered[dpi][n], layout, layout.page(n), font, args.size, seed=n)
                    image = distort(written.image, n)
                    start = time.perf_counter()
                    page = register(capture, image, layout)
                    cells = read_page(page, layout, args.size)
                    seconds += time.perf_counter() - start
                    read = {c.char: c.image for c in cells if c.image is not None}
                    identified += sum((c.char in written.truth) == (c.image is not None) for c in cells)
                    cells_total += len(cells)
                    scores += synthetic.score(read, written.truth)
                    if args.picture and hand.startswith("kai") and capture.startswith("phone: ") and n == 1:
                        picture(image, contact_sheet(layout, page, cells), args.picture)
                ious = [s.iou for s in scores]
                rows.append({"hand": hand, "capture": capture, "cells": cells_total,
                             "identified": identified / cells_total, "iou_mean": float(np.mean(ious)),
                             "iou_worst": float(np.min(ious)),
                             "paper_darkest": int(min(s.background_min for s in scores)),
                             "ink_median_worst": int(max(s.ink_median for s in scores)),
                             "seconds_per_page": seconds / args.pages})
    print(f"{'hand':30s} {'capture':58s} {'cells':>5s} {'identified':>10s} {'IoU mean':>8s} {'worst':>6s} "
          f"{'paper':>5s} {'ink':>4s} {'s/page':>6s}")
    for r in rows:
        print(f"{r['hand']:30s} {r['capture']:58s} {r['cells']:5d} {r['identified']:10.1%} {r['iou_mean']:8.3f} "
              f"{r['iou_worst']:6.3f} {r['paper_darkest']:5d} {r['ink_median_worst']:4d} {r['seconds_per_page']:6.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"size": args.size, "pages": args.pages, "rows": rows}, indent=1,
                                             ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def picture(photo: np.ndarray, sheet: Image.Image, path: str) -> None:
    """The photo as taken (scaled to the sheet's height) beside the top of its contact sheet."""
    height = 700
    sheet = sheet.crop((0, 0, sheet.width, min(sheet.height, height)))
    shot = Image.fromarray(photo).convert("RGB")
    shot = shot.resize((round(shot.width * height / shot.height), height), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (shot.width + 16 + sheet.width, height), "white")
    out.paste(shot, (0, 0))
    out.paste(sheet, (shot.width + 16, 0))
    out.save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
