"""Render characters in learned styles with a trained generator.

    python infer.py --experiment_dir experiment --src_font fonts/NotoSansSC-Subset.otf \
        --src_txt "永和九年" --labels 0,1,2

The architecture comes from the checkpoint (no --input_nc guessing). Checkpoints made
by zi2zi-pytorch have no config: their architecture is read from the weights' keys
and shapes; --norm (and any other architecture flag) can fill in or confirm it.

Sources: --src_txt / --src_txt_file rendered from --src_font by the same glyph
renderer as training (text mode, zi2zi's --from_txt), or the source halves of an .obj
(--obj_path, default experiment_dir/data/val.obj). Output (--layout ours): one PNG per
character and style in save_dir/{label}/ (named U+6C38_永.png), and a grid per style,
save_dir/style_{label}.png (style_{name}.png with --type_file). --layout zi2zi writes
zi2zi-pytorch's files instead: save_dir/{label}/{i}.png (generated | source or target,
RGB) and, with --run_all_label, save_dir/infer_{name}_construct.png.
--interpolate A,B[,C...] --steps K moves the style embedding from label A to B (and on)
in K steps per leg and writes save_dir/interpolate_A-B.png (one row per step) and .gif.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from data.render import Font, RenderSettings
from data.sources import Sources, sources_from_obj, sources_from_text
from data.styles import read_style_names
from model.checkpoint import export_plain, load_generator
from model.config import ModelConfig
from model.inference import generate, interpolate
from utils.cli import parse_int_list, run
from utils.device import AMP_CHOICES, resolve_device
from utils.errors import UserError
from utils.images import write_interpolation, write_style, write_zi2zi_style
from utils.io import check_output_dir

ZI2ZI_DEFAULT_TEXT = "大威天龍大羅法咒世尊地藏波若諸佛"  # zi2zi-pytorch's --src_txt default
# zi2zi-pytorch's infer.py parses these training flags without using them
TRAINING_ONLY = ("L1_penalty", "Lconst_penalty", "Lcategory_penalty", "lr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment_dir", help="experiment folder (its checkpoint/ is used)")
    p.add_argument("--checkpoint_dir", help="folder with {step}_net_G.pth (default: experiment_dir/checkpoint)")
    p.add_argument("--resume", default="latest", help="checkpoint step to use, 'latest', or 'best' (runs trained "
                   "with --keep_best)")
    p.add_argument("--save_dir", help="output folder (default: experiment_dir/infer/{step}; "
                                      "experiment_dir/infer with --layout zi2zi)")
    p.add_argument("--layout", choices=["ours", "zi2zi"], default="ours",
                   help="output files: ours (per-glyph PNGs and grids) or zi2zi-pytorch's")
    p.add_argument("--type_file", help="style names, one per line (line number = label), used in file names")
    p.add_argument("--export_plain", metavar="DIR",
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
    run_ = p.add_argument_group("run")
    run_.add_argument("--batch_size", type=int, default=16)
    run_.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    run_.add_argument("--gpu_ids", nargs="+", help="zi2zi's way to pick the GPU: cuda:0 or 0")
    run_.add_argument("--per_row", type=int, default=10, help="characters per line in the style grid")
    run_.add_argument("--amp", choices=AMP_CHOICES, default="off",
                      help="mixed precision (bf16 is about 2x faster on CPUs with AVX-512 BF16)")
    arch = p.add_argument_group("architecture, for checkpoints without a config (zi2zi-pytorch)")
    arch.add_argument("--input_nc", type=int, choices=[1, 3])
    arch.add_argument("--embedding_num", type=int)
    arch.add_argument("--embedding_dim", type=int)
    arch.add_argument("--ngf", type=int)
    arch.add_argument("--image_size", type=int)
    arch.add_argument("--norm", choices=["batch", "instance", "none"], help="both networks' norm layers")
    arch.add_argument("--norm_G", choices=["batch", "instance", "none"], help="the generator's (overrides --norm)")
    unused = p.add_argument_group("zi2zi-pytorch training flags, accepted and ignored (they do not apply here)")
    for name in TRAINING_ONLY:
        unused.add_argument(f"--{name}", type=float)
    return p.parse_args(argv)


def choose_labels(args, embedding_num: int, from_obj: bool) -> list[int] | None:
    """The styles to render; None means each .obj record in its own style."""
    chosen = [args.label is not None, args.labels is not None, args.run_all_label]
    if sum(chosen) > 1:
        raise UserError("give only one of --label, --labels and --run_all_label")
    if args.run_all_label:
        return list(range(embedding_num))
    if args.label is not None:
        labels = [args.label]
    elif args.labels is not None:
        labels = parse_int_list(args.labels, "--labels")
    elif from_obj:
        return None
    else:
        labels = [0]  # zi2zi's --label default
    bad = [label for label in labels if not 0 <= label < embedding_num]
    if bad:
        raise UserError(f"style label {bad[0]} is outside 0..{embedding_num - 1}: the checkpoint has "
                        f"embedding_num={embedding_num}")
    return labels


def text_mode(args) -> bool:
    return args.from_txt or args.src_txt is not None or args.src_txt_file is not None


def load_sources(args, config: ModelConfig) -> Sources:
    """The glyphs to translate: --src_txt rendered from --src_font (text mode), or an .obj's source halves."""
    if args.obj_path and text_mode(args):
        raise UserError("give either --obj_path or text (--from_txt/--src_txt/--src_txt_file), not both")
    if not text_mode(args):
        obj_path = args.obj_path or (Path(args.experiment_dir) / "data" / "val.obj" if args.experiment_dir else None)
        if obj_path is None:
            raise UserError("nothing to render: give --src_txt, --src_txt_file or --obj_path")
        sources = sources_from_obj(obj_path, args.start_from)
        config.check_data(str(obj_path), sources.image_size, sources.labels.unique())
        return sources
    if args.src_txt_file:
        try:
            text = Path(args.src_txt_file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"--src_txt_file {args.src_txt_file}: no such file") from None
    else:
        text = args.src_txt if args.src_txt is not None else ZI2ZI_DEFAULT_TEXT
    if not args.src_font:
        raise UserError("text mode needs --src_font: the font the training source glyphs came from")
    if args.canvas_size is not None and args.canvas_size != config.image_size:
        raise UserError(f"--canvas_size {args.canvas_size} differs from the checkpoint's image size "
                        f"{config.image_size}; drop the flag or pass --canvas_size {config.image_size}")
    char_size = args.char_size or config.image_size
    font = Font(args.src_font, char_size, args.src_font_index, "--src_font")
    sources = sources_from_text(text, font, RenderSettings(char_size, config.image_size, args.x_offset, args.y_offset))
    if sources.skipped:
        print(f"skipped {len(sources.skipped)} character(s) the source font lacks: {''.join(sources.skipped)}")
    return sources


def main(argv=None):
    args = parse_args(argv)
    if not (args.experiment_dir or args.checkpoint_dir):
        raise UserError("give --experiment_dir (or --checkpoint_dir) to find the checkpoint")
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be >= 1; got {args.batch_size}")
    if args.save_dir:
        check_output_dir(args.save_dir, "--save_dir")
    ignored = [f"--{name}" for name in TRAINING_ONLY if getattr(args, name) is not None]
    if ignored:
        print(f"note: {', '.join(ignored)} only apply to training; infer.py ignores them")
    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else Path(args.experiment_dir) / "checkpoint"
    device = resolve_device(args.device, args.gpu_ids)
    given = {k: getattr(args, k) for k in ("input_nc", "embedding_num", "embedding_dim", "ngf", "image_size", "norm",
                                         "norm_G")}
    netG, config, step = load_generator(ckpt_dir, args.resume, device, **given)
    if args.export_plain:
        for line in export_plain(ckpt_dir, step, netG, args.export_plain):
            print(line)
        return 0
    names = read_style_names(args.type_file, "--type_file") if args.type_file else {}
    if args.interpolate:
        return write_interpolation_files(args, netG, config, step, device, names, ckpt_dir)
    labels = choose_labels(args, config.embedding_num, from_obj=not text_mode(args))
    sources = load_sources(args, config)
    root = Path(args.experiment_dir or ckpt_dir.parent) / "infer"
    save_dir = Path(args.save_dir) if args.save_dir else (root if args.layout == "zi2zi" else root / str(step))
    check_output_dir(save_dir, "--save_dir")
    write = write_zi2zi_style if args.layout == "zi2zi" else write_style
    for label, part, fakes in styled_outputs(netG, sources, labels, args, device):
        grid = write(save_dir, label, part.names, fakes, args.per_row, part.images, part.targets,
                     name=names.get(label), grid=args.run_all_label or args.layout == "ours")
        print(f"style {label}{f' ({names[label]})' if label in names else ''}: {grid or save_dir / str(label)}")
    print(f"{len(sources.names)} character(s) from checkpoint step {step} written to {save_dir}")
    return 0


def write_interpolation_files(args, netG, config: ModelConfig, step: int, device, names: dict, ckpt_dir: Path) -> int:
    """--interpolate A,B[,C...]: the style path's grid PNG and GIF."""
    if args.label is not None or args.labels or args.run_all_label:
        raise UserError("--interpolate names its own labels; drop --label/--labels/--run_all_label")
    chain = parse_int_list(args.interpolate, "--interpolate")
    if len(chain) < 2:
        raise UserError(f"--interpolate needs at least two labels, e.g. 0,1; got {args.interpolate!r}")
    bad = [label for label in chain if not 0 <= label < config.embedding_num]
    if bad:
        raise UserError(f"--interpolate label {bad[0]} is outside the checkpoint's labels 0..{config.embedding_num - 1}")
    if args.steps < 2:
        raise UserError(f"--steps must be >= 2 (both ends); got {args.steps}")
    if not text_mode(args):
        args.from_txt = True   # interpolation renders text: zi2zi's default sentence unless --src_txt is given
    sources = load_sources(args, config)
    frames, _ = interpolate(netG, sources.images, chain, args.steps, args.batch_size, device, args.amp)
    save_dir = Path(args.save_dir) if args.save_dir else Path(args.experiment_dir or ckpt_dir.parent) / "infer"
    stem = "interpolate_" + "-".join(names.get(label, str(label)) for label in chain)
    png, gif = write_interpolation(save_dir, frames, stem, args.per_row)
    print(f"style path {' -> '.join(map(str, chain))} in {len(frames)} steps, {len(sources.names)} character(s), "
          f"checkpoint step {step}: {png} and {gif}")
    return 0


def styled_outputs(netG, sources: Sources, labels: list[int] | None, args, device):
    """(label, sources, generated glyphs) per style: each .obj record in its own style, or every chosen label."""
    if labels is None:
        fakes = generate(netG, sources.images, sources.labels, args.batch_size, device, args.amp)
        for label in sorted(set(sources.labels.tolist())):
            keep = sources.labels == label
            yield label, sources.subset(keep.nonzero().flatten()), fakes[keep]
        return
    for label in labels:
        fakes = generate(netG, sources.images, torch.full((len(sources.images),), label), args.batch_size, device,
                         args.amp, desc=f"style {label}")
        yield label, Sources(sources.images, sources.names), fakes


if __name__ == "__main__":
    run(main)
