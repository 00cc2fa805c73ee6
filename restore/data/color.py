"""BT.601 colour conversions with MATLAB ``rgb2ycbcr`` semantics (not OpenCV's full-range JPEG ``YCrCb``).

With ``r, g, b`` in [0, 1] the studio-swing transform on the 0..255 scale is::

    Y  =  16 +  65.481 r + 128.553 g +  24.966 b        (16..235)
    Cb = 128 -  37.797 r -  74.203 g + 112.000 b        (16..240)
    Cr = 128 + 112.000 r -  93.786 g -  18.214 b        (16..240)

Array conventions (NumPy functions):

- ``uint8`` in [0, 255] -> ``uint8`` out. The result is computed exactly in integer arithmetic and rounded half up,
  which is what MATLAB returns for ``uint8`` input (exact .5 ties exist for 194 of the 2^24 colours).
- floating point in [0, 1] -> the same float dtype out, also in [0, 1] (Y/255 etc.). Computed in float64.

``to_y_channel`` is the conversion the PSNR/SSIM metrics use for ``test_y_channel``: unrounded Y on the 0..255
scale as float32, with the float32 steps of the common reference implementation so metric values agree with it.
"""

from __future__ import annotations

import numpy as np
import torch

# Rows: Y, Cb, Cr. Columns: R, G, B. Coefficients for r, g, b in [0, 1] giving values on the 0..255 scale.
_RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
# The same matrix in thousandths, for exact integer arithmetic on uint8 input: value*255000 = offset*255000 + M @ rgb.
_RGB_TO_YCBCR_MILLI = np.array(
    [
        [65481, 128553, 24966],
        [-37797, -74203, 112000],
        [112000, -93786, -18214],
    ],
    dtype=np.int64,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def _check_channels(img: np.ndarray, name: str) -> None:
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) array, got shape {tuple(img.shape)}")


def _check_dtype(img: np.ndarray, name: str) -> None:
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 in [0, 255] or float in [0, 1], got dtype {img.dtype}")


def _round_half_up_div(num: np.ndarray, den: int) -> np.ndarray:
    """``round(num / den)`` with ties rounded up, exact for integer arrays (floor division handles negatives)."""
    return (2 * num + den) // (2 * den)


def _rgb_to_ycbcr(rgb: np.ndarray, y_only: bool, name: str) -> np.ndarray:
    """Core conversion on channel-last RGB; see the module docstring for dtypes."""
    _check_dtype(rgb, name)
    _check_channels(rgb, name)
    rows = slice(0, 1) if y_only else slice(0, 3)
    if rgb.dtype == np.uint8:
        scaled = rgb.astype(np.int64) @ _RGB_TO_YCBCR_MILLI[rows].T + (_YCBCR_OFFSET[rows] * 255000).astype(np.int64)
        out = np.clip(_round_half_up_div(scaled, 255000), 0, 255).astype(np.uint8)
    else:
        out = ((rgb.astype(np.float64) @ _RGB_TO_YCBCR[rows].T + _YCBCR_OFFSET[rows]) / 255.0).astype(rgb.dtype)
    return out[..., 0] if y_only else out


def _ycbcr_to_rgb(ycbcr: np.ndarray, name: str) -> np.ndarray:
    _check_dtype(ycbcr, name)
    _check_channels(ycbcr, name)
    scale = 1.0 if ycbcr.dtype == np.uint8 else 255.0
    rgb = (ycbcr.astype(np.float64) * scale - _YCBCR_OFFSET) @ _YCBCR_TO_RGB.T  # r, g, b in [0, 1]
    if ycbcr.dtype == np.uint8:
        return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return rgb.astype(ycbcr.dtype)


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """RGB (H, W, 3) -> YCbCr (H, W, 3), or Y (H, W) when ``y_only``; uint8 -> uint8, float [0, 1] -> float [0, 1]."""
    return _rgb_to_ycbcr(img, y_only, "rgb2ycbcr")


def bgr2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """BGR (H, W, 3) (OpenCV order) -> YCbCr (H, W, 3) in the order Y, Cb, Cr, or Y (H, W) when ``y_only``."""
    _check_channels(img, "bgr2ycbcr")
    return _rgb_to_ycbcr(img[..., ::-1], y_only, "bgr2ycbcr")


def ycbcr2rgb(img: np.ndarray) -> np.ndarray:
    """YCbCr (H, W, 3) -> RGB (H, W, 3); uint8 in/out is rounded and clipped, float stays in the [0, 1] scale."""
    return _ycbcr_to_rgb(img, "ycbcr2rgb")


def ycbcr2bgr(img: np.ndarray) -> np.ndarray:
    """YCbCr (H, W, 3) -> BGR (H, W, 3); see :func:`ycbcr2rgb`."""
    return _ycbcr_to_rgb(img, "ycbcr2bgr")[..., ::-1].copy()


def to_y_channel(img: np.ndarray) -> np.ndarray:
    """Metric Y channel: BGR (H, W, 3) on the 0..255 scale (uint8 or float) -> float32 (H, W, 1), 0..255, unrounded.

    Gray input, (H, W) or (H, W, 1), is returned as float32 (H, W, 1) unchanged. The steps mirror the usual float32
    evaluation code: the image is scaled to [0, 1] in float32, Y/255 is stored as float32 and multiplied back by 255 in
    float32, so PSNR/SSIM on Y agree with published numbers to ~1e-7 dB.
    """
    if img.ndim == 2:
        return img.astype(np.float32)[..., None]
    if img.ndim == 3 and img.shape[2] == 1:
        return img.astype(np.float32)
    _check_channels(img, "to_y_channel")
    unit = img.astype(np.float32) / np.float32(255.0)
    y = unit[..., ::-1].astype(np.float64) @ _RGB_TO_YCBCR[0] + _YCBCR_OFFSET[0]
    return ((y / 255.0).astype(np.float32) * np.float32(255.0))[..., None]


def rgb2ycbcr_pt(img: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """RGB (B, 3, H, W) float in [0, 1] -> YCbCr (B, 3, H, W) or Y (B, 1, H, W), in [0, 1], computed in img's dtype."""
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"rgb2ycbcr_pt: expected a (B, 3, H, W) tensor, got shape {tuple(img.shape)}")
    rows = slice(0, 1) if y_only else slice(0, 3)
    weight = torch.from_numpy(_RGB_TO_YCBCR[rows].T.copy()).to(img)  # (3, k)
    offset = torch.from_numpy(_YCBCR_OFFSET[rows].copy()).to(img).view(1, -1, 1, 1)
    out = torch.matmul(img.permute(0, 2, 3, 1), weight).permute(0, 3, 1, 2) + offset
    return out / 255.0


__all__ = [
    "bgr2ycbcr",
    "rgb2ycbcr",
    "rgb2ycbcr_pt",
    "to_y_channel",
    "ycbcr2bgr",
    "ycbcr2rgb",
]
