"""Transformer feed-forward block: ``fc1 -> GELU -> dropout -> fc2 -> dropout`` (keys ``fc1``, ``fc2``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def on_token_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` for a per-token ``fn`` of tokens ``(..., C_in) -> (..., C_out)``. In exported graphs the tokens are
    flattened to 2-D rows first, so that ONNX writes every linear layer inside ``fn`` as one ``Gemm`` with the bias
    inside, instead of a ``MatMul`` and an ``Add`` (a separate pass over the output in ONNX Runtime)."""
    if torch.compiler.is_exporting() and x.dim() > 2:
        out = fn(x.reshape(-1, x.shape[-1]))
        return out.reshape(*x.shape[:-1], out.shape[-1])
    return fn(x)


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
        return on_token_rows(self._per_token, x)

    def _per_token(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
