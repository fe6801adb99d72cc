"""infer.py's work: choose the styles and the source glyphs, generate, write them out.

    python infer.py --experiment_dir experiment --src_font fonts/NotoSansSC-Subset.otf \
        --src_txt "永和九年" --labels 0,1,2
"""
from __future__ import annotations

from pathlib import Path

import torch

from data.render import Font, RenderSettings
from data.sources import Sources, sources_from_obj, sources_from_text
from data.styles import read_style_names
from model.config import ModelConfig
from model.inference import generate, interpolate
from utils.cli import parse_int_list
from utils.errors import UserError
from utils.experiment import Experiment
from utils.io import check_output_dir

from .layouts import write_interpolation, write_style, write_zi2zi_style
from .options import TRAINING_ONLY, ZI2ZI_DEFAULT_TEXT


def check_args(args) -> None:
    """What can be refused before the checkpoint is read."""
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be >= 1; got {args.batch_size}")
    if args.save_dir:
        check_output_dir(args.save_dir, "--save_dir")
    ignored = [f"--{name}" for name in TRAINING_ONLY if getattr(args, name) is not None]
    if ignored:
        print(f"note: {', '.join(ignored)} only apply to training; infer.py ignores them")


def choose_labels(args, config: ModelConfig, from_obj: bool) -> list[int] | None:
    """The styles to render; None means each .obj record in its own style."""
    chosen = [args.label is not None, args.labels is not None, args.run_all_label]
    if sum(chosen) > 1:
        raise UserError("give only one of --label, --labels and --run_all_label")
    if args.run_all_label:
        return list(range(config.embedding_num))
    if args.label is not None:
        labels = [args.label]
    elif args.labels is not None:
        labels = parse_int_list(args.labels, "--labels")
    elif from_obj:
        return None
    else:
        labels = [0]  # zi2zi's --label default
    config.check_chosen_labels(labels, "style label")
    return labels


def text_mode(args) -> bool:
    return args.from_txt or args.src_txt is not None or args.src_txt_file is not None


def load_sources(args, config: ModelConfig, experiment: Experiment) -> Sources:
    """The glyphs to translate: --src_txt rendered from --src_font (text mode), or an .obj's source halves."""
    if args.obj_path and text_mode(args):
        raise UserError("give either --obj_path or text (--from_txt/--src_txt/--src_txt_file), not both")
    if not text_mode(args):
        obj_path = args.obj_path or (experiment.val_obj if args.experiment_dir else None)
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


def render_styles(args, netG, config: ModelConfig, step: int, device, experiment: Experiment) -> Path:
    """The chosen characters in every chosen style, in the --layout's files; returns the folder."""
    names = read_style_names(args.type_file, "--type_file")
    labels = choose_labels(args, config, from_obj=not text_mode(args))
    sources = load_sources(args, config, experiment)
    default = experiment.infer if args.layout == "zi2zi" else experiment.infer_step(step)
    save_dir = Path(args.save_dir) if args.save_dir else default
    check_output_dir(save_dir, "--save_dir")
    write = write_zi2zi_style if args.layout == "zi2zi" else write_style
    for label, part, fakes in styled_outputs(netG, sources, labels, args, device):
        grid = write(save_dir, label, part.names, fakes, args.per_row, part.images, part.targets,
                     name=names.get(label), grid=args.run_all_label or args.layout == "ours")
        print(f"style {label}{f' ({names[label]})' if label in names else ''}: {grid or save_dir / str(label)}")
    print(f"{len(sources.names)} character(s) from checkpoint step {step} written to {save_dir}")
    return save_dir


def write_interpolation_files(args, netG, config: ModelConfig, step: int, device,
                              experiment: Experiment) -> tuple[Path, Path]:
    """--interpolate A,B[,C...]: the style path's grid PNG and GIF."""
    if args.label is not None or args.labels or args.run_all_label:
        raise UserError("--interpolate names its own labels; drop --label/--labels/--run_all_label")
    chain = parse_int_list(args.interpolate, "--interpolate")
    if len(chain) < 2:
        raise UserError(f"--interpolate needs at least two labels, e.g. 0,1; got {args.interpolate!r}")
    config.check_chosen_labels(chain, "--interpolate label")
    if args.steps < 2:
        raise UserError(f"--steps must be >= 2 (both ends); got {args.steps}")
    if not text_mode(args):
        args.from_txt = True   # interpolation renders text: zi2zi's default sentence unless --src_txt is given
    names = read_style_names(args.type_file, "--type_file")
    sources = load_sources(args, config, experiment)
    frames, _ = interpolate(netG, sources.images, chain, args.steps, args.batch_size, device, args.amp)
    save_dir = Path(args.save_dir) if args.save_dir else experiment.infer
    stem = "interpolate_" + "-".join(names.get(label, str(label)) for label in chain)
    png, gif = write_interpolation(save_dir, frames, stem, args.per_row)
    print(f"style path {' -> '.join(map(str, chain))} in {len(frames)} steps, {len(sources.names)} character(s), "
          f"checkpoint step {step}: {png} and {gif}")
    return png, gif


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
