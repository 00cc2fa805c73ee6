"""Helpers for benchmark evaluation: network output -> 8-bit image exactly as published numbers were computed."""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch

from restore.utils.files import atomic_path

__all__ = ["image_stem", "tensor_to_uint8", "write_uint8"]


def tensor_to_uint8(img: torch.Tensor) -> np.ndarray:
    """RGB (1, C, H, W) or (C, H, W) float in [0, 1] -> uint8 BGR (H, W, 3), or (H, W) for one channel.

    The quantisation of saved SR results: clamp to [0, 1], multiply by 255 in float32, round half to even,
    then RGB -> BGR (OpenCV order, what the NumPy metrics expect).
    """
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ValueError(f"tensor_to_uint8: expected one image, got a batch of shape {tuple(img.shape)}")
        img = img[0]
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"tensor_to_uint8: expected (C, H, W) with C = 1 or 3, got {tuple(img.shape)}")
    hwc = img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    out = np.round(hwc * np.float32(255.0)).astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else np.ascontiguousarray(out[..., ::-1])


def write_uint8(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 BGR/gray image atomically (the folder is created); one-line error naming the file."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img):
            raise OSError(f"{path}: OpenCV could not write the image")


def image_stem(path: str | os.PathLike) -> str:
    """File name without folder and extension: ``/x/baby.png`` -> ``baby``."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]
