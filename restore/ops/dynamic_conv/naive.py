"""Reference per-pixel dynamic depthwise convolution: unfold every K x K neighbourhood, weight, sum.

Materialises a (B, C, K, K, H, W) tensor, K^2 times the input: the oracle and benchmark baseline only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Naive backend of :func:`restore.ops.dynamic_depthwise_conv`; arguments already validated.

    Args:
        x: ``(B, C, H, W)``.
        weight: ``(B, G, K, K, H, W)``, C divisible by G, K odd.

    Returns:
        ``(B, C, H, W)``:
        ``out[b, c, y, x] = sum_{i,j} weight[b, c // (C // G), i, j, y, x] * xpad[b, c, y + i, x + j]``.
    """
    batch, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    cols = F.unfold(x, size, dilation=1, padding=(size - 1) // 2, stride=1)
    cols = cols.view(batch, channels, size, size, height, width)
    return (cols * weight.repeat_interleave(channels // groups, dim=1)).sum(dim=(2, 3))
