"""Window self-attention module: the parameters of the shared ``window_self_attention`` op (``qkv`` projection,
shifted-window attention, output projection).

State-dict keys (official Swin / HAT / DRCT layout): ``relative_position_bias_table``, optionally
``relative_position_index`` (DRCT stores one per block; HAT passes a model-level index instead),
``qkv.weight``, ``qkv.bias``, ``proj.weight``, ``proj.bias``.
"""

from __future__ import annotations

import torch
from torch import nn

from restore.ops.window_attention import relative_position_index, window_self_attention


class WindowSelfAttention(nn.Module):
    """Multi-head self-attention inside (optionally shifted) ``ws x ws`` windows with a relative-position bias.

    Args:
        dim: channels ``C``; must be divisible by ``num_heads``.
        window_size: ``ws``.
        num_heads: ``h``; head dim ``d = C // h``.
        qkv_bias: learnable bias of the ``qkv`` projection.
        qk_scale: score scale; ``None`` (or 0) means ``d ** -0.5``.
        attn_drop: dropout on attention probabilities (training only).
        proj_drop: dropout after ``proj``.
        store_index: register ``relative_position_index`` as a persistent buffer (DRCT layout).
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        store_index: bool = False,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"WindowSelfAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.attn_drop = float(attn_drop)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        if store_index:
            self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor, shift_size: int = 0, rp_index: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)``; ``H``, ``W`` multiples of ``ws``.

        Args:
            shift_size: cyclic shift of this layer (0 = plain windows).
            rp_index: ``(N, N)`` relative-position index; defaults to the stored buffer.
        """
        index = self.relative_position_index if rp_index is None else rp_index
        out = window_self_attention(
            x,
            self.qkv.weight,
            self.qkv.bias,
            self.proj.weight,
            self.proj.bias,
            num_heads=self.num_heads,
            window_size=self.window_size,
            shift_size=shift_size,
            rpb_table=self.relative_position_bias_table,
            rp_index=index,
            scale=self.scale,
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        return self.proj_drop(out)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"
