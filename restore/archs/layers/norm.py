"""Layer normalisation over the channel dimension of (B, C, H, W) feature maps (Restormer-style)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelLayerNorm", "ChannelNormAffine"]

_EPS = 1e-5


class ChannelNormAffine(nn.Module):
    """Per-channel scale (and optional shift) of :class:`ChannelLayerNorm`; owns ``weight`` and ``bias``.

    Args:
        dim: number of channels C.
        bias: ``True`` for the mean-subtracting "WithBias" form, ``False`` for "BiasFree".
    """

    def __init__(self, dim: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x ``(B, C, H, W)`` across C at every pixel, then scale (and shift).

        WithBias: ``(x - mean) / sqrt(var + 1e-5) * weight + bias``.
        BiasFree: ``x / sqrt(var + 1e-5) * weight`` (var is still taken around the mean; x is not centred).
        var is the biased variance. Half-precision inputs are normalised in float32 and returned in their dtype.
        """
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        centred = work - work.mean(dim=1, keepdim=True)
        inv_std = torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + _EPS)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.bias is None:
            out = work * inv_std * self.weight.view(shape)
        else:
            out = torch.addcmul(self.bias.view(shape), centred * inv_std, self.weight.view(shape))
        return out.to(x.dtype)


class ChannelLayerNorm(nn.Module):
    """LayerNorm across the channels of a ``(B, C, H, W)`` map; state-dict keys ``body.weight`` (+ ``body.bias``).

    Args:
        dim: number of channels C.
        bias_free: ``True`` for the BiasFree variant (no shift, no centring of the numerator).
    """

    def __init__(self, dim: int, bias_free: bool = False) -> None:
        super().__init__()
        self.body = ChannelNormAffine(dim, bias=not bias_free)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.body(x)
