"""Transformer feed-forward block: ``fc1 -> GELU -> dropout -> fc2 -> dropout`` (keys ``fc1``, ``fc2``)."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """Per-token two-layer perceptron.

    Args:
        in_features: input channels ``C``.
        hidden_features: hidden width (default ``C``); the official blocks use ``int(C * mlp_ratio)``.
        out_features: output channels (default ``C``).
        act_layer: activation class (default exact-erf ``nn.GELU``).
        drop: dropout probability after the activation and after ``fc2``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C_in)`` -> ``(..., C_out)``."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
