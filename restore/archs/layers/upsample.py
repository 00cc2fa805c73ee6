"""Sub-pixel (pixel-shuffle) upsampler with the BasicSR key layout ``upsample.0``, ``upsample.2``, ..."""

from __future__ import annotations

from torch import nn


class Upsample(nn.Sequential):
    """``(B, num_feat, H, W)`` -> ``(B, num_feat, sH, sW)`` by 3x3 convolutions and ``PixelShuffle``.

    ``scale = 2**n``: ``n`` x [``Conv2d(num_feat, 4*num_feat, 3, 1, 1)``, ``PixelShuffle(2)``];
    ``scale = 3``: [``Conv2d(num_feat, 9*num_feat, 3, 1, 1)``, ``PixelShuffle(3)``]; ``scale = 1``: empty (identity).

    Raises:
        ValueError: any other scale.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        stages: list[nn.Module] = []
        if scale >= 1 and scale & (scale - 1) == 0:
            for _ in range(scale.bit_length() - 1):
                stages += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            stages += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"Upsample: scale {scale} is not supported; expected a power of 2 or 3")
        super().__init__(*stages)
