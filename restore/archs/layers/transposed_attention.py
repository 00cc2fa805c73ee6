"""Multi-head transposed (channel-to-channel) self-attention blocks shared by the Restormer-family networks.

The attention matrix relates channels, not pixels: (C, C) per head with C = dim // heads, so its cost is linear
in the number of pixels. The arithmetic lives in :func:`restore.ops.sparse_channel_attention`; these modules
own the projections and, for DLGSANet, the test-time local converter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from restore.archs.layers.tlc import tlc_apply
from restore.ops.sparse_channel_attention import sparse_channel_attention

__all__ = ["TransposedAttentionProjections", "WindowedTransposedAttention"]


class TransposedAttentionProjections(nn.Module):
    """Projections around channel attention: ``qkv`` (1x1), ``qkv_dwconv`` (3x3 depthwise), ``project_out`` (1x1).

    Owns ``temperature`` ``(heads, 1, 1)`` (initialised to 1). Subclasses choose the attention ``mode``.

    Args:
        dim: channels of input and output; divisible by ``num_heads``.
        num_heads: heads h (C = dim // h channels each).
        bias: biases on the three convolutions.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"channel attention: dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, 3 dim, H, W): q, k, v stacked along channels."""
        return self.qkv_dwconv(self.qkv(x))

    def attend(
        self, qkv: torch.Tensor, mode: str, topk_weights: Sequence[torch.Tensor] | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention over the tokens of ``qkv`` ``(B, 3 dim, H, W)`` -> ``(B, dim, H, W)`` (before project_out)."""
        batch, channels3, height, width = qkv.shape
        dim = channels3 // 3
        q, k, v = qkv.reshape(batch, 3, self.num_heads, dim // self.num_heads, height * width).unbind(1)
        out = sparse_channel_attention(q, k, v, self.temperature, mode=mode, topk_weights=topk_weights)
        return out.reshape(batch, dim, height, width)


class WindowedTransposedAttention(TransposedAttentionProjections):
    """Channel attention with an activation ``mode`` and, in eval mode, TLC windows of ``tlc_kernel`` pixels.

    The projections always see the whole map (the 3x3 depthwise conv reads real neighbours across window
    borders); only the attention itself runs per window. Training mode, or ``tlc_flag=False``, attends over the
    whole map.

    Args:
        dim, num_heads, bias: see :class:`TransposedAttentionProjections`.
        mode: ``"softmax"``, ``"relu"``, ``"gelu"``, ``"sigmoid"`` or ``"linear"``
            (see :func:`restore.ops.sparse_channel_attention`).
        tlc_flag: use TLC in eval mode.
        tlc_kernel: TLC window size in pixels.
    """

    def __init__(
        self, dim: int, num_heads: int, bias: bool, mode: str, tlc_flag: bool = True, tlc_kernel: int = 48
    ) -> None:
        super().__init__(dim, num_heads, bias)
        self.mode = mode
        self.tlc_flag = tlc_flag
        self.tlc_kernel = tlc_kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, dim, H, W)."""
        qkv = self.project_qkv(x)
        if self.training or not self.tlc_flag:
            out = self.attend(qkv, self.mode)
        else:
            out = tlc_apply(lambda windows: self.attend(windows, self.mode), qkv, self.tlc_kernel)
        return self.project_out(out)

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, mode={self.mode!r}, tlc_flag={self.tlc_flag}, tlc_kernel={self.tlc_kernel}"
