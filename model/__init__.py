"""zi2zi networks, spectral-norm switches, losses, configs and checkpoint I/O.

The training step lives in `training.step`; `from model import Zi2ZiModel` (zi2zi-pytorch's
class, `training.zi2zi`) still works, loaded on first use so that inference
(`import model.checkpoint`) does not pull in the training code.
"""
from .config import ModelConfig, TrainConfig, num_downs_for
from .losses import BinaryLoss, CategoryLoss
from .networks import (Discriminator, UNetGenerator, UnetSkipConnectionBlock, build_discriminator,
                       build_generator, get_norm_layer, init_weights)
from .spectral import (apply_spectral_norm, fold_spectral_norm, largest_singular_value,
                       uses_spectral_norm)
from .checkpoint import (CheckpointError, available_steps, export_plain_generator, load_checkpoint,
                         load_generator, model_config_of, resolve_step, save_checkpoint)

def __getattr__(name: str):
    if name == "Zi2ZiModel":  # zi2zi-pytorch's class, over training.step.TrainingStep
        from training.zi2zi import Zi2ZiModel
        return Zi2ZiModel
    raise AttributeError(f"module 'model' has no attribute {name!r}")
