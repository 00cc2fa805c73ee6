"""Batched, optionally differentiable JPEG compression (BasicSR's ``DiffJPEG``), vectorised over the batch.

The codec is the baseline JPEG pipeline without entropy coding: RGB -> YCbCr (full-range BT.601), 4:2:0 chroma
by 2x2 averaging, 8x8 orthonormal DCT-II, quantisation by the standard tables scaled by the libjpeg quality
factor, rounding, and the inverse steps (chroma upsampled by pixel repetition). It follows BasicSR's
conventions exactly, including two that differ from libjpeg: the tables are applied transposed (entry [u, v] is
the standard table's [v][u], u being the vertical frequency) and sizes are zero-padded to multiples of 16.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Standard JPEG (ITU T.81 Annex K) quantisation tables, rows = vertical frequency.
_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_CORNER = ((17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56, 99), (47, 66, 99, 99))

_RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCBCR_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def quality_to_factor(quality: float | torch.Tensor) -> float | torch.Tensor:
    """libjpeg's table scale for a quality in (0, 100): ``50 / q`` below 50, else ``2 - q / 50``.

    Computed as ``(5000 / q) / 100`` or ``(200 - 2 q) / 100`` (float32 for tensors), as BasicSR does.
    """
    if isinstance(quality, torch.Tensor):
        q = quality.float()
        return torch.where(q < 50, 5000.0 / q, 200.0 - q * 2) / 100.0
    return (5000.0 / quality if quality < 50 else 200.0 - quality * 2) / 100.0


def _dct_matrix() -> torch.Tensor:
    """Orthonormal 8-point DCT-II matrix ``C[u, x] = a(u) / 2 * cos((2x + 1) u pi / 16)``, ``a(0) = 1/sqrt(2)``."""
    u = torch.arange(8, dtype=torch.float64).view(8, 1)
    x = torch.arange(8, dtype=torch.float64).view(1, 8)
    alpha = torch.where(u == 0, 1 / math.sqrt(2), 1.0)
    return 0.5 * alpha * torch.cos((2 * x + 1) * u * math.pi / 16)


def _diff_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding with a cubic residual, ``round(x) + (x - round(x))^3``, whose gradient is not zero everywhere."""
    r = torch.round(x)
    return r + (x - r) ** 3


class DiffJPEG(nn.Module):
    """JPEG-compress a batch of RGB images, each with its own quality.

    Args:
        differentiable: round with ``round(x) + (x - round(x))^3`` (gradients reach the input) instead of
            ``torch.round``. Default: True.

    The module has no parameters and no state-dict entries; its constant tables follow ``.to(device)``.
    """

    def __init__(self, differentiable: bool = True) -> None:
        super().__init__()
        self.differentiable = bool(differentiable)
        chroma = torch.full((8, 8), 99.0)
        chroma[:4, :4] = torch.tensor(_CHROMA_CORNER, dtype=torch.float64)
        tables = torch.stack([torch.tensor(_LUMA, dtype=torch.float64).T, chroma.double().T])
        self.register_buffer("tables", tables.float(), persistent=False)  # (2, 8, 8): luma, chroma
        self.register_buffer("dct64", torch.kron(_dct_matrix(), _dct_matrix()).float(), persistent=False)
        self.register_buffer("rgb_to_ycbcr", torch.tensor(_RGB_TO_YCBCR).float(), persistent=False)
        self.register_buffer("ycbcr_to_rgb", torch.tensor(_YCBCR_TO_RGB).float(), persistent=False)

    def _factor(self, quality: float | torch.Tensor, batch: int, device: torch.device) -> float | torch.Tensor:
        if isinstance(quality, torch.Tensor):
            if quality.dim() > 1 or (quality.dim() == 1 and quality.numel() not in (1, batch)):
                shape = tuple(quality.shape)
                raise ValueError(f"DiffJPEG: quality must be a number or a ({batch},) tensor, got shape {shape}")
            factor = quality_to_factor(quality.to(device))
            return factor.reshape(-1, 1, 1, 1, 1, 1)  # times the (8, 8) table: one per sample and block
        if not 0 < quality < 100:
            raise ValueError(f"DiffJPEG: quality must lie in (0, 100), got {quality!r}")
        return quality_to_factor(float(quality))

    def _codec(self, plane: torch.Tensor, table: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
        """Compress and decompress (N, P, H, W) planes (H, W multiples of 8) blockwise; ``factor`` per sample.

        Each 8x8 block is flattened row-major to 64 values, so its 2-D DCT ``C X C^T`` is one product with
        ``kron(C, C)``, a single large matrix multiplication for the whole batch.
        """
        n, p, h, w = plane.shape
        blocks = (plane - 128).view(n, p, h // 8, 8, w // 8, 8).transpose(3, 4).reshape(n, p, h // 8, w // 8, 64)
        dct = self.dct64.to(plane.dtype)
        step = (table.to(plane.dtype) * factor).flatten(-2)  # (64,) or (N, 1, 1, 1, 64)
        quant = (blocks @ dct.T) / step
        quant = _diff_round(quant) if self.differentiable else torch.round(quant)
        restored = (quant * step) @ dct + 128
        return restored.view(n, p, h // 8, w // 8, 8, 8).transpose(3, 4).reshape(n, p, h, w)

    def forward(self, x: torch.Tensor, quality: float | torch.Tensor) -> torch.Tensor:
        """Compress ``x``.

        Args:
            x: (B, 3, H, W) RGB in [0, 1] (any size: padded with zeros to multiples of 16, cropped back).
            quality: a number in (0, 100) for the whole batch, or a (B,) tensor of per-image qualities (not
                modified; unlike BasicSR, which overwrites it with the table factors). A tensor quality of 100
                gives a zero factor, hence NaN, as in BasicSR.

        Returns:
            (B, 3, H, W) compressed image in [0, 1], in ``x``'s dtype (computed in float32, or float64 for float64).
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"DiffJPEG: x must be (B, 3, H, W) RGB, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        work = x if x.dtype == torch.float64 else x.float()
        factor = self._factor(quality, b, x.device)
        if isinstance(factor, torch.Tensor):
            factor = factor.to(work.dtype)
        pad_h, pad_w = -h % 16, -w % 16
        work = F.pad(work, (0, pad_w, 0, pad_h)) * 255
        ycc = torch.einsum("dc,bchw->bdhw", self.rgb_to_ycbcr.to(work.dtype), work)
        luma = ycc[:, :1]
        chroma = F.avg_pool2d(ycc[:, 1:] + 128, 2)
        luma = self._codec(luma, self.tables[0], factor)
        chroma = self._codec(chroma, self.tables[1], factor)
        chroma = chroma.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) - 128
        rgb = torch.einsum("dc,bchw->bdhw", self.ycbcr_to_rgb.to(work.dtype), torch.cat([luma, chroma], dim=1))
        out = rgb.clamp(0, 255)[:, :, :h, :w] / 255
        return out.to(x.dtype)
