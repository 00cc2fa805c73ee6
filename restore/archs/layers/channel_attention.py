"""RCAN-style channel attention and HAT's channel-attention block (CAB)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate: ``x * sigmoid(conv(relu(conv(avgpool(x)))))``.

    Keys: ``attention.1`` (``Conv2d(C, C // squeeze_factor, 1)``),
    ``attention.3`` (``Conv2d(C // squeeze_factor, C, 1)``).
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        squeezed = num_feat // squeeze_factor
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, squeezed, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, num_feat, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel-attention block: ``conv3x3 (C -> C/compress) -> GELU -> conv3x3 (-> C) -> ChannelAttention``.

    Keys: ``cab.0``, ``cab.2``, ``cab.3.attention.1``, ``cab.3.attention.3``.
    """

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30) -> None:
        super().__init__()
        hidden = num_feat // compress_ratio
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, hidden, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(hidden, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        return self.cab(x)

    def scaled_channels_last(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """``scale * self(x)`` from and to the token layout: ``(B, H, W, C)`` -> ``(B, H, W, C)``.

        The layout exported graphs trace: the features return to channels-last right after the last convolution
        (ONNX Runtime folds that transpose into its own layout conversion) and the ``(B, 1, 1, C)`` gate takes
        ``scale``, so no pass over the features is spent on either. Equal to the forward up to float rounding.
        """
        conv1, gelu, conv2, gate = self.cab
        features = conv2(gelu(conv1(x.permute(0, 3, 1, 2))))  # (B, C, H, W)
        weights = gate.attention(features).permute(0, 2, 3, 1) * scale  # (B, 1, 1, C)
        return features.permute(0, 2, 3, 1) * weights
