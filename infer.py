"""Render characters in learned styles with a trained generator.

    python infer.py --experiment_dir experiment --src_font fonts/NotoSansSC-Subset.otf \
        --src_txt "永和九年" --labels 0,1,2

The architecture comes from the checkpoint (no --input_nc guessing). Checkpoints made
by zi2zi-pytorch have no config: their architecture is read from the weights' keys
and shapes; --norm (and any other architecture flag) can fill in or confirm it.

Sources: --src_txt / --src_txt_file rendered from --src_font by the same glyph
renderer as training, or the source halves of an .obj (--obj_path). Output: one PNG
per character and style in save_dir/{label}/ (named U+6C38_永.png), and a grid per
style, save_dir/style_{label}.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from data.render import Font, RenderSettings
from data.sources import Sources, sources_from_obj, sources_from_text
from model.checkpoint import export_plain_generator, load_generator
from model.config import ModelConfig
from model.inference import generate
from utils.cli import parse_int_list, run
from utils.device import resolve_device
from utils.errors import UserError
from utils.images import write_style


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment_dir", help="experiment folder (its checkpoint/ is used)")
    p.add_argument("--checkpoint_dir", help="folder with {step}_net_G.pth (default: experiment_dir/checkpoint)")
    p.add_argument("--resume", default="latest", help="checkpoint step to use, or 'latest'")
    p.add_argument("--save_dir", help="output folder (default: experiment_dir/infer/{step})")
    p.add_argument("--export_plain", metavar="FILE",
                   help="write the generator with spectral norm folded into plain weights (loads in "
                        "zi2zi-pytorch) and exit")
    src = p.add_argument_group("sources")
    src.add_argument("--src_txt", help="characters to render")
    src.add_argument("--src_txt_file", help="UTF-8 file of characters to render")
    src.add_argument("--src_font", help="font the source glyphs are rendered from (the training source font)")
    src.add_argument("--src_font_index", type=int, default=0, help="face number inside a .ttc collection")
    src.add_argument("--obj_path", help="use the source halves of this .obj instead of text")
    src.add_argument("--char_size", type=int, help="font size glyphs are drawn at (default: image size)")
    src.add_argument("--x_offset", type=int, default=0, help="as font2img.py's --x_offset")
    src.add_argument("--y_offset", type=int, default=0, help="as font2img.py's --y_offset")
    sty = p.add_argument_group("styles")
    sty.add_argument("--label", type=int, help="one style label")
    sty.add_argument("--labels", help="several style labels, e.g. 0,2,5")
    sty.add_argument("--run_all_label", action="store_true", help="every label the model has")
    run_ = p.add_argument_group("run")
    run_.add_argument("--batch_size", type=int, default=16)
    run_.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    run_.add_argument("--per_row", type=int, default=10, help="characters per line in the style grid")
    run_.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                      help="mixed precision (bf16 is about 2x faster on CPUs with AVX-512 BF16)")
    arch = p.add_argument_group("architecture, for checkpoints without a config (zi2zi-pytorch)")
    arch.add_argument("--input_nc", type=int, choices=[1, 3])
    arch.add_argument("--embedding_num", type=int)
    arch.add_argument("--embedding_dim", type=int)
    arch.add_argument("--ngf", type=int)
    arch.add_argument("--image_size", type=int)
    arch.add_argument("--norm", choices=["batch", "instance", "none"], help="both networks' norm layers")
    arch.add_argument("--norm_G", choices=["batch", "instance", "none"], help="the generator's (overrides --norm)")
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
        raise UserError("choose styles with --label N, --labels 0,2,5 or --run_all_label")
    bad = [label for label in labels if not 0 <= label < embedding_num]
    if bad:
        raise UserError(f"style label {bad[0]} is outside 0..{embedding_num - 1}: the checkpoint has "
                        f"embedding_num={embedding_num}")
    return labels


def load_sources(args, config: ModelConfig) -> Sources:
    """The glyphs to translate: the source halves of --obj_path, or --src_txt rendered from --src_font."""
    text_given = args.src_txt is not None or args.src_txt_file is not None
    if args.obj_path and text_given:
        raise UserError("give either --obj_path or --src_txt/--src_txt_file, not both")
    if args.obj_path:
        sources = sources_from_obj(args.obj_path)
        config.check_data(args.obj_path, sources.image_size, sources.labels.unique())
        return sources
    if not text_given:
        raise UserError("nothing to render: give --src_txt, --src_txt_file or --obj_path")
    if args.src_txt_file:
        try:
            text = Path(args.src_txt_file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"--src_txt_file {args.src_txt_file}: no such file") from None
    else:
        text = args.src_txt
    if not args.src_font:
        raise UserError("--src_txt needs --src_font: the font the training source glyphs came from")
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
    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else Path(args.experiment_dir) / "checkpoint"
    device = resolve_device(args.device)
    given = {k: getattr(args, k) for k in ("input_nc", "embedding_num", "embedding_dim", "ngf", "image_size", "norm",
                                         "norm_G")}
    netG, config, step = load_generator(ckpt_dir, args.resume, device, **given)
    if args.export_plain:
        export_plain_generator(netG, args.export_plain)
        print(f"wrote {args.export_plain}: generator of step {step} as a plain zi2zi-pytorch state dict")
        return 0
    labels = choose_labels(args, config.embedding_num, from_obj=bool(args.obj_path))
    sources = load_sources(args, config)
    save_dir = Path(args.save_dir) if args.save_dir else (
        Path(args.experiment_dir or ckpt_dir.parent) / "infer" / str(step))
    if labels is None:  # an .obj in its records' own styles: source | target | generated
        fakes = generate(netG, sources.images, sources.labels, args.batch_size, device, args.amp)
        for label in sorted(set(sources.labels.tolist())):
            part = sources.subset((sources.labels == label).nonzero().flatten())
            grid = write_style(save_dir, label, part.names, fakes[sources.labels == label], args.per_row,
                               part.images, part.targets)
            print(f"style {label}: {grid}")
    else:
        for label in labels:
            fakes = generate(netG, sources.images, torch.full((len(sources.images),), label), args.batch_size,
                             device, args.amp, desc=f"style {label}")
            print(f"style {label}: {write_style(save_dir, label, sources.names, fakes, args.per_row)}")
    print(f"{len(sources.names)} character(s) from checkpoint step {step} written to {save_dir}")
    return 0


if __name__ == "__main__":
    run(main)
