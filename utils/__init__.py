"""Small helpers shared by the scripts, `model/` and `data/`."""
from .errors import UserError
