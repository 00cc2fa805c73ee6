"""Conversions between feature maps ``(B, C, H, W)`` and token sequences ``(B, L, C)``, ``L = H*W``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H*W, C)`` (a view)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_image(x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)`` (a channels-last view when ``x`` is contiguous)."""
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, x_size[0], x_size[1])


class PatchEmbed(nn.Module):
    """Flatten a feature map into tokens, optionally followed by a norm (key ``norm``; patch size 1)."""

    def __init__(self, embed_dim: int, norm_layer: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, H*W, C)``."""
        x = image_to_tokens(x)
        return self.norm(x) if self.norm is not None else x
