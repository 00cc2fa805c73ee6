"""PSNR and SSIM in the conventions of SR/restoration papers.

NumPy versions (``calculate_psnr``, ``calculate_ssim``) take uint8 BGR images (0..255) as saved on disk; the torch
versions (``calculate_psnr_pt``, ``calculate_ssim_pt``) take batched RGB tensors in [0, 1] on any device and return
one value per image.

Options shared by all four (option-file keys under ``val.metrics.<name>``):

- ``crop_border``: pixels removed from every edge before anything else (usually the SR scale);
- ``test_y_channel``: evaluate on BT.601 Y (16..235) instead of the colour channels;
- ``y_channel_uint8``: with ``test_y_channel``, round Y to integers first, as MATLAB's ``rgb2ycbcr`` does for uint8
  images. This is the deraining protocol (Rain200H/L, SPA-Data evaluation scripts); SR papers use unrounded Y.
- ``y_channel_float64``: with ``test_y_channel`` and unrounded Y, compute Y in float64 with MATLAB's operations
  (``rgb2ycbcr`` of an ``im2double`` image: DID-Data/DDN-Data's ``statistic.m``). Without it unrounded Y is float32,
  as in BasicSR, whose numbers the SR benchmarks are compared with.

SSIM uses the 11x11 Gaussian window (sigma 1.5) over the valid region, the biased local statistics and
C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2; colour images average over channels. With ``auto_downsample`` the
images are first reduced as in Wang's ``ssim.m`` (the DID-Data/DDN-Data deraining evaluation): by
``f = max(1, round(min(H, W) / 256))``, averaging f x f blocks (MATLAB ``imfilter`` with ``'symmetric'`` borders,
then every f-th pixel).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from restore.metrics._prepare import check_pair, check_y_options, prepare_pair, y_channel_pt
from restore.utils.registry import METRIC_REGISTRY

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian (size,) float64; the 2-D SSIM window is its outer product."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * sigma * sigma))
    return taps / taps.sum()


@METRIC_REGISTRY.register()
def calculate_psnr(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str = "HWC",
    test_y_channel: bool = False,
    y_channel_uint8: bool = False,
    y_channel_float64: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB with peak 255.

    Args:
        img, img2: uint8 images in [0, 255], BGR for colour, (H, W, C), (C, H, W) or gray (H, W); same shape.
        crop_border: pixels removed from each edge.
        input_order: 'HWC' or 'CHW'.
        test_y_channel: compare the Y channel only (colour images).
        y_channel_uint8: round Y to uint8 before comparing (needs ``test_y_channel``).
        y_channel_float64: unrounded Y in float64 with MATLAB's operations instead of float32 (module docstring).

    Returns:
        ``10 log10(255^2 / mse)`` over all pixels and channels (float64); ``inf`` for identical images.
    """
    a, b = prepare_pair(
        img, img2, crop_border, input_order, test_y_channel, y_channel_uint8, "calculate_psnr", y_channel_float64
    )
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else float(10.0 * np.log10(255.0 * 255.0 / mse))


def downsample_factor(height: int, width: int) -> int:
    """``max(1, round(min(H, W) / 256))`` with MATLAB's rounding (halves away from zero)."""
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def _box_sample_indices(length: int, factor: int) -> np.ndarray:
    """(ceil(length / f), f) source indices of the f-pixel windows that MATLAB's ``imfilter(x, ones(f) / f^2,
    'symmetric', 'same')`` averages at pixels 0, f, 2f, ... (window offsets ``-(ceil(f / 2) - 1) .. f - ceil(f / 2)``;
    out-of-range indices mirrored with the edge repeated)."""
    centre = (factor + 1) // 2
    starts = np.arange(0, length, factor)[:, None] - (centre - 1)
    index = starts + np.arange(factor)[None, :]
    period = 2 * length
    index = np.mod(index, period)
    return np.where(index < length, index, period - 1 - index)


def _downsample(img: np.ndarray) -> np.ndarray:
    """(H, W, C) float64 -> block-averaged (ceil(H / f), ceil(W / f), C) as in ``ssim.m``; unchanged when f = 1."""
    factor = downsample_factor(*img.shape[:2])
    if factor == 1:
        return img
    rows, cols = _box_sample_indices(img.shape[0], factor), _box_sample_indices(img.shape[1], factor)
    img = img[rows].mean(axis=1)  # (H', W, C)
    return img[:, cols].mean(axis=2)  # (H', W', C)


def _valid_filter(plane: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a float64 (H, W) plane: (H - k + 1, W - k + 1)."""
    r = len(taps) // 2
    full = cv2.sepFilter2D(plane, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REFLECT)
    return full[r:-r, r:-r]


def _ssim_plane(x: np.ndarray, y: np.ndarray, taps: np.ndarray) -> float:
    """Mean SSIM of two float64 (H, W) planes on the 0..255 scale."""
    mu_x, mu_y = _valid_filter(x, taps), _valid_filter(y, taps)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _valid_filter(x * x, taps) - mu_xx
    var_y = _valid_filter(y * y, taps) - mu_yy
    cov_xy = _valid_filter(x * y, taps) - mu_xy
    ssim_map = ((2 * mu_xy + _C1) * (2 * cov_xy + _C2)) / ((mu_xx + mu_yy + _C1) * (var_x + var_y + _C2))
    return float(ssim_map.mean())


@METRIC_REGISTRY.register()
def calculate_ssim(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str = "HWC",
    test_y_channel: bool = False,
    y_channel_uint8: bool = False,
    auto_downsample: bool = False,
    y_channel_float64: bool = False,
) -> float:
    """Structural similarity (Wang et al. 2004), mean over the valid region and over channels.

    Args: as :func:`calculate_psnr`, plus ``auto_downsample`` (see the module docstring). Images must be at least
        11x11 after cropping (and downsampling).

    Returns:
        SSIM in [-1, 1] (float).
    """
    a, b = prepare_pair(
        img, img2, crop_border, input_order, test_y_channel, y_channel_uint8, "calculate_ssim", y_channel_float64
    )
    if auto_downsample:
        a, b = _downsample(a), _downsample(b)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"calculate_ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape[:2]}")
    taps = gaussian_taps()
    return float(np.mean([_ssim_plane(a[..., c], b[..., c], taps) for c in range(a.shape[2])]))


def _prepare_pt(
    img: torch.Tensor,
    img2: torch.Tensor,
    crop_border: int,
    test_y_channel: bool,
    y_channel_uint8: bool,
    name: str,
    y_channel_float64: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_pair(img, img2, name)
    if img.ndim != 4:
        raise ValueError(f"{name}: expected (B, C, H, W) tensors, got shape {tuple(img.shape)}")
    check_y_options(test_y_channel, y_channel_uint8, y_channel_float64, name)
    if crop_border < 0:
        raise ValueError(f"{name}: crop_border must be >= 0, got {crop_border}")
    if crop_border:
        img = img[..., crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[..., crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        if img.shape[1] != 3:
            raise ValueError(f"{name}: test_y_channel needs RGB (B, 3, H, W) tensors, got {tuple(img.shape)}")
        img = y_channel_pt(img, y_channel_uint8, y_channel_float64)
        img2 = y_channel_pt(img2, y_channel_uint8, y_channel_float64)
    return img.to(torch.float64), img2.to(torch.float64)


@METRIC_REGISTRY.register()
def calculate_psnr_pt(
    img: torch.Tensor,
    img2: torch.Tensor,
    crop_border: int,
    test_y_channel: bool = False,
    y_channel_uint8: bool = False,
    y_channel_float64: bool = False,
) -> torch.Tensor:
    """Batched PSNR on RGB (B, C, H, W) tensors in [0, 1]; returns float64 (B,) on their device.

    ``10 log10(1 / (mse + 1e-8))`` with the mse on the [0, 1] scale (finite for identical images).
    """
    a, b = _prepare_pt(img, img2, crop_border, test_y_channel, y_channel_uint8, "calculate_psnr_pt", y_channel_float64)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / (mse + 1e-8))


def _downsample_pt(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> block-averaged (B, C, ceil(H / f), ceil(W / f)); see :func:`_downsample`."""
    factor = downsample_factor(*x.shape[-2:])
    if factor == 1:
        return x
    rows, cols = (torch.from_numpy(_box_sample_indices(n, factor)).to(x.device) for n in x.shape[-2:])
    x = x[..., rows.reshape(-1), :].unflatten(-2, tuple(rows.shape)).mean(dim=-2)  # (B, C, H', W)
    return x[..., cols.reshape(-1)].unflatten(-1, tuple(cols.shape)).mean(dim=-1)  # (B, C, H', W')


def _valid_filter_pt(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Depthwise separable 'valid' correlation of (B, C, H, W) -> (B, C, H - k + 1, W - k + 1)."""
    c, k = x.shape[1], taps.numel()
    x = F.conv2d(x, taps.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, taps.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


@METRIC_REGISTRY.register()
def calculate_ssim_pt(
    img: torch.Tensor,
    img2: torch.Tensor,
    crop_border: int,
    test_y_channel: bool = False,
    y_channel_uint8: bool = False,
    auto_downsample: bool = False,
    y_channel_float64: bool = False,
) -> torch.Tensor:
    """Batched SSIM on RGB (B, C, H, W) tensors in [0, 1] (evaluated on x * 255 in float64); returns (B,)."""
    a, b = _prepare_pt(img, img2, crop_border, test_y_channel, y_channel_uint8, "calculate_ssim_pt", y_channel_float64)
    if auto_downsample:
        a, b = _downsample_pt(a), _downsample_pt(b)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"calculate_ssim_pt: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape}")
    a, b = a * 255.0, b * 255.0
    taps = torch.from_numpy(gaussian_taps()).to(a)
    mu_x, mu_y = _valid_filter_pt(a, taps), _valid_filter_pt(b, taps)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _valid_filter_pt(a * a, taps) - mu_xx
    var_y = _valid_filter_pt(b * b, taps) - mu_yy
    cov_xy = _valid_filter_pt(a * b, taps) - mu_xy
    ssim_map = ((2 * mu_xy + _C1) * (2 * cov_xy + _C2)) / ((mu_xx + mu_yy + _C1) * (var_x + var_y + _C2))
    return ssim_map.mean(dim=(1, 2, 3))
