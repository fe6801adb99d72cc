"""Glyph data: charsets, rendering, pairs, packaging, .obj files, datasets and loaders.

`from data import DatasetFromObj` is zi2zi-pytorch's import; it is loaded on first use,
so font2img.py and package.py do not import torch.
"""


def __getattr__(name: str):
    if name == "DatasetFromObj":
        from .dataset import DatasetFromObj
        return DatasetFromObj
    raise AttributeError(f"module 'data' has no attribute {name!r}")
