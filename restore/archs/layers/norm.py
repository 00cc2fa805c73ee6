"""Layer normalisation over the channel dimension of (B, C, H, W) feature maps (Restormer-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelLayerNorm", "ChannelNormAffine"]

_EPS = 1e-5


def _layer_norm_channels_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The WithBias norm as traced for an exported graph: channels moved last, ``layer_norm`` over them, moved back.

    ONNX's ``LayerNormalization`` (opset 17) normalises trailing axes only. Spelled out over axis 1 the norm is two
    strided ``ReduceMean`` and six elementwise passes, each a separate kernel in ONNX Runtime; with the channels
    last it is one fused kernel between two ``Transpose`` copies. Whether that pays depends on the network: the
    whole DLGSANet-light graph runs in 0.96x (64 x 64) and 0.87x (128 x 128) of the time with the spelled-out
    norms, DRSformer's in 1.10x (128 x 128; one thread, ``docs/benchmarks.md``), hence opt-in per network. Same
    arithmetic: biased variance around the mean, ``1e-5`` inside the square root.
    """
    out = F.layer_norm(x.movedim(1, -1), (x.shape[1],), weight.to(x.dtype), bias.to(x.dtype), _EPS)
    return out.movedim(-1, 1)


class ChannelNormAffine(nn.Module):
    """Per-channel scale (and optional shift) of :class:`ChannelLayerNorm`; owns ``weight`` and ``bias``.

    Args:
        dim: number of channels C.
        bias: ``True`` for the mean-subtracting "WithBias" form, ``False`` for "BiasFree".
        export_channels_last: WithBias only: exported graphs normalise with the channels moved last
            (:func:`_layer_norm_channels_last`); eager PyTorch is unaffected.
    """

    def __init__(self, dim: int, bias: bool = True, export_channels_last: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        self.export_channels_last = export_channels_last and bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise x ``(B, C, H, W)`` across C at every pixel, then scale (and shift).

        WithBias: ``(x - mean) / sqrt(var + 1e-5) * weight + bias``.
        BiasFree: ``x / sqrt(var + 1e-5) * weight`` (var is still taken around the mean; x is not centred).
        var is the biased variance. Half-precision inputs are normalised in float32 and returned in their dtype.
        """
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if self.export_channels_last and torch.compiler.is_exporting():
            return _layer_norm_channels_last(work, self.weight, self.bias).to(x.dtype)
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
        export_channels_last: see :class:`ChannelNormAffine` (DLGSANet: faster in ONNX Runtime; DRSformer: slower).
    """

    def __init__(self, dim: int, bias_free: bool = False, export_channels_last: bool = False) -> None:
        super().__init__()
        self.body = ChannelNormAffine(dim, bias=not bias_free, export_channels_last=export_channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.body(x)
