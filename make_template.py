"""Write a printable handwriting template: a PDF of writing cells, and its layout (JSON).

    python make_template.py --out my_hand.pdf                      # the few-shot set COVER300, A4
    python make_template.py --charset CN --missing_from my_hand.ttf --paper Letter --out rest.pdf

Every page has four corner markers and a QR code (page number, the charset's digest, the
layout's), so read_scans.py finds the page in a scan or photo, turns and straightens it, and
knows which character each cell holds. Each cell's writing square is the character's em box;
its character is printed small above it. --guide_font prints a faint glyph to write over.
The layout file (default: the PDF's name with .json) lists every cell's box in millimetres
from the page's top-left corner; read_scans.py needs it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from data.charsets import NAMES_HELP, load_charset
from data.render import Font
from handwriting.sheet import PAPER_MM, Geometry, Layout
from handwriting.template import TemplateWriter
from utils.cli import run
from utils.errors import UserError
from utils.io import check_output_file

DEFAULT_CHARSET = "COVER300"
BUNDLED_FONT = Path(__file__).resolve().parent / "fonts" / "NotoSansSC-Subset.otf"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--charset", default=DEFAULT_CHARSET,
                   help=f"characters to write: {NAMES_HELP} (default {DEFAULT_CHARSET}: 300 common hanzi that "
                        f"hold most of GB2312's components)")
    p.add_argument("--missing_from", metavar="FONT",
                   help="only the characters of --charset this font lacks (to complete a font)")
    p.add_argument("--paper", choices=sorted(PAPER_MM), default="A4", help="paper size (default A4)")
    p.add_argument("--label_font", default=str(BUNDLED_FONT),
                   help="font the characters are printed in (default: the bundled Noto Sans SC subset, "
                        "which has FREQ500 and COVER1000; give a full CJK font for other sets)")
    p.add_argument("--guide_font", help="also print each character faintly in its square, in this font")
    p.add_argument("--out", default="template.pdf", help="the PDF to write")
    p.add_argument("--layout", help="the layout JSON to write (default: --out with .json)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = check_output_file(args.out, "--out")
    if out.suffix.lower() != ".pdf":
        raise UserError(f"--out {out}: the template is a PDF; name it NAME.pdf")
    layout_path = check_output_file(args.layout or out.with_suffix(".json"), "--layout")
    chars = load_charset(args.charset)
    name = Path(args.charset).stem if Path(args.charset).is_file() else args.charset
    if args.missing_from:
        have = Font(args.missing_from, flag="--missing_from")
        chars = [c for c in chars if not have.has_char(c)]
        if not chars:
            raise UserError(f"--missing_from {args.missing_from} already has every character of --charset "
                            f"{args.charset}; nothing to write")
        name = f"{name} missing from {have.path.name}"
    label_font = Font(args.label_font, flag="--label_font")
    guide_font = Font(args.guide_font, flag="--guide_font") if args.guide_font else None
    layout = Layout.plan(chars, name, Geometry(paper=args.paper))
    TemplateWriter(layout, label_font, guide_font).write(out)
    layout.save(layout_path)
    per_page = len(layout.pages[0].cells)
    print(f"wrote {out}: {len(layout.pages)} pages ({args.paper}), {len(chars)} characters, {per_page} a page")
    print(f"wrote {layout_path}: the layout read_scans.py needs (--layout {layout_path})")
    return 0


if __name__ == "__main__":
    run(main)
