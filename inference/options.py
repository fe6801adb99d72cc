"""infer.py's flags: zi2zi-pytorch's (text mode, --label, --run_all_label, --gpu_ids, and its
training flags, accepted and ignored) and ours."""
from __future__ import annotations

import argparse

from model.config import GENERATOR_FLAGS, add_architecture_flags
from utils.cli import add_checkpoint_choice, add_device_flags, add_experiment_flags

ZI2ZI_DEFAULT_TEXT = "大威天龍大羅法咒世尊地藏波若諸佛"  # zi2zi-pytorch's --src_txt default
# zi2zi-pytorch's infer.py parses these training flags without using them
TRAINING_ONLY = ("L1_penalty", "Lconst_penalty", "Lcategory_penalty", "lr")


def build_parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = add_experiment_flags(p, "its checkpoint/ is used; val.obj in its data/ is the default source")
    add_checkpoint_choice(g)
    out = p.add_argument_group("output")
    out.add_argument("--save_dir", help="output folder (default: experiment_dir/infer/{step}; "
                                        "experiment_dir/infer with --layout zi2zi)")
    out.add_argument("--layout", choices=["ours", "zi2zi"], default="ours",
                     help="output files: ours (per-glyph PNGs and grids) or zi2zi-pytorch's")
    out.add_argument("--type_file", help="style names, one per line (line number = label), used in file names")
    out.add_argument("--per_row", type=int, default=10, help="characters per line in the style grid")
    out.add_argument("--export_plain", metavar="DIR",
                     help="write {step}_net_G.pth and {step}_net_D.pth with spectral norm folded into plain "
                          "weights to DIR (zi2zi-pytorch's load_networks reads them) and exit")
    src = p.add_argument_group("sources")
    src.add_argument("--from_txt", action="store_true", help="zi2zi's text mode: render --src_txt")
    src.add_argument("--src_txt", help=f"characters to render (text mode default: {ZI2ZI_DEFAULT_TEXT})")
    src.add_argument("--src_txt_file", help="UTF-8 file of characters to render")
    src.add_argument("--src_font", help="font the source glyphs are rendered from (the training source font)")
    src.add_argument("--src_font_index", type=int, default=0, help="face number inside a .ttc collection")
    src.add_argument("--obj_path", help="use the source halves of this .obj (default outside text mode: "
                                        "experiment_dir/data/val.obj)")
    src.add_argument("--start_from", type=int, default=0, help="subtract this from every .obj label (zi2zi's)")
    src.add_argument("--char_size", type=int, help="font size glyphs are drawn at (default: image size)")
    src.add_argument("--canvas_size", type=int, help="rendered glyph size; must equal the model's image size")
    src.add_argument("--x_offset", type=int, default=0, help="as font2img.py's --x_offset")
    src.add_argument("--y_offset", type=int, default=0, help="as font2img.py's --y_offset")
    sty = p.add_argument_group("styles")
    sty.add_argument("--label", type=int, help="one style label (text mode default: 0, as zi2zi)")
    sty.add_argument("--labels", help="several style labels, e.g. 0,2,5")
    sty.add_argument("--run_all_label", action="store_true", help="every label the model has")
    sty.add_argument("--interpolate", metavar="A,B[,C...]",
                     help="move the style embedding from label A to B (to C ...) and write the characters at "
                          "every step as a grid PNG and an animated GIF")
    sty.add_argument("--steps", type=int, default=8, help="--interpolate: steps per leg, ends included")
    dev = p.add_argument_group("device")
    dev.add_argument("--batch_size", type=int, default=16)
    add_device_flags(dev, "mixed precision (bf16 is about 2x faster on CPUs with AVX-512 BF16)",
                     gpu_ids_help="zi2zi's way to pick the GPU: cuda:0 or 0")
    add_architecture_flags(p.add_argument_group("architecture, for checkpoints without a config (zi2zi-pytorch)"),
                           GENERATOR_FLAGS, show_defaults=False)
    unused = p.add_argument_group("zi2zi-pytorch training flags, accepted and ignored (they do not apply here)")
    for name in TRAINING_ONLY:
        unused.add_argument(f"--{name}", type=float)
    return p
