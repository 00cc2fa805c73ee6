"""Stochastic depth: drop a residual branch per sample during training."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Zero the whole branch of a sample with probability ``drop_prob`` (scaling survivors by ``1/(1-p)``).

    Identity in eval mode or with ``drop_prob == 0``. Holds no parameters.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ...)`` -> same shape."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        survivors = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x / keep * survivors

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
