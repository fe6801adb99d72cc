"""Export a learned style as an installable font (.ttf, .otf, .woff2 or .ufo), verified glyph by glyph.

    python export_font.py --experiment_dir experiment --label 1 --src_font source.otf \
        --charset CN --out wenkai_like.ttf

Every character of --charset that --src_font has is rendered as in training, generated
in the style of --label (batched; --amp honoured), traced to curves (potrace's
algorithm, in --workers processes) and placed in the em where the source glyph sits;
metrics (units per em, ascender, descender, advance widths) come from the source font.
--charset: CN (GB2312), CN_T, JP, KR, a text file, or "data": every character of the
experiment's training data (train and held-out). --prefer_real takes the designer's own
drawings where they exist (font2img's pair folder, or an .obj). --copy_glyphs_from
takes Latin and punctuation from a font unchanged. For a zi2zi-pytorch checkpoint (no
config), infer.py's architecture flags (--norm ...) say what its weights leave open.
Afterwards the font is read back with fontTools, rendered with Pillow, and each glyph is
compared with the raster it was traced from (ink IoU); a specimen PNG is written beside
the font.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from data.styles import read_style_names
from export.build import FontNames
from export.pipeline import ExportOptions, check_format, export_font
from export.proportions import style_width_scale
from export.specimen import DEFAULT_TEXT, write_specimen
from model.config import GENERATOR_FLAGS, add_architecture_flags, given_architecture
from model.loading import load_generator
from utils.cli import add_checkpoint_choice, add_device_flags, add_experiment_flags, run
from utils.device import choose_device
from utils.errors import UserError
from utils.experiment import Experiment
from utils.io import check_output_dir, check_output_file


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = add_experiment_flags(p, "its checkpoint/ and data/ are used",
                             data_dir="where split.json and train.obj are, for --charset data and the style's width")
    add_checkpoint_choice(g)
    g = p.add_argument_group("style and font")
    g.add_argument("--label", type=int, help="the style label to export")
    g.add_argument("--style", help="the style by name, looked up in --type_file")
    g.add_argument("--type_file", help="style names, one per line (line number = label), or font2img's --label_map")
    g.add_argument("--src_font", required=True, help="the source font of training (its metrics go into the font)")
    g.add_argument("--src_font_index", type=int, default=0, help="face number inside a .ttc collection")
    g.add_argument("--charset", default="data", help="CN, CN_T, JP, KR, FREQn, a text file, or data (default: the "
                                                      "characters of the experiment's training data)")
    g.add_argument("--out", help="the font: NAME.ttf (TrueType), NAME.otf (CFF outlines), NAME.woff2 (for the web) "
                                 "or NAME.ufo (a folder font editors open) (default: experiment_dir/font/"
                                 "style_LABEL.ttf)")
    g.add_argument("--family", help="family name (default: zi2zi <style name or label>)")
    g.add_argument("--style_name", default="Regular", help="style (subfamily) name in the name table")
    g.add_argument("--char_size", type=int, help="font2img's --char_size of the training data (default: glyph size)")
    g.add_argument("--width_scale", type=float, help="the style's width relative to the source font, scaling "
                   "advances and glyph boxes (default: measured from the label's training pairs in "
                   "data_dir/train.obj; 1 keeps the source's proportions)")
    g.add_argument("--prefer_real", help="take glyphs from these real drawings where they exist: font2img's pair "
                                         "folder or an .obj")
    g.add_argument("--copy_glyphs_from", help="take Latin and punctuation from this font unchanged")
    g.add_argument("--limit", type=int, help="export only the first N characters (a quick trial)")
    g.add_argument("--min_iou", type=float, default=0.85, help="list glyphs whose traced outline matches their "
                                                               "raster less than this (ink IoU)")
    g.add_argument("--specimen", default=DEFAULT_TEXT, help="text of the specimen PNG written beside the font "
                                                            "('' for none)")
    g = p.add_argument_group("device")
    g.add_argument("--batch_size", type=int, default=64)
    g.add_argument("--workers", type=int, help="tracing processes (default: one per CPU core)")
    add_device_flags(g, "mixed precision for generation")
    add_architecture_flags(p.add_argument_group("architecture, for checkpoints without a config (zi2zi-pytorch)"),
                           GENERATOR_FLAGS, show_defaults=False)
    return p.parse_args(argv)


def style_label(args, config) -> tuple[int, str]:
    names = read_style_names(args.type_file, "--type_file")
    if (args.label is None) == (args.style is None):
        raise UserError("give the style to export as --label N or as --style NAME (with --type_file)")
    if args.style is not None:
        if not names:
            raise UserError("--style needs --type_file (or font2img's --label_map) to look the name up")
        label = next((k for k, v in names.items() if v == args.style), None)
        if label is None:
            raise UserError(f"--style {args.style!r} is not in {args.type_file}: {', '.join(names.values())}")
    else:
        label = args.label
    config.check_chosen_labels([label], "--label")
    return label, names.get(label, f"style {label}")


def choose_width_scale(given: float | None, obj: Path, label: int) -> float:
    """--width_scale, or the style's width measured from its training pairs (1 where there are none)."""
    if given is not None:
        if not (math.isfinite(given) and 0.25 <= given <= 4):
            raise UserError(f"--width_scale must be between 0.25 and 4 (1 keeps the source's proportions); got {given}")
        return given
    if not obj.is_file():
        print(f"width: the source font's proportions (no training pairs at {obj} to measure "
              f"the style's width; --width_scale sets it)")
        return 1.0
    scale, pairs = style_width_scale(obj, label)
    if not pairs:
        print(f"width: the source font's proportions ({obj} holds no pair of label {label} with ink to measure the "
              f"style's width; --width_scale sets it)")
        return 1.0
    scale = round(scale, 2)
    print(f"width: {scale:.2f} x the source font's (median over {pairs} training pairs of label {label} in {obj}; "
          f"--width_scale overrides)")
    return scale


def checked_output(out: Path) -> Path:
    """The font's path (--out or its default), refused before any work if it cannot be written."""
    if out.suffix.lower() == ".ufo":   # a UFO is a folder, replaced whole
        check_output_dir(out, "--out")
    else:
        check_output_file(out, "--out")
    check_format(out)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    experiment = Experiment.from_args(args)
    out = checked_output(Path(args.out)) if args.out else None   # the default needs the label: checked below
    device = choose_device(args.device)
    netG, config, step = load_generator(experiment.checkpoint, args.resume, device, given_architecture(args))
    label, style = style_label(args, config)
    out = out or checked_output(experiment.font / f"style_{label}.ttf")
    family = args.family or f"zi2zi {style}"
    names = FontNames(family, args.style_name, f"Version 1.000; checkpoint step {step}",
                      f"{style} learned by zi2zi, exported from checkpoint step {step}")
    options = ExportOptions(label=label, source_font=Path(args.src_font), out=out, names=names,
                            charset=args.charset, data_dir=experiment.data, source_index=args.src_font_index,
                            char_size=args.char_size,
                            width_scale=choose_width_scale(args.width_scale, experiment.train_obj, label),
                            prefer_real=Path(args.prefer_real) if args.prefer_real else None,
                            copy_glyphs_from=Path(args.copy_glyphs_from) if args.copy_glyphs_from else None,
                            limit=args.limit, batch_size=args.batch_size, amp=args.amp, workers=args.workers)
    result = export_font(netG, step, options, device, config.image_size)
    v = result.verification
    print(f"wrote {result.path}: {family} {args.style_name}, {len(v.iou) + len(result.copied)} characters "
          f"({len(result.generated)} generated, {len(result.real)} real drawings, {len(result.copied)} copied) "
          f"from checkpoint step {step}, style {label}")
    if result.lacking:
        print(f"skipped {len(result.lacking)} character(s) the source font lacks: {''.join(result.lacking[:40])}"
              f"{' ...' if len(result.lacking) > 40 else ''}")
    if result.empty:
        print(f"skipped {len(result.empty)} character(s) the source font draws empty: {''.join(result.empty[:40])}")
    worst = ", ".join(f"{ch} {value:.2f}" for ch, value in v.worst(5))
    print(f"check: fontTools reads it, cmap {'holds exactly' if v.cmap_matches else 'DIFFERS FROM'} the exported "
          f"characters; outline vs raster ink IoU mean {v.mean_iou:.3f}, worst {worst}")
    low = v.below(args.min_iou)
    if low:
        print(f"{len(low)} glyph(s) below IoU {args.min_iou}: {''.join(low[:60])}{' ...' if len(low) > 60 else ''}")
    print(f"time: {result.timer.summary()}")
    if args.specimen:
        png = out.with_suffix(".png")
        _, missing = write_specimen(result.sfnt, args.specimen, png, title=f"{family} {args.style_name} (step {step})")
        print(f"specimen: {png}" + (f" (left out, not in the font: {missing})" if missing else ""))
    print(f"install: copy {result.path} to ~/.local/share/fonts (Linux, then fc-cache -f), double-click it "
          f"(macOS, Windows)")
    return 0 if v.cmap_matches else 1


if __name__ == "__main__":
    run(main)
