"""zi2zi networks, spectral-norm switches, training step and checkpoints."""
from .config import ModelConfig, TrainConfig, num_downs_for
from .losses import BinaryLoss, CategoryLoss
from .networks import (Discriminator, UNetGenerator, UnetSkipConnectionBlock, build_discriminator,
                       build_generator, get_norm_layer, init_weights)
from .spectral import (apply_spectral_norm, fold_spectral_norm, largest_singular_value,
                       uses_spectral_norm)
from .zi2zi import NonFiniteLossError, Zi2ZiModel
from .checkpoint import (CheckpointError, available_steps, export_plain_generator, load_checkpoint,
                         load_generator, model_config_of, resolve_step, save_checkpoint)
