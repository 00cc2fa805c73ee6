"""Shared input handling for the full-reference metrics: layout, border crop and the Y-channel conversions."""

from __future__ import annotations

import numpy as np
import torch

from restore.data.color import bgr2ycbcr, rgb2ycbcr_pt, to_y_channel

_INPUT_ORDERS = ("HWC", "CHW")

# Y = (65481 R + 128553 G + 24966 B) / 255000 + 16 for R, G, B in 0..255; exact in int64.
_Y_MILLI_RGB = (65481, 128553, 24966)


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


def y_channel_hwc(img: np.ndarray, y_channel_uint8: bool, name: str) -> np.ndarray:
    """BGR (H, W, 3) on the 0..255 scale -> Y (H, W, 1): float32 unrounded, or uint8-rounded when ``y_channel_uint8``.

    Single-channel images are returned unchanged (there is no colour to convert).
    """
    if img.shape[2] != 3:
        return img
    if not y_channel_uint8:
        return to_y_channel(img)
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
) -> tuple[np.ndarray, np.ndarray]:
    """Layout, crop, optional Y conversion; returns two float64 (H, W, C) arrays on the 0..255 scale."""
    check_pair(img, img2, name)
    if y_channel_uint8 and not test_y_channel:
        raise ValueError(f"{name}: y_channel_uint8 only applies together with test_y_channel=True")
    out = []
    for x in (img, img2):
        x = crop_hwc(to_hwc(np.asarray(x), input_order, name), crop_border)
        if test_y_channel:
            x = y_channel_hwc(x, y_channel_uint8, name)
        out.append(x.astype(np.float64))
    return out[0], out[1]


def y_channel_pt(img: torch.Tensor, y_channel_uint8: bool) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> Y (B, 1, H, W) in [0, 1] (BT.601, 16/255..235/255).

    Unrounded Y is computed in img's dtype. With ``y_channel_uint8`` the image is first quantised like a saved PNG
    (clamp, x255, round) and Y is rounded to an integer exactly (half up), then divided by 255 in float64.
    """
    if not y_channel_uint8:
        return rgb2ycbcr_pt(img, y_only=True)
    q = torch.round(img.clamp(0, 1) * 255).to(torch.int64)
    num = sum(c * q[:, i : i + 1] for i, c in enumerate(_Y_MILLI_RGB)) + 16 * 255000
    y = torch.div(2 * num + 255000, 2 * 255000, rounding_mode="floor")
    return y.to(torch.float64) / 255.0  # float64 keeps the integers exact through the metric's x255
