"""zi2zi networks, spectral-norm switches, losses, the architecture config and checkpoint files.

The training step lives in `training.step`, its settings (`TrainConfig` among them) in
`training.config` and its complete checkpoints in `training.checkpoint`; `from model import
Zi2ZiModel` (zi2zi-pytorch's class, `training.zi2zi`) still works, loaded on first use so
that inference (`import model.loading`) does not pull in the training code.
"""
from .config import ModelConfig, num_downs_for
from .losses import BinaryLoss, CategoryLoss
from .networks import (Discriminator, UNetGenerator, UnetSkipConnectionBlock, build_discriminator,
                       build_generator, get_norm_layer, init_weights)
from .spectral import (apply_spectral_norm, fold_spectral_norm, largest_singular_value,
                       uses_spectral_norm)
from .checkpoint import CheckpointError, Checkpoints, available_steps, resolve_step
from .loading import load_generator, model_config_of
from .plain import export_plain_generator

__all__ = ["ModelConfig", "num_downs_for", "BinaryLoss", "CategoryLoss", "Discriminator",
           "UNetGenerator", "UnetSkipConnectionBlock", "build_discriminator", "build_generator", "get_norm_layer",
           "init_weights", "apply_spectral_norm", "fold_spectral_norm", "largest_singular_value",
           "uses_spectral_norm", "CheckpointError", "Checkpoints", "available_steps", "resolve_step", "load_generator",
           "model_config_of", "export_plain_generator", "Zi2ZiModel"]


def __getattr__(name: str):
    if name == "Zi2ZiModel":  # zi2zi-pytorch's class, over training.step.TrainingStep
        from training.zi2zi import Zi2ZiModel
        return Zi2ZiModel
    raise AttributeError(f"module 'model' has no attribute {name!r}")
