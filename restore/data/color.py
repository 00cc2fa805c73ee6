"""BT.601 colour conversions with MATLAB ``rgb2ycbcr`` semantics (not OpenCV's full-range JPEG ``YCrCb``).

With ``r, g, b`` in [0, 1] the studio-swing transform on the 0..255 scale is::

    Y  =  16 +  65.481 r + 128.553 g +  24.966 b        (16..235)
    Cb = 128 -  37.797 r -  74.203 g + 112.000 b        (16..240)
    Cr = 128 + 112.000 r -  93.786 g -  18.214 b        (16..240)

Array conventions (NumPy functions):

- ``uint8`` in [0, 255] -> ``uint8`` out, computed the way MATLAB's ``rgb2ycbcr.m`` computes it, operation by
  operation: the matrix is scaled as ``T = (1/255) * M`` (one double product per entry), each output is
  ``T1*R + T2*G + T3*B + offset`` accumulated left to right in double (``imlincomb``), then rounded half away from
  zero. 194 of the 2^24 colours have an exact .5 in rational arithmetic; in that double evaluation 149 of them land
  a hair below .5 and round down (e.g. R, G, B = 0, 204, 68: Y = 125.49999999999999 -> 125), the rest up.
- floating point in [0, 1] -> the same float dtype out, also in [0, 1] (Y/255 etc.). Computed in float64.

``to_y_channel`` is the conversion the PSNR/SSIM metrics use for ``test_y_channel``: unrounded Y on the 0..255
scale as float32, with the float32 steps of the common reference implementation so metric values agree with it.
``to_y_channel_float64`` is the unrounded Y of MATLAB's ``rgb2ycbcr(im2double(img))``, in double as MATLAB
computes it, for protocols whose reference is a MATLAB script.
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
# MATLAB's scaled matrices: uint8 input T = (1/255) * M with the offset as is; double input also offset / 255.
_MATLAB_T = (1 / 255) * _RGB_TO_YCBCR
_MATLAB_OFFSET_DOUBLE = (1 / 255) * _YCBCR_OFFSET
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def _check_channels(img: np.ndarray, name: str) -> None:
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) array, got shape {tuple(img.shape)}")


def _check_dtype(img: np.ndarray, name: str) -> None:
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 in [0, 255] or float in [0, 1], got dtype {img.dtype}")


def _matlab_lincomb(rgb: np.ndarray, row: int, offset: float) -> np.ndarray:
    """``T(row,1)*R + T(row,2)*G + T(row,3)*B + offset`` in float64, one rounded operation at a time, left to right
    (MATLAB ``imlincomb``); ``rgb`` (..., 3) float64 on the scale MATLAB sees (0..255 for uint8, [0, 1] for double)."""
    t = _MATLAB_T[row]
    out = t[0] * rgb[..., 0]
    out = out + t[1] * rgb[..., 1]
    out = out + t[2] * rgb[..., 2]
    return out + offset


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, exact .5 away from zero (MATLAB's conversion to an integer class)."""
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    return np.copysign(whole + (magnitude - whole >= 0.5), x)


def _rgb_to_ycbcr(rgb: np.ndarray, y_only: bool, name: str) -> np.ndarray:
    """Core conversion on channel-last RGB; see the module docstring for dtypes."""
    _check_dtype(rgb, name)
    _check_channels(rgb, name)
    rows = slice(0, 1) if y_only else slice(0, 3)
    if rgb.dtype == np.uint8:
        values = rgb.astype(np.float64)
        planes = [_matlab_lincomb(values, i, _YCBCR_OFFSET[i]) for i in range(rows.stop)]
        out = np.clip(_round_half_away(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)
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


def to_y_channel_float64(img: np.ndarray) -> np.ndarray:
    """MATLAB's ``rgb2ycbcr(im2double(img))(:, :, 1) * 255``: BGR (H, W, 3) on the 0..255 scale (uint8 or float) ->
    float64 (H, W, 1), 0..255, unrounded.

    ``im2double`` divides by 255 in double, ``rgb2ycbcr`` evaluates ``T1*r + T2*g + T3*b + 16/255`` with
    ``T = (1/255) * M`` left to right in double (``imlincomb``); the result is multiplied by 255 (DRSformer's
    ``statistic.m`` feeds ``x * 255`` to ``ssim.m``). Gray input is returned as float64 (H, W, 1) unchanged.
    """
    if img.ndim == 2:
        return img.astype(np.float64)[..., None]
    if img.ndim == 3 and img.shape[2] == 1:
        return img.astype(np.float64)
    _check_channels(img, "to_y_channel_float64")
    unit = img[..., ::-1].astype(np.float64) / 255.0
    return (_matlab_lincomb(unit, 0, _MATLAB_OFFSET_DOUBLE[0]) * 255.0)[..., None]


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
    "to_y_channel_float64",
    "ycbcr2bgr",
    "ycbcr2rgb",
]
