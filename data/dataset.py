"""zi2zi's dataset: `(label, target, source)` tensors in [-1, 1] from an `.obj` file.

    dataset = DatasetFromObj("experiment/data/train.obj", input_nc=1, augment=True)
    label, target, source = dataset[0]   # feed source as real_A, target as real_B

Augmentation is zi2zi's: one random enlarge-and-crop shared by both halves (up to
5%, or 20% with `bold`), an occasional 180 degree turn (`rotate`) and an occasional
Gaussian blur (`blur`), each applied identically to target and source.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .augment import augment_pair
from .obj import ObjFormatError, read_obj

def signed_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1], the models' range: the one conversion, so every data path
    (PIL items, the fast loader's batches, evaluation) gives the same bits. A multiply by 1/127.5,
    cheaper on a GPU than a division, differs from x / 127.5 in the last bit for 111 of the 256
    values; the training tests' tolerances were measured with this one."""
    return pixels.float().mul_(1 / 127.5).sub_(1.0)


def to_tensor(img: Image.Image, input_nc: int) -> torch.Tensor:
    """uint8 grayscale PIL image -> (input_nc, H, W) float tensor in [-1, 1]."""
    array = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    tensor = signed_unit(array).unsqueeze(0)
    return tensor.expand(input_nc, -1, -1).contiguous() if input_nc > 1 else tensor


def split_pair(img: Image.Image) -> tuple[Image.Image, Image.Image]:
    """A paired image -> (target, source): target is the left half."""
    w, h = img.size
    half = w // 2
    return img.crop((0, 0, half, h)), img.crop((half, 0, w, h))


class DatasetFromObj(Dataset):
    """Records of one `.obj` file, decoded and augmented per item (zi2zi's data path).

    As zi2zi-pytorch's: items are `(label - start_from, target, source)`, so a model
    trained on labels 0..k can read an .obj whose styles are numbered from `start_from`.
    """

    def __init__(self, obj_path, input_nc: int = 1, augment: bool = False, bold: bool = False,
                 rotate: bool = False, blur: bool = False, start_from: int = 0):
        if input_nc not in (1, 3):
            raise ValueError(f"input_nc must be 1 or 3; got {input_nc}")
        self.obj_path = obj_path
        self.records = read_obj(obj_path)
        below = [(i, r.label) for i, r in enumerate(self.records) if r.label < start_from]
        if below:
            raise ObjFormatError(f"{obj_path}: record {below[0][0]} has label {below[0][1]}, below --start_from "
                                 f"{start_from} (labels are shifted down by it)")
        self.input_nc = input_nc
        self.augment, self.bold, self.rotate, self.blur = augment, bold, rotate, blur
        self.start_from = start_from

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[int]:
        return [r.label - self.start_from for r in self.records]

    @property
    def image_size(self) -> int:
        return self.records[0].height

    def decode(self, index: int) -> Image.Image:
        try:
            with Image.open(io.BytesIO(self.records[index].image_bytes)) as img:
                return img.convert("L")
        except OSError as err:
            raise ObjFormatError(f"{self.obj_path}: record {index} does not "
                                 f"decode ({err})") from None

    def __getitem__(self, index: int):
        target, source = split_pair(self.decode(index))
        if self.augment:
            target, source = augment_pair(target, source, self.bold, self.rotate, self.blur)
        return (self.records[index].label - self.start_from, to_tensor(target, self.input_nc),
                to_tensor(source, self.input_nc))
