"""Render paired glyph images (target left, source right) for training.

    python font2img.py --src_font fonts/NotoSansSC-Subset.otf --dst_font fonts/WenKai-Subset.ttf \
        --charset fonts/charset_demo.txt --label 1 --sample_dir experiment/pairs

Modes:
  font2font  both glyphs rendered from fonts (--src_font, --dst_font)
  font2imgs  source from --src_font, targets from glyph images in --dst_imgs
  fonts2imgs font2imgs with --src_fonts_dir (zi2zi's name)
  imgs2imgs  both from glyph image folders (--src_imgs, --dst_imgs)

--src_fonts_dir FOLDER uses every font in FOLDER as one source font (each character
from the first font, in name order, that has it; for a family split over several
files), in place of --src_font in any mode.

Glyph image names are matched with --name_pattern, a regex with a named group
`char` (the character) or `codepoint` (hex), and optionally `label` (a number, or a
name mapped to a number by --label_map, a JSON object). The default, one image per
character named after it (永.png), takes the label from --label.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from data.charsets import NAMES_HELP, load_charset
from data.corpus import STYLES_FILE, build_corpus, list_fonts, read_styles
from data.pairs import DEFAULT_NAME_PATTERN, font2font, images2pairs, read_label_map, scan_glyph_images
from data.render import Font, FontSet, RenderSettings, list_faces
from utils.cli import run
from utils.errors import UserError
from utils.io import check_output_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["font2font", "font2imgs", "fonts2imgs", "imgs2imgs"], default="font2font")
    p.add_argument("--src_font", help="source font file (.ttf/.otf/.ttc)")
    p.add_argument("--src_fonts_dir", help="folder of fonts used together as the source font")
    p.add_argument("--src_font_index", type=int, default=0, help="face number inside a .ttc collection")
    p.add_argument("--dst_font", help="target (style) font file")
    p.add_argument("--dst_font_index", type=int, default=0, help="face number inside a .ttc collection")
    p.add_argument("--dst_fonts", metavar="FOLDER|LIST",
                   help="a corpus: every font in FOLDER (searched below it) or listed in LIST (PATH or PATH#FACE "
                        "a line) becomes one style label, from --label up, against the one source font; "
                        "writes styles.json beside the pairs")
    p.add_argument("--list_faces", metavar="FONT", help="print the faces of a font file and exit")
    p.add_argument("--src_imgs", help="folder of source glyph images (imgs2imgs)")
    p.add_argument("--dst_imgs", help="folder of target glyph images (font2imgs, imgs2imgs)")
    p.add_argument("--name_pattern", default=DEFAULT_NAME_PATTERN,
                   help="regex for glyph image names, with groups char|codepoint and optional label")
    p.add_argument("--label_map", help="JSON object mapping label names in file names to numbers")
    p.add_argument("--charset", default="CN", help=f"one of {NAMES_HELP}")
    p.add_argument("--sample_count", type=int, default=5000, help="pairs to write at most (0: no limit)")
    p.add_argument("--sample_dir", default="sample_dir", help="where the paired images go (zi2zi's default)")
    p.add_argument("--label", type=int, default=0, help="style label of the target glyphs")
    p.add_argument("--filter", action="store_true",
                   help="also drop glyphs whose image recurs across characters (placeholder glyphs)")
    p.add_argument("--shuffle", action="store_true", help="shuffle the charset before sampling")
    p.add_argument("--seed", type=int, default=0, help="seed for --shuffle and --filter's sample")
    p.add_argument("--char_size", type=int, default=256, help="font size glyphs are drawn at")
    p.add_argument("--canvas_size", type=int, default=256, help="side of each glyph image (pair: 2x wide)")
    p.add_argument("--x_offset", type=int, default=0, help="shift glyphs right by this many pixels")
    p.add_argument("--y_offset", type=int, default=0, help="shift glyphs down by this many pixels")
    p.add_argument("--overwrite", action="store_true",
                   help="replace images of the same label already in --sample_dir")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.list_faces:
        for index, name in enumerate(list_faces(args.list_faces)):
            print(f"{index}: {name}")
        return 0
    check_output_dir(args.sample_dir, "--sample_dir")
    if args.mode == "fonts2imgs":
        if not args.src_fonts_dir:
            raise UserError("--mode fonts2imgs needs --src_fonts_dir, the folder of source fonts")
        args.mode = "font2imgs"
    if args.label < 0:
        raise UserError(f"--label must be >= 0; got {args.label}")
    if args.sample_count < 0:
        raise UserError(f"--sample_count must be >= 0; got {args.sample_count}")
    settings = RenderSettings(args.char_size, args.canvas_size, args.x_offset, args.y_offset)
    created = not Path(args.sample_dir).exists()
    sample_count = args.sample_count or None

    def need(flag):
        value = getattr(args, flag)
        if not value:
            raise UserError(f"--mode {args.mode} needs --{flag}")
        return value

    def source_font():
        if args.src_fonts_dir and args.src_font:
            raise UserError("give --src_font or --src_fonts_dir, not both")
        if args.src_fonts_dir:
            return FontSet(args.src_fonts_dir, args.char_size)
        return Font(need("src_font"), args.char_size, args.src_font_index, "--src_font")

    if args.dst_fonts:
        if args.mode != "font2font" or args.dst_font:
            raise UserError("--dst_fonts (a corpus of fonts) goes with --mode font2font and without --dst_font")
        entries = list_fonts(args.dst_fonts)
        summaries = build_corpus(source_font(), entries, load_charset(args.charset), settings, Path(args.sample_dir),
                                 first_label=args.label, sample_count=sample_count, filter_recurring=args.filter,
                                 shuffle=args.shuffle, seed=args.seed, overwrite=args.overwrite)
        styles = read_styles(Path(args.sample_dir))
        for label, summary in summaries.items():
            print(f"label {label} ({styles[label]['name']}, {Path(styles[label]['file']).name}, covers "
                  f"{styles[label]['coverage']:.0%} of --charset): " + summary.report().replace("\n", "\n    "))
        empty = [label for label, summary in summaries.items() if summary.written == 0]
        if empty:
            print(f"warning: labels {empty} got no pairs (see their skip reasons); leave those fonts out")
        print(f"wrote {Path(args.sample_dir) / STYLES_FILE}: {len(summaries)} styles, labels {args.label} to "
              f"{args.label + len(summaries) - 1} (train with --embedding_num {args.label + len(summaries)} or more)")
        return 0
    if args.mode == "font2font":
        src = source_font()
        dst = Font(need("dst_font"), args.char_size, args.dst_font_index, "--dst_font")
        summary = font2font(src, dst, load_charset(args.charset), settings, args.sample_dir,
                            label=args.label, sample_count=sample_count, filter_recurring=args.filter,
                            shuffle=args.shuffle, seed=args.seed, overwrite=args.overwrite)
    else:
        if args.filter:
            raise UserError("--filter applies to fonts (--mode font2font) only")
        label_map = read_label_map(args.label_map)
        targets = scan_glyph_images(need("dst_imgs"), args.name_pattern, args.label, label_map, "--dst_imgs")
        src_font = sources = None
        if args.mode == "font2imgs":
            src_font = source_font()
        else:
            sources = scan_glyph_images(need("src_imgs"), args.name_pattern, args.label, label_map,
                                        "--src_imgs")
        summary = images2pairs(targets, settings, args.sample_dir, src_font=src_font, sources=sources,
                               sample_count=sample_count, shuffle=args.shuffle, seed=args.seed,
                               overwrite=args.overwrite)
    print(summary.report())
    if summary.written == 0:
        if created:  # leave nothing behind: the folder was made for pairs that never came
            shutil.rmtree(args.sample_dir, ignore_errors=True)
        raise UserError("no pair was written: the fonts/images share no drawable character "
                        "of --charset (see the skip reasons above)")
    return 0


if __name__ == "__main__":
    run(main)
