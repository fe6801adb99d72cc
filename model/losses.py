"""zi2zi's losses. Targets are built on the logits' device, so no `.cuda()` is needed."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CategoryLoss(nn.Module):
    """BCE-with-logits of the category logits against the one-hot style label."""

    def __init__(self, category_num: int):
        super().__init__()
        self.category_num = category_num

    def forward(self, category_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(labels, self.category_num).to(category_logits.dtype)
        return F.binary_cross_entropy_with_logits(category_logits, target)


class BinaryLoss(nn.Module):
    """BCE-with-logits against all ones (`real=True`) or all zeros."""

    def __init__(self, real: bool):
        super().__init__()
        self.real = real

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        target = torch.ones_like(logits) if self.real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
