"""Per-sample 2-D filtering and unsharp masking (USM) with BasicSR's names and conventions.

Images are (B, C, H, W) float tensors (RGB, [0, 1]); ``usm_sharp`` is the NumPy version for (H, W, C) BGR images.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def _check_kernel(img: torch.Tensor, kernel: torch.Tensor, owner: str = "filter2D") -> int:
    if img.dim() != 4:
        raise ValueError(f"{owner}: img must be (B, C, H, W), got shape {tuple(img.shape)}")
    if kernel.dim() != 3 or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"{owner}: kernel must be (B, k, k) or (1, k, k), got shape {tuple(kernel.shape)}")
    k = kernel.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"{owner}: kernel size must be odd, got {k}")
    if kernel.shape[0] not in (1, img.shape[0]):
        raise ValueError(f"{owner}: {kernel.shape[0]} kernels for a batch of {img.shape[0]} images (expected 1 or B)")
    if k // 2 >= min(img.shape[-2:]):
        raise ValueError(
            f"{owner}: image {tuple(img.shape[-2:])} too small for a {k}x{k} kernel (H and W must exceed {k // 2})"
        )
    return k


def filter2D(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate every image with its own kernel (same kernel on all channels), reflect-padded.

    Args:
        img: (B, C, H, W) float.
        kernel: (B, k, k) one kernel per image, or (1, k, k) one for all; k odd. Cast to ``img``'s dtype.

    Returns:
        (B, C, H, W), the same size as ``img`` (reflect padding of k//2, edge pixel not repeated; no kernel flip).

    Raises:
        ValueError: even ``k``, a kernel count that is neither 1 nor B, or H or W not larger than k//2.
    """
    k = _check_kernel(img, kernel)
    b, c, h, w = img.shape
    pad = k // 2
    x = F.pad(img, (pad, pad, pad, pad), mode="reflect")
    weight = kernel.to(dtype=img.dtype, device=img.device)
    if kernel.shape[0] == 1:
        out = F.conv2d(x.reshape(b * c, 1, h + 2 * pad, w + 2 * pad), weight.view(1, 1, k, k))
    else:
        weight = weight.unsqueeze(1).expand(b, c, k, k).reshape(b * c, 1, k, k)
        out = F.conv2d(x.reshape(1, b * c, h + 2 * pad, w + 2 * pad), weight, groups=b * c)
    return out.view(b, c, h, w)


def reflect_band_matrix(n: int, taps: torch.Tensor) -> torch.Tensor:
    """(n, n) matrix ``T`` with ``T @ v`` = ``v`` reflect-padded by ``len(taps) // 2`` and cross-correlated with
    ``taps`` (odd length, ``len(taps) // 2 < n``), i.e. one axis of ``filter2D`` with a separable kernel."""
    k = taps.numel()
    pad = k // 2
    rows = torch.arange(n, device=taps.device).view(n, 1).expand(n, k)
    src = (rows + torch.arange(-pad, pad + 1, device=taps.device).view(1, k)).abs()
    src = torch.where(src > n - 1, 2 * (n - 1) - src, src)
    band = torch.zeros(n, n, dtype=taps.dtype, device=taps.device)
    return band.index_put_((rows, src), taps.view(1, k).expand(n, k), accumulate=True)


def _odd_radius(radius: int) -> int:
    if int(radius) != radius or radius < 1:
        raise ValueError(f"USM: radius must be a positive integer, got {radius!r}")
    return int(radius) + 1 if radius % 2 == 0 else int(radius)


class USMSharp(nn.Module):
    """Unsharp masking on (B, C, H, W) tensors in [0, 1], with a soft threshold mask (Real-ESRGAN's GT sharpening).

    ``out = soft * clip(img + weight * (img - blur), 0, 1) + (1 - soft) * img``, where ``blur`` is a Gaussian
    blur, ``soft`` is the blurred mask ``|img - blur| * 255 > threshold``.

    Args:
        radius: Gaussian window side; an even value is incremented (50 behaves as 51). Default: 50.
        sigma: Gaussian sigma; <= 0 derives it from the window as OpenCV does (8.0 for 51). Default: 0.

    Attributes:
        kernel: the (1, R, R) float32 window (outer product of ``cv2.getGaussianKernel(R, sigma)``).
    """

    def __init__(self, radius: int = 50, sigma: float = 0) -> None:
        super().__init__()
        self.radius = _odd_radius(radius)
        taps = torch.from_numpy(cv2.getGaussianKernel(self.radius, sigma).astype(np.float32).reshape(-1))
        self.register_buffer("kernel", torch.outer(taps, taps).unsqueeze(0))
        self.register_buffer("taps", taps, persistent=False)
        self._bands: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def _band(self, n: int, like: torch.Tensor) -> torch.Tensor:
        key = (n, like.device, like.dtype)
        if key not in self._bands:
            if len(self._bands) >= 8:
                self._bands.clear()
            self._bands[key] = reflect_band_matrix(n, self.taps.to(like.device, torch.float64)).to(like.dtype)
        return self._bands[key]

    def _blur(self, img: torch.Tensor) -> torch.Tensor:
        """``filter2D(img, self.kernel)``, as two matrix products (the Gaussian window is separable)."""
        h, w = img.shape[-2:]
        return self._band(h, img) @ (img @ self._band(w, img).T)

    def forward(self, img: torch.Tensor, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
        """Args: img (B, C, H, W) in [0, 1] with H, W > R // 2; weight: sharpening amount; threshold: in 0-255
        units. Returns the sharpened (B, C, H, W) image."""
        _check_kernel(img, self.kernel, "USMSharp")
        blur = self._blur(img)
        residual = img - blur
        mask = (residual.abs() * 255 > threshold).to(img.dtype)
        soft = self._blur(mask)
        sharp = torch.clamp(img + weight * residual, 0, 1)
        return soft * sharp + (1 - soft) * img


def usm_sharp(img: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> np.ndarray:
    """NumPy unsharp masking, as :class:`USMSharp` but with OpenCV's Gaussian blur (border reflect-101).

    Args:
        img: (H, W, C) float32 image in [0, 1] (BGR in BasicSR's data pipeline; the channel order does not matter).
        weight: sharpening amount. Default: 0.5.
        radius: Gaussian window side; an even value is incremented. Default: 50.
        threshold: mask threshold on ``|img - blur|`` in 0-255 units. Default: 10.

    Returns:
        (H, W, C) float32 sharpened image.
    """
    r = _odd_radius(radius)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (r, r), 0).reshape(x.shape)  # OpenCV drops a trailing single channel

    residual = img - blur(img)
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = blur(mask)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img
