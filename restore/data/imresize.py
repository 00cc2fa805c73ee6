"""MATLAB-compatible bicubic ``imresize`` (antialiased when shrinking), for NumPy arrays and torch tensors.

Super-resolution benchmarks make their LR inputs with MATLAB's ``imresize(img, 1/s, 'bicubic')``; OpenCV's and
PIL's bicubic give different pixels. For one dimension of length ``n`` and scale ``s``:

- output length ``m = ceil(n * s)``; output sample ``x = 1..m`` (1-based) sits at input coordinate
  ``u = x / s + (1 - 1 / s) / 2``;
- Keys' cubic kernel with ``a = -0.5``; when shrinking (``s < 1``) with antialiasing it is stretched to
  ``s * K(s * d)`` with support ``4 / s``, otherwise ``K(d)`` with support 4;
- taps outside the image are mirrored with the edge pixel repeated (MATLAB ``'symmetric'``), weights of each output
  sample are normalised to sum to one;
- height first, then width.

Each dimension is a dense (m, n) weight matrix, so the resize is two matrix products (fast, works on any device).
Weights are built in float64.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

ArrayOrTensor = np.ndarray | torch.Tensor


def _cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (support [-2, 2])."""
    a = np.abs(t)
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    far = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return near + far


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Fold 0-based indices into [0, n) by reflection with the edge repeated (... 1 0 | 0 1 ... n-1 | n-1 n-2 ...)."""
    period = 2 * n
    index = np.mod(index, period)
    return np.where(index < n, index, period - 1 - index)


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """Dense float64 (out_len, in_len) matrix ``A`` such that ``A @ x`` resizes a length-``in_len`` signal.

    Args:
        in_len: input length ``n`` (pixels).
        out_len: output length, normally ``ceil(n * scale)``.
        scale: output/input size ratio (e.g. 0.25 for x4 downscaling).
        antialiasing: stretch the kernel when ``scale < 1`` (MATLAB default).

    Returns:
        Read-only float64 array whose rows sum to one.
    """
    shrink = scale < 1 and antialiasing
    support = 4.0 / scale if shrink else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate of each output sample
    first = np.floor(u - support / 2.0)
    taps = first[:, None] + np.arange(math.ceil(support) + 2, dtype=np.float64)[None, :]  # 1-based tap indices
    dist = u[:, None] - taps
    weights = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    cols = _mirror(taps.astype(np.int64) - 1, in_len)
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps.shape[1]), cols.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def output_size(in_len: int, scale: float) -> int:
    """MATLAB's output length ``ceil(in_len * scale)``."""
    return math.ceil(in_len * scale)


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"imresize: scale must be a positive number, got {scale!r}")
    return float(scale)


def _imresize_numpy(img: np.ndarray, scale: float, antialiasing: bool) -> np.ndarray:
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an (H, W) or (H, W, C) array, got shape {img.shape}")
    if img.dtype == np.uint8:
        out_dtype = np.float32
    elif np.issubdtype(img.dtype, np.floating):
        out_dtype = img.dtype
    else:
        raise TypeError(f"imresize: expected uint8 or float array, got dtype {img.dtype}")
    h, w = img.shape[:2]
    rows = resize_matrix(h, output_size(h, scale), scale, antialiasing)
    cols = resize_matrix(w, output_size(w, scale), scale, antialiasing)
    data = img.astype(np.float64)
    out = np.tensordot(rows, data, axes=(1, 0))  # (h', W[, C])
    out = np.moveaxis(np.tensordot(cols, out, axes=(1, 1)), 0, 1)  # (h', w'[, C])
    return np.ascontiguousarray(out, dtype=out_dtype)


def _imresize_torch(img: torch.Tensor, scale: float, antialiasing: bool) -> torch.Tensor:
    if img.ndim not in (2, 3, 4):
        raise ValueError(f"imresize: expected an (H, W), (C, H, W) or (B, C, H, W) tensor, got {tuple(img.shape)}")
    if not img.is_floating_point():
        raise TypeError(f"imresize: expected a floating point tensor, got dtype {img.dtype}")
    h, w = img.shape[-2:]
    rows = torch.from_numpy(np.array(resize_matrix(h, output_size(h, scale), scale, antialiasing))).to(img)
    cols = torch.from_numpy(np.array(resize_matrix(w, output_size(w, scale), scale, antialiasing))).to(img)
    return torch.matmul(torch.matmul(rows, img), cols.T)


def imresize(img: ArrayOrTensor, scale: float, antialiasing: bool = True) -> ArrayOrTensor:
    """Resize an image like MATLAB ``imresize(img, scale, 'bicubic')``; the same scale for height and width.

    Args:
        img: NumPy (H, W) or (H, W, C) array, channel order irrelevant (channels are resized independently):
            ``uint8`` in [0, 255] gives float32 in [0, 255]; float32/float64 (usually in [0, 1]) keep their dtype.
            Or a floating torch tensor (H, W), (C, H, W) or (B, C, H, W) on any device, resized in its own dtype.
        scale: output/input size ratio, e.g. ``1 / 4`` to make x4 LR images, ``4`` to upsample.
        antialiasing: widen the kernel when shrinking (MATLAB's default). Default: True.

    Returns:
        The resized image, shape (ceil(H * scale), ceil(W * scale)[, C]) for arrays and (..., H', W') for tensors,
        neither clipped nor rounded (bicubic overshoots); see :func:`round_to_uint8` for saving.
    """
    scale = _check_scale(scale)
    if isinstance(img, torch.Tensor):
        return _imresize_torch(img, scale, antialiasing)
    if isinstance(img, np.ndarray):
        return _imresize_numpy(img, scale, antialiasing)
    raise TypeError(f"imresize: expected a numpy array or torch tensor, got {type(img).__name__}")


def round_to_uint8(img: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Quantise like benchmark PNGs: ``clip(round(img * 255 / peak), 0, 255)`` as uint8 (NumPy rounds half to even).

    Args:
        img: float array in [0, peak] (peak 1 for [0, 1] images, 255 for images on the 0..255 scale).
        peak: the value that maps to 255.
    """
    scaled = img * (255.0 / peak) if peak != 255.0 else img
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W[, C]) to multiples of ``scale``, anchored at the top left (what SR benchmarks do to GT images)."""
    if scale < 1:
        raise ValueError(f"modcrop: scale must be >= 1, got {scale}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


__all__ = ["imresize", "modcrop", "output_size", "resize_matrix", "round_to_uint8"]
