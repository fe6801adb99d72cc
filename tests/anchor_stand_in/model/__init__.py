from .model import Zi2ZiModel
