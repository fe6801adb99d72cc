import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Files made by running zi2zi-pytorch itself: the compatibility contract's fixtures.
REFERENCE = ROOT / "tests" / "reference"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def reference_dir() -> Path:
    return REFERENCE


def tiny_config(**overrides):
    from model import ModelConfig
    values = dict(input_nc=1, embedding_num=4, embedding_dim=16, ngf=8, ndf=8, image_size=32)
    values.update(overrides)
    return ModelConfig(**values)


def tiny_batches(n: int, batch: int = 4, size: int = 32, embedding_num: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        labels = torch.randint(0, embedding_num, (batch,), generator=g)
        real_A = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
        real_B = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
        out.append((labels, real_A, real_B))
    return out
