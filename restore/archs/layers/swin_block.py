"""Swin transformer block shared by HAT (HAB, with a convolutional branch) and DRCT.

``x = x + attn(norm1(x)) [+ conv_scale * conv_block(norm1(x))];  x = x + mlp(norm2(x))``

State-dict keys: ``norm1``, ``attn.*`` (see ``WindowSelfAttention``), ``conv_block.*`` (HAT only), ``norm2``,
``mlp.fc1``, ``mlp.fc2`` -- the official HAB / SwinTransformerBlock layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from restore.archs.layers.drop_path import DropPath
from restore.archs.layers.mlp import Mlp
from restore.archs.layers.window_attention import WindowSelfAttention


def effective_window(input_resolution: Sequence[int], window_size: int, shift_size: int) -> tuple[int, int]:
    """Official rule: when the training resolution fits in one window, use that size and no shift.

    Returns:
        ``(window_size, shift_size)``: unchanged if ``min(input_resolution) > window_size``, else
        ``(min(input_resolution), 0)``.
    """
    if min(input_resolution) <= window_size:
        return int(min(input_resolution)), 0
    return window_size, shift_size


def run_block(block: nn.Module, *args: Any, use_checkpoint: bool = False) -> torch.Tensor:
    """Call ``block(*args)``, through activation checkpointing when training with gradients and asked to."""
    if use_checkpoint and block.training and torch.is_grad_enabled():
        return checkpoint(block, *args, use_reentrant=False)
    return block(*args)


class SwinBlock(nn.Module):
    """Pre-norm window-attention block on ``(B, L, C)`` tokens of an ``H x W`` map (``L = H*W``).

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        window_size: window side (already reduced by ``effective_window`` if needed).
        shift_size: cyclic shift (0 for plain windows).
        mlp_ratio: MLP hidden width ``int(C * mlp_ratio)``.
        qkv_bias, qk_scale, attn_drop: see ``WindowSelfAttention``.
        drop: dropout after ``attn.proj`` and inside the MLP.
        drop_path: stochastic-depth probability of both residual branches.
        norm_layer: normalisation class called as ``norm_layer(C)``.
        store_index: keep ``attn.relative_position_index`` as a buffer (DRCT) instead of receiving it (HAT).
        conv_block: optional ``(B, C, H, W) -> (B, C, H, W)`` branch on ``norm1(x)`` (HAT's CAB).
        conv_scale: weight of the convolutional branch (a plain float).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        store_index: bool = False,
        conv_block: nn.Module | None = None,
        conv_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"SwinBlock: shift_size must be in [0, {window_size}), got {shift_size}")
        self.dim = dim
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = norm_layer(dim)
        self.attn = WindowSelfAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop, store_index=store_index
        )
        self.conv_block = conv_block
        self.conv_scale = conv_scale
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rp_index: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, L, C)``; ``x_size = (H, W)`` multiples of the window size."""
        h, w = x_size
        b, length, c = x.shape
        normed = self.norm1(x).view(b, h, w, c)
        attn = self.attn(normed, self.shift_size, rp_index).view(b, length, c)
        if self.conv_block is None:
            x = x + self.drop_path(attn)
        elif torch.compiler.is_exporting() and hasattr(self.conv_block, "scaled_channels_last"):
            conv = self.conv_block.scaled_channels_last(normed, self.conv_scale)  # the layout graphs run best
            x = x + self.drop_path(attn) + conv.view(b, length, c)
        else:
            conv = self.conv_block(normed.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, length, c)
            x = x + self.drop_path(attn) + conv * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, shift_size={self.shift_size}"
