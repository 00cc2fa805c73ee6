"""U-Net discriminator with spectral normalisation, from Real-ESRGAN (Wang et al., 2021).

Official state-dict layout (``conv0``, ``conv1..8`` with ``weight_orig`` / ``weight_u`` / ``weight_v``,
``conv9``), so Real-ESRGAN / HAT / DRCT ``net_d`` checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from restore.archs.layers.spectral_norm import SpectralNormConv2d
from restore.utils.registry import ARCH_REGISTRY


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=0.2, inplace=True)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


@ARCH_REGISTRY.register()
class UNetDiscriminatorSN(nn.Module):
    """Per-pixel realness logits from an RGB image: three stride-2 downsampling convolutions, three bilinear x2
    upsampling stages (with additive U-Net skips), two extra convolutions and a 1-channel head.

    Args:
        num_in_ch: input channels. Default: 3.
        num_feat: base feature channels (the widest stage has 8x). Default: 64.
        skip_connection: add the encoder features to the decoder ones. Default: True.

    Input (B, num_in_ch, H, W), H and W multiples of 8 (required with ``skip_connection``); output (B, 1, H, W)
    logits (no final activation). LeakyReLU(0.2) follows every convolution except the head ``conv9``.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = bool(skip_connection)
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.conv1 = SpectralNormConv2d(f, f * 2, 4, 2, 1, bias=False)
        self.conv2 = SpectralNormConv2d(f * 2, f * 4, 4, 2, 1, bias=False)
        self.conv3 = SpectralNormConv2d(f * 4, f * 8, 4, 2, 1, bias=False)
        self.conv4 = SpectralNormConv2d(f * 8, f * 4, 3, 1, 1, bias=False)
        self.conv5 = SpectralNormConv2d(f * 4, f * 2, 3, 1, 1, bias=False)
        self.conv6 = SpectralNormConv2d(f * 2, f, 3, 1, 1, bias=False)
        self.conv7 = SpectralNormConv2d(f, f, 3, 1, 1, bias=False)
        self.conv8 = SpectralNormConv2d(f, f, 3, 1, 1, bias=False)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_in_ch, H, W) -> (B, 1, H, W) logits."""
        if self.skip_connection and (x.shape[-2] % 8 or x.shape[-1] % 8):
            raise ValueError(
                f"UNetDiscriminatorSN: input height and width must be multiples of 8, got {tuple(x.shape[-2:])}"
            )
        x0 = _act(self.conv0(x))
        x1 = _act(self.conv1(x0))
        x2 = _act(self.conv2(x1))
        x3 = _act(self.conv3(x2))
        x4 = _act(self.conv4(_up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = _act(self.conv5(_up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = _act(self.conv6(_up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = _act(self.conv7(x6))
        out = _act(self.conv8(out))
        return self.conv9(out)
