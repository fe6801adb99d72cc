"""What every script does around its main(): one-line errors and clean Ctrl-C, and flag parsing helpers."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Callable

from .errors import PeerFailed, UserError, WriteError
from .io import describe_write_failure, write_failure


def run(main: Callable[[], int | None]) -> None:
    """Run a script's main; a UserError becomes `error: ...` on stderr and exit status 2, a write
    the machine refused (full disk, quota, read-only, permissions) one line and exit status 1.

    Set ZI2ZI_TRACEBACK=1 to see the full traceback.
    """
    try:
        code = main()
    except PeerFailed as err:   # another torchrun process failed and printed why; one message per job
        sys.exit(err.exit_status)
    except UserError as err:
        if os.environ.get("ZI2ZI_TRACEBACK"):
            raise
        close_progress_bars()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_status)
    except (OSError, RuntimeError) as err:
        cause = write_failure(err)
        if cause is None or os.environ.get("ZI2ZI_TRACEBACK"):
            raise
        # every file is written whole or not at all, so what is on disk is the earlier, complete version
        close_progress_bars()
        print(f"error: could not write {cause.filename or 'an output file'} ({describe_write_failure(cause)}); "
              f"files written before it are kept", file=sys.stderr)
        sys.exit(WriteError.exit_status)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def close_progress_bars() -> None:
    """Close the bars an error left open, so the error is the last line, not a bar redrawn at exit."""
    from tqdm import tqdm
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def parse_int_list(text: str, flag: str) -> list[int]:
    """`"0, 2,5"` -> [0, 2, 5], in the given order, without repeats; a bad list names the flag."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} expects comma-separated integers such as 0,2,5; got {text!r}") from None
    if not values:
        raise UserError(f"{flag} needs at least one number; got {text!r}")
    return list(dict.fromkeys(values))


def default_of(cls, name: str):
    """The default of dataclass field `name` (where every default lives)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default


def add_config_flag(group: argparse._ActionsContainer, cls, name: str, help: str, *flags: str,
                    show_default: bool = True, **kwargs) -> None:
    """A flag for dataclass field `cls.name`: default None ("not given"), help shows the field default.

    A boolean field becomes a store_true switch. Resolution of "not given" happens later,
    against a checkpoint being resumed and then the field default.
    """
    default = default_of(cls, name)
    if isinstance(default, bool) and "action" not in kwargs:
        kwargs["action"] = "store_true"
    elif "action" not in kwargs and "type" not in kwargs and default is not None:
        kwargs["type"] = type(default)
    shown = "off" if default is False else ("on" if default is True else default)
    inverted = kwargs.get("action") == "store_false"  # e.g. --no_augment: its help says what it turns off
    help_text = f"{help} (default: {shown})" if shown is not None and show_default and not inverted else help
    group.add_argument(*(flags or (f"--{name}",)), dest=name, default=None, help=help_text, **kwargs)


# ---------------------------------------------------------------- option groups every script shares

def add_experiment_flags(parser: argparse.ArgumentParser, uses: str, required: bool = False,
                         data_dir: str | None = None) -> argparse._ArgumentGroup:
    """--experiment_dir and --checkpoint_dir (and --data_dir when `data_dir` says what it is read for);
    `utils.experiment.Experiment.from_args` turns them into the folder layout."""
    group = parser.add_argument_group("experiment")
    group.add_argument("--experiment_dir", required=required, help=f"experiment folder ({uses})")
    group.add_argument("--checkpoint_dir", help="the checkpoint folder (default: experiment_dir/checkpoint)")
    if data_dir:
        group.add_argument("--data_dir", help=f"{data_dir} (default: experiment_dir/data)")
    return group


def add_checkpoint_choice(group: argparse._ActionsContainer) -> None:
    """--resume: which checkpoint of the experiment a script reads."""
    group.add_argument("--resume", default="latest", help="checkpoint step, 'latest', or 'best' (runs trained with "
                                                          "--keep_best) (default: latest)")


def add_device_flags(group: argparse._ActionsContainer, amp_help: str | None = "mixed precision",
                     gpu_ids_help: str | None = None, amp_default: str | None = "off",
                     amp_default_help: str | None = None) -> None:
    """--device, zi2zi's --gpu_ids where `gpu_ids_help` is given, and --amp unless `amp_help` is None (a
    script that measures in fp32 on purpose), resolved by `utils.device.choose_device` / `autocast`.
    `amp_default` None means "not given": the script resolves it per device (`amp_default_help` says how)."""
    from .device import AMP_CHOICES   # here, so scripts without a model (font2img, package) never import torch
    group.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    if gpu_ids_help:
        group.add_argument("--gpu_ids", nargs="+", help=gpu_ids_help)
    if amp_help:
        group.add_argument("--amp", choices=AMP_CHOICES, default=amp_default,
                           help=f"{amp_help} (default: {amp_default_help or amp_default})")
