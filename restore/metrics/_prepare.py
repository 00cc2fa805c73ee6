"""Shared input handling for the full-reference metrics: layout, border crop and the Y-channel conversions."""

from __future__ import annotations

import numpy as np
import torch

from restore.data.color import bgr2ycbcr, rgb2ycbcr_pt, to_y_channel, to_y_channel_float64

_INPUT_ORDERS = ("HWC", "CHW")

# MATLAB rgb2ycbcr's Y row: T = (1/255) * [65.481 128.553 24.966], one double product per entry.
_MATLAB_Y_T = tuple((1 / 255) * c for c in (65.481, 128.553, 24.966))


def to_hwc(img: np.ndarray, input_order: str, name: str) -> np.ndarray:
    """(H, W) / (H, W, C) / (C, H, W) array -> (H, W, C) view."""
    if input_order not in _INPUT_ORDERS:
        raise ValueError(f"{name}: input_order must be 'HWC' or 'CHW', got {input_order!r}")
    if img.ndim == 2:
        return img[..., None]
    if img.ndim != 3:
        raise ValueError(f"{name}: expected a 2-D or 3-D image, got shape {tuple(img.shape)}")
    return img.transpose(1, 2, 0) if input_order == "CHW" else img


def check_pair(img: np.ndarray | torch.Tensor, img2: np.ndarray | torch.Tensor, name: str) -> None:
    if tuple(img.shape) != tuple(img2.shape):
        raise ValueError(f"{name}: image shapes differ: {tuple(img.shape)} vs {tuple(img2.shape)}")


def crop_hwc(img: np.ndarray, crop_border: int) -> np.ndarray:
    """Remove ``crop_border`` pixels from each edge of an (H, W, C) image."""
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border == 0:
        return img
    return img[crop_border:-crop_border, crop_border:-crop_border, :]


def check_y_options(test_y_channel: bool, y_channel_uint8: bool, y_channel_float64: bool, name: str) -> None:
    for key, value in (("y_channel_uint8", y_channel_uint8), ("y_channel_float64", y_channel_float64)):
        if value and not test_y_channel:
            raise ValueError(f"{name}: {key} only applies together with test_y_channel=True")


def y_channel_hwc(img: np.ndarray, y_channel_uint8: bool, name: str, y_channel_float64: bool = False) -> np.ndarray:
    """BGR (H, W, 3) on the 0..255 scale -> Y (H, W, 1): uint8-rounded as MATLAB does when ``y_channel_uint8``, else
    unrounded, in float64 as MATLAB's ``rgb2ycbcr(im2double(img))`` when ``y_channel_float64``, else float32 as
    BasicSR.

    Single-channel images are returned unchanged (there is no colour to convert).
    """
    if img.shape[2] != 3:
        return img
    if not y_channel_uint8:
        return to_y_channel_float64(img) if y_channel_float64 else to_y_channel(img)
    if img.dtype != np.uint8:
        raise TypeError(f"{name}: y_channel_uint8 needs uint8 images (0..255), got dtype {img.dtype}")
    return bgr2ycbcr(img, y_only=True)[..., None]


def prepare_pair(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str,
    test_y_channel: bool,
    y_channel_uint8: bool,
    name: str,
    y_channel_float64: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Layout, crop, optional Y conversion; returns two float64 (H, W, C) arrays on the 0..255 scale."""
    check_pair(img, img2, name)
    check_y_options(test_y_channel, y_channel_uint8, y_channel_float64, name)
    out = []
    for x in (img, img2):
        x = crop_hwc(to_hwc(np.asarray(x), input_order, name), crop_border)
        if test_y_channel:
            x = y_channel_hwc(x, y_channel_uint8, name, y_channel_float64)
        out.append(x.astype(np.float64))
    return out[0], out[1]


def _matlab_y_pt(rgb: torch.Tensor, offset: float) -> torch.Tensor:
    """``T1*R + T2*G + T3*B + offset`` on float64 (B, 3, H, W), one rounded operation at a time (MATLAB)."""
    y = _MATLAB_Y_T[0] * rgb[:, 0:1]
    y = y + _MATLAB_Y_T[1] * rgb[:, 1:2]
    y = y + _MATLAB_Y_T[2] * rgb[:, 2:3]
    return y + offset


def y_channel_pt(img: torch.Tensor, y_channel_uint8: bool, y_channel_float64: bool = False) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> Y (B, 1, H, W) in [0, 1] (BT.601, 16/255..235/255).

    Unrounded Y is computed in img's dtype, or with ``y_channel_float64`` in float64 with MATLAB's operations
    (``rgb2ycbcr`` of a double image). With ``y_channel_uint8`` the image is first quantised like a saved PNG
    (clamp, x255, round) and Y is MATLAB's uint8 result (:func:`restore.data.color.rgb2ycbcr`), divided by 255 in
    float64.
    """
    if not y_channel_uint8:
        if y_channel_float64:
            return _matlab_y_pt(img.to(torch.float64), 16 / 255)
        return rgb2ycbcr_pt(img, y_only=True)
    q = torch.round(img.clamp(0, 1) * 255).to(torch.float64)
    y = _matlab_y_pt(q, 16.0)
    whole = torch.floor(y)  # Y >= 16: half away from zero is half up
    y = whole + (y - whole >= 0.5).to(torch.float64)
    return y / 255.0  # float64 keeps the integers exact through the metric's x255
