"""Gaussian and Poisson noise with BasicSR's names, signatures and random-draw order.

``*_pt`` functions take (B, C, H, W) float tensors in [0, 1] (RGB) and per-sample parameters as numbers or (B,)
tensors; the NumPy functions take one (H, W, C) float32 image in [0, 1] (BGR, as in BasicSR's data pipeline).
Gaussian ``sigma`` is in 0-255 units. ``gray_noise`` (0/1 per sample) replaces the colour noise by one noise
plane shared by the channels. The ``*_pt`` functions draw from torch's global generator in BasicSR's order (so a
seeded run matches BasicSR) unless ``generator`` is given. As in BasicSR, the gray Gaussian noise plane is one
(H, W) draw shared by the whole batch (scaled by each sample's sigma).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

Number = float | int


def _finish_pt(out: torch.Tensor, clip: bool, rounds: bool) -> torch.Tensor:
    if rounds:
        out = (out * 255.0).round()
        return (torch.clamp(out, 0, 255) if clip else out) / 255.0
    return torch.clamp(out, 0, 1) if clip else out


def _finish_np(out: np.ndarray, clip: bool, rounds: bool) -> np.ndarray:
    if rounds:
        out = (out * 255.0).round()
        return (np.clip(out, 0, 255) if clip else out) / 255.0
    return np.clip(out, 0, 1) if clip else out


def _per_sample(value: Number | torch.Tensor, batch: int) -> Number | torch.Tensor:
    return value if isinstance(value, (float, int)) else value.view(batch, 1, 1, 1)


def _gray_weights(gray_noise: Number | torch.Tensor, batch: int) -> tuple[bool, Number | torch.Tensor]:
    """``(any sample uses gray noise, per-sample 0/1 weight)``; for a tensor this reads one value back."""
    if isinstance(gray_noise, (float, int)):
        return gray_noise > 0, gray_noise
    gray_noise = gray_noise.view(batch, 1, 1, 1)
    return bool(torch.sum(gray_noise) > 0), gray_noise


def _mix_gray(noise: torch.Tensor, noise_gray: torch.Tensor | None, gray_noise: Number | torch.Tensor) -> torch.Tensor:
    """Per-sample blend of colour ``noise`` and the gray plane by the 0/1 ``gray_noise`` weight (no plane: as is)."""
    return noise if noise_gray is None else noise * (1 - gray_noise) + noise_gray * gray_noise


def _draw_per_sample(
    img: torch.Tensor, value_range: Sequence[float], gray_prob: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``value ~ U(value_range)`` and 0/1 gray flag (probability ``gray_prob``), (B,) each, in that order."""
    kw = {"dtype": img.dtype, "device": img.device, "generator": generator}
    value = torch.rand(img.shape[0], **kw) * (value_range[1] - value_range[0]) + value_range[0]
    gray_noise = (torch.rand(img.shape[0], **kw) < gray_prob).to(img.dtype)
    return value, gray_noise


# ----------------------------------------------------------------------------- Gaussian, torch


def generate_gaussian_noise_pt(
    img: torch.Tensor,
    sigma: Number | torch.Tensor = 10,
    gray_noise: Number | torch.Tensor = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise ``N(0, (sigma / 255)^2)`` shaped like ``img`` (B, C, H, W); sigma and gray_noise per sample."""
    b, _, h, w = img.shape
    sigma = _per_sample(sigma, b)
    use_gray, gray_noise = _gray_weights(gray_noise, b)
    kw = {"dtype": img.dtype, "device": img.device, "generator": generator}
    noise_gray = (torch.randn(h, w, **kw) * sigma / 255.0).view(-1, 1, h, w) if use_gray else None
    noise = torch.randn(*img.shape, **kw) * sigma / 255.0
    return _mix_gray(noise, noise_gray, gray_noise)


def add_gaussian_noise_pt(
    img: torch.Tensor,
    sigma: Number | torch.Tensor = 10,
    gray_noise: Number | torch.Tensor = 0,
    clip: bool = True,
    rounds: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``img`` plus Gaussian noise; ``clip`` to [0, 1] and/or ``rounds`` to the 8-bit grid."""
    return _finish_pt(img + generate_gaussian_noise_pt(img, sigma, gray_noise, generator), clip, rounds)


def random_generate_gaussian_noise_pt(
    img: torch.Tensor,
    sigma_range: Sequence[float] = (0, 10),
    gray_prob: float = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise with ``sigma ~ U(sigma_range)`` and gray noise with probability ``gray_prob``, per sample."""
    sigma, gray_noise = _draw_per_sample(img, sigma_range, gray_prob, generator)
    return generate_gaussian_noise_pt(img, sigma, gray_noise, generator)


def random_add_gaussian_noise_pt(
    img: torch.Tensor,
    sigma_range: Sequence[float] = (0, 1.0),
    gray_prob: float = 0,
    clip: bool = True,
    rounds: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``img`` plus :func:`random_generate_gaussian_noise_pt` noise, then ``clip`` / ``rounds``."""
    return _finish_pt(img + random_generate_gaussian_noise_pt(img, sigma_range, gray_prob, generator), clip, rounds)


# ----------------------------------------------------------------------------- Poisson, torch


def _poisson_noise(img: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Shot noise: quantise to 8 bits, count each sample's distinct levels n, ``Poisson(x * 2^ceil(log2 n)) / ...``."""
    b = img.shape[0]
    img = torch.clamp((img * 255.0).round(), 0, 255) / 255.0
    levels = (img * 255.0).round().long().view(b, -1) + 256 * torch.arange(b, device=img.device).view(b, 1)
    distinct = (torch.bincount(levels.view(-1), minlength=256 * b).view(b, 256) > 0).sum(1)
    vals = torch.exp2(torch.ceil(torch.log2(distinct.double()))).to(img.dtype).view(b, 1, 1, 1)
    return torch.poisson(img * vals, generator=generator) / vals - img


def generate_poisson_noise_pt(
    img: torch.Tensor,
    scale: Number | torch.Tensor = 1.0,
    gray_noise: Number | torch.Tensor = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Poisson (shot) noise for (B, 3, H, W) ``img``; gray noise comes from the luma (0.2989 R + 0.587 G + 0.114 B).

    Returns ``noise * scale`` (B, 3, H, W), ``scale`` a number or a (B,) tensor.
    """
    b, _, h, w = img.shape
    use_gray, gray_noise = _gray_weights(gray_noise, b)
    noise_gray = None
    if use_gray:
        luma = (0.2989 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]).to(img.dtype)
        noise_gray = _poisson_noise(luma, generator).expand(b, 3, h, w)
    return _mix_gray(_poisson_noise(img, generator), noise_gray, gray_noise) * _per_sample(scale, b)


def add_poisson_noise_pt(
    img: torch.Tensor,
    scale: Number | torch.Tensor = 1.0,
    clip: bool = True,
    rounds: bool = False,
    gray_noise: Number | torch.Tensor = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``img`` plus Poisson noise, then ``clip`` / ``rounds`` (note BasicSR's argument order: gray_noise last)."""
    return _finish_pt(img + generate_poisson_noise_pt(img, scale, gray_noise, generator), clip, rounds)


def random_generate_poisson_noise_pt(
    img: torch.Tensor,
    scale_range: Sequence[float] = (0, 1.0),
    gray_prob: float = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Poisson noise with ``scale ~ U(scale_range)`` and gray noise with probability ``gray_prob``, per sample."""
    scale, gray_noise = _draw_per_sample(img, scale_range, gray_prob, generator)
    return generate_poisson_noise_pt(img, scale, gray_noise, generator)


def random_add_poisson_noise_pt(
    img: torch.Tensor,
    scale_range: Sequence[float] = (0, 1.0),
    gray_prob: float = 0,
    clip: bool = True,
    rounds: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``img`` plus :func:`random_generate_poisson_noise_pt` noise, then ``clip`` / ``rounds``."""
    return _finish_pt(img + random_generate_poisson_noise_pt(img, scale_range, gray_prob, generator), clip, rounds)


# ----------------------------------------------------------------------------- NumPy (one HWC image)


def generate_gaussian_noise(img: np.ndarray, sigma: float = 10, gray_noise: bool = False) -> np.ndarray:
    """Gaussian noise (float32, shaped like the (H, W, C) ``img``) with std ``sigma / 255``; NumPy's global RNG."""
    if gray_noise:
        plane = np.float32(np.random.randn(*img.shape[:2])) * sigma / 255.0
        return np.repeat(plane[:, :, None], 3, axis=2)
    return np.float32(np.random.randn(*img.shape)) * sigma / 255.0


def add_gaussian_noise(
    img: np.ndarray, sigma: float = 10, clip: bool = True, rounds: bool = False, gray_noise: bool = False
) -> np.ndarray:
    """``img`` plus :func:`generate_gaussian_noise`, then ``clip`` / ``rounds``."""
    return _finish_np(img + generate_gaussian_noise(img, sigma, gray_noise), clip, rounds)


def random_generate_gaussian_noise(
    img: np.ndarray, sigma_range: Sequence[float] = (0, 10), gray_prob: float = 0
) -> np.ndarray:
    """Gaussian noise with ``sigma ~ U(sigma_range)``, gray with probability ``gray_prob``."""
    sigma = np.random.uniform(sigma_range[0], sigma_range[1])
    return generate_gaussian_noise(img, sigma, np.random.uniform() < gray_prob)


def random_add_gaussian_noise(
    img: np.ndarray,
    sigma_range: Sequence[float] = (0, 1.0),
    gray_prob: float = 0,
    clip: bool = True,
    rounds: bool = False,
) -> np.ndarray:
    """``img`` plus :func:`random_generate_gaussian_noise`, then ``clip`` / ``rounds``."""
    return _finish_np(img + random_generate_gaussian_noise(img, sigma_range, gray_prob), clip, rounds)


def generate_poisson_noise(img: np.ndarray, scale: float = 1.0, gray_noise: bool = False) -> np.ndarray:
    """Poisson noise for one (H, W, 3) BGR image (gray: from its luma), times ``scale``; NumPy's global RNG."""
    if gray_noise:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    img = np.clip((img * 255.0).round(), 0, 255) / 255.0
    vals = 2 ** np.ceil(np.log2(len(np.unique(img))))
    noise = np.float32(np.random.poisson(img * vals) / float(vals)) - img
    if gray_noise:
        noise = np.repeat(noise[:, :, None], 3, axis=2)
    return noise * scale


def add_poisson_noise(
    img: np.ndarray, scale: float = 1.0, clip: bool = True, rounds: bool = False, gray_noise: bool = False
) -> np.ndarray:
    """``img`` plus :func:`generate_poisson_noise`, then ``clip`` / ``rounds``."""
    return _finish_np(img + generate_poisson_noise(img, scale, gray_noise), clip, rounds)


def random_generate_poisson_noise(
    img: np.ndarray, scale_range: Sequence[float] = (0, 1.0), gray_prob: float = 0
) -> np.ndarray:
    """Poisson noise with ``scale ~ U(scale_range)``, gray with probability ``gray_prob``."""
    scale = np.random.uniform(scale_range[0], scale_range[1])
    return generate_poisson_noise(img, scale, np.random.uniform() < gray_prob)


def random_add_poisson_noise(
    img: np.ndarray,
    scale_range: Sequence[float] = (0, 1.0),
    gray_prob: float = 0,
    clip: bool = True,
    rounds: bool = False,
) -> np.ndarray:
    """``img`` plus :func:`random_generate_poisson_noise`, then ``clip`` / ``rounds``."""
    return _finish_np(img + random_generate_poisson_noise(img, scale_range, gray_prob), clip, rounds)


def add_jpg_compression(img: np.ndarray, quality: float = 90) -> np.ndarray:
    """Round-trip one (H, W, 3) BGR image in [0, 1] through OpenCV's JPEG codec at ``quality``; float32 out."""
    img = np.clip(img, 0, 1)
    ok, buf = cv2.imencode(".jpg", img * 255.0, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"add_jpg_compression: OpenCV could not encode an image of shape {img.shape}")
    return np.float32(cv2.imdecode(buf, cv2.IMREAD_COLOR)) / 255.0


def random_add_jpg_compression(img: np.ndarray, quality_range: Sequence[float] = (90, 100)) -> np.ndarray:
    """:func:`add_jpg_compression` with ``quality ~ U(quality_range)``."""
    return add_jpg_compression(img, np.random.uniform(quality_range[0], quality_range[1]))
