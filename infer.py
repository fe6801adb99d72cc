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

from inference.options import build_parser
from inference.render import check_args, render_styles, write_interpolation_files
from model.config import given_architecture
from model.loading import load_generator
from model.plain import export_plain
from utils.cli import run
from utils.device import choose_device
from utils.experiment import Experiment


def main(argv=None):
    args = build_parser(__doc__).parse_args(argv)
    experiment = Experiment.from_args(args)
    check_args(args)
    device = choose_device(args.device, args.gpu_ids)
    netG, config, step = load_generator(experiment.checkpoint, args.resume, device, given_architecture(args))
    if args.export_plain:
        for line in export_plain(experiment.checkpoint, step, netG, config, args.export_plain):
            print(line)
    elif args.interpolate:
        write_interpolation_files(args, netG, config, step, device, experiment)
    else:
        render_styles(args, netG, config, step, device, experiment)
    return 0


if __name__ == "__main__":
    run(main)
