"""Convolutional feed-forward networks on (B, C, H, W) maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs.layers.pointwise import PointwiseConv2d

__all__ = ["GatedDconvFeedForward", "PointwiseFeedForward"]


class GatedDconvFeedForward(nn.Module):
    """Gated depthwise-conv feed-forward network (Restormer's GDFN).

    ``project_out(gelu(a) * b)`` with ``a, b = dwconv3x3(project_in(x)).chunk(2)``; exact (erf) GELU.
    Hidden width ``h = int(dim * ffn_expansion_factor)``. Keys ``project_in``, ``dwconv``, ``project_out``.

    Args:
        dim: channels C of input and output.
        ffn_expansion_factor: hidden width factor.
        bias: biases on the three convolutions.
    """

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = PointwiseConv2d(dim, hidden * 2, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = PointwiseConv2d(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class PointwiseFeedForward(nn.Module):
    """Two 1x1 convolutions around an exact GELU (SwinIR-style MLP on maps); keys ``body.0``, ``body.2``.

    Args:
        dim: channels C of input and output.
        ffn_expansion_factor: hidden width ``int(dim * ffn_expansion_factor)``.
        bias: biases on both convolutions.
    """

    def __init__(self, dim: int, ffn_expansion_factor: float = 2.0, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.body = nn.Sequential(
            PointwiseConv2d(dim, hidden, bias=bias),
            nn.GELU(),
            PointwiseConv2d(hidden, dim, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.body(x)
