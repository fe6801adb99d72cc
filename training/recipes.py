"""Presets: flag values chosen by measurement, filled in where the command line gave none.

    flags, notes = apply_recipe(flags)     # train.py, before anything reads the flags

`--recipe few_shot` fine-tunes a base model (`--init_from`) on a new style from a few
hundred glyphs. Its values come from the study in docs/few_shot.md; a flag given on the
command line always wins over the recipe's value, and every value the recipe sets is
printed. A resumed run keeps its saved settings, so the recipe is given on the first run only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from data.obj import scan_obj
from utils.errors import UserError
from utils.experiment import Experiment

RECIPES = ("few_shot",)


@dataclass(frozen=True)
class FewShot:
    """docs/few_shot.md's study (64 px, widths 32, a base of 11 Debian fonts) chose these."""
    lr: float = 0.001               # the base's own rate
    freeze_encoder: bool = False    # a frozen encoder: held-out SSIM -0.012 [-0.020, -0.003] at N = 300
    min_steps: int = 200            # held-out SSIM levels off in the run's last quarter at N = 300 and 1000
    steps_per_glyph: float = 0.4    # (and from the first quarter at N = 50)
    max_steps: int = 4000
    checkpoints: int = 4            # checkpoints (and sample grids) over the run

    def steps(self, glyphs: int) -> int:
        return min(self.max_steps, round(self.min_steps + self.steps_per_glyph * glyphs))


FEW_SHOT = FewShot()


def apply_recipe(flags: dict) -> tuple[dict, list[str]]:
    """`flags` with the recipe's values where none was given, and a note for each value set."""
    name = flags.get("recipe")
    if name is None:
        return flags, []
    if flags.get("resume") is not None:
        raise UserError(f"--recipe {name} sets up a new run; a resumed run keeps its saved settings, "
                        f"so leave --recipe out with --resume")
    if flags.get("init_from") is None:
        raise UserError(f"--recipe {name} fine-tunes a base model: give --init_from BASE_DIR[:best] too "
                        f"(scripts/train_base.sh trains one)")
    from training.start import parse_init_from
    from model.loading import model_config_of
    had = model_config_of(*parse_init_from(flags["init_from"])).embedding_num
    data_dir = Experiment.at(flags.get("experiment_dir"), flags.get("data_dir")).data
    train_obj = data_dir / "train.obj"
    if not train_obj.is_file():
        raise UserError(f"{train_obj}: no such file; --recipe {name} sizes the run by the glyphs in it "
                        f"(package.py writes it)")
    counts = Counter(scan_obj(train_obj).labels)
    new = {label: n for label, n in counts.items() if label >= had}
    trained = new or counts   # a base style can be fine-tuned too, when no label is new
    if flags.get("fine_tune") is not None:
        trained = {label: counts.get(label, 0) for label in flags["fine_tune"]}
    glyphs = sum(trained.values())
    chosen = {
        "embedding_num": max(had, max(counts) + 1),
        "fine_tune": tuple(sorted(trained)),
        "lr": FEW_SHOT.lr,
        "freeze_encoder": FEW_SHOT.freeze_encoder,
        "max_steps": FEW_SHOT.steps(glyphs),
        "epoch": 1_000_000,   # the step count ends the run
    }
    val_obj = data_dir / "val.obj"
    if val_obj.is_file() and val_obj.stat().st_size and flags.get("eval_steps") != 0:
        # the writer's held-out glyphs choose the checkpoint
        chosen["keep_best"] = "ssim"
    steps = flags.get("max_steps") or chosen["max_steps"]
    interval = max(1, steps // FEW_SHOT.checkpoints)
    chosen.update(checkpoint_steps=interval, sample_steps=interval)
    out = dict(flags)
    notes = []
    for key, value in chosen.items():
        if out.get(key) is None:
            out[key] = value
            notes.append(f"--{key} {_show(value)}")
    why = f"{glyphs} glyphs of label{'s' if len(trained) > 1 else ''} {_show(tuple(sorted(trained)))}"
    return out, [f"note: --recipe {name} ({why}) sets " + ", ".join(notes) if notes else
                 f"note: --recipe {name}: every value it sets was given on the command line"]


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)
