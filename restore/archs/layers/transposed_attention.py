"""Multi-head transposed (channel-to-channel) self-attention blocks shared by the Restormer-family networks.

The attention matrix relates channels, not pixels: (C, C) per head with C = dim // heads, so its cost is linear
in the number of pixels. The arithmetic lives in :func:`restore.ops.sparse_channel_attention`; these modules
own the projections and, for DLGSANet, the test-time local converter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from restore.archs.layers.pointwise import PointwiseConv2d
from restore.archs.layers.tlc import tlc_apply, tlc_membership
from restore.ops.sparse_channel_attention import sparse_channel_attention
from restore.ops.sparse_channel_attention.torch_impl import attention_matrix

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
        self.qkv = PointwiseConv2d(dim, dim * 3, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = PointwiseConv2d(dim, dim, bias=bias)

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
        elif torch.compiler.is_exporting() and not all(isinstance(size, int) for size in qkv.shape):
            out = self.attend_windows_by_sums(qkv)
        else:
            out = tlc_apply(lambda windows: self.attend(windows, self.mode), qkv, self.tlc_kernel)
        return self.project_out(out)

    def attend_windows_by_sums(self, qkv: torch.Tensor) -> torch.Tensor:
        """TLC attention for graphs with symbolic height and width (ONNX export), ``(B, 3 dim, H, W)`` ->
        ``(B, dim, H, W)``, without moving windows into the batch.

        The attention of a window needs only sums over its pixels (``q k^T`` and the squared norms), and its output
        is linear in v, so with the 0/1 window membership matrices ``R`` (rows) and ``Cm`` (columns)::

            S_w = (R (q k^T per pixel) Cm^T) / (|q|_w |k|_w^T) * temperature,   A_w = act(S_w)
            out(p) = (sum of A_w over the windows covering p) v(p) / (number of such windows)

        Equal to ``tlc_apply`` of ``attend`` up to float summation order; every step is a product or a matrix
        multiplication, which ONNX Runtime runs far faster than gathering and transposing window batches.
        """
        batch, channels3, height, width = qkv.shape
        heads, dim = self.num_heads, channels3 // 3
        q, k, v = qkv.reshape(batch, 3, heads, dim // heads, height, width).unbind(1)  # (B, h, d, H, W)
        rows = tlc_membership(height, self.tlc_kernel, qkv.device, qkv.dtype)  # (nr, H)
        cols = tlc_membership(width, self.tlc_kernel, qkv.device, qkv.dtype).t()  # (W, nc)

        def window_sums(t: torch.Tensor) -> torch.Tensor:  # (..., H, W) -> (..., nr, nc)
            return rows @ (t @ cols)

        gram = window_sums(q.unsqueeze(3) * k.unsqueeze(2))  # (B, h, d, d, nr, nc)
        q_norm = window_sums(q * q).sqrt().clamp_min(1e-12)  # (B, h, d, nr, nc)
        k_norm = window_sums(k * k).sqrt().clamp_min(1e-12)
        gram = gram.permute(0, 1, 4, 5, 2, 3)  # (B, h, nr, nc, d, d)
        norms = q_norm.permute(0, 1, 3, 4, 2).unsqueeze(-1) * k_norm.permute(0, 1, 3, 4, 2).unsqueeze(-2)
        scores = gram / norms * self.temperature.view(1, heads, 1, 1, 1, 1).to(qkv.dtype)
        matrices = attention_matrix(scores, self.mode, None).permute(0, 1, 4, 5, 2, 3)  # (B, h, d, d, nr, nc)
        per_pixel = rows.t() @ matrices @ cols.t()  # (B, h, d, d, H, W): sum over the covering windows
        out = (per_pixel * v.unsqueeze(2)).sum(dim=3)  # (B, h, d, H, W)
        coverage = rows.sum(0)[:, None] * cols.sum(1)[None, :]
        return (out / coverage).reshape(batch, dim, height, width)

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, mode={self.mode!r}, tlc_flag={self.tlc_flag}, tlc_kernel={self.tlc_kernel}"
