"""Real-ESRGAN's second-order degradation on the training device, and the pool of training pairs.

:func:`degrade` turns a batch of 400 x 400 GT crops and their per-sample kernels (from
:class:`restore.data.real_esrgan.RealESRGANDataset`) into LQ images ``scale`` times smaller:

1. blur with ``kernel1``; random resize (up/down/keep with ``resize_prob``, factor in ``resize_range``, mode
   area/bilinear/bicubic); Gaussian (probability ``gaussian_noise_prob``, sigma in ``noise_range`` on the
   0..255 scale) or Poisson noise (scale in ``poisson_scale_range``), each sample gray with probability
   ``gray_noise_prob``; JPEG with quality in ``jpeg_range``;
2. the same again with the ``*2`` keys, the blur only with probability ``second_blur_prob`` and the resize to a
   size relative to the final LQ size;
3. in random order: (resize to the LQ size, final ``sinc_kernel`` filter, JPEG in ``jpeg_range2``) or (JPEG,
   resize, filter);
4. quantise to the 8-bit grid: ``round(255 x) / 255`` clamped to [0, 1].

Stage and resize decisions are drawn once per batch (Python ``random`` and NumPy's global generator), noise
levels, gray flags and JPEG qualities per sample (torch's generator of the device). All of these generators are
seeded from ``manual_seed`` and saved in the training state, so the stream is reproducible and resumable.

:class:`PairPool` is the official ``queue_size`` pool: the first ``queue_size / batch`` batches fill it (and are
used as they are); afterwards every batch is swapped for ``batch`` pairs drawn from the shuffled pool.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from restore.data import real_esrgan as real_esrgan_data
from restore.utils.options import OptionsError

__all__ = ["DegradationSettings", "PairPool", "degrade", "paired_random_crop", "quantize"]

_RESIZE_MODES = ("area", "bilinear", "bicubic")


def _pair(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise OptionsError(f"{key}: expected [low, high], got {value!r}")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise OptionsError(f"{key}: expected low <= high, got {value!r}")
    return low, high


@dataclass(frozen=True)
class DegradationSettings:
    """The top-level degradation keys of a Real-ESRGAN option file (defaults: the official values)."""

    scale: int = 4
    gt_size: int = 256
    queue_size: int = 180
    resize_prob: tuple[float, ...] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    resize_prob2: tuple[float, ...] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)

    @classmethod
    def from_options(cls, opt: Mapping[str, Any]) -> DegradationSettings:
        """Read the keys from a validated option dict; wrong shapes raise one-line ``OptionsError`` naming the key."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if opt.get(f.name) is None:
                continue
            raw = opt[f.name]
            if f.name.startswith("resize_prob"):
                if not isinstance(raw, (list, tuple)) or len(raw) != 3:
                    raise OptionsError(f"{f.name}: expected [up, down, keep] probabilities, got {raw!r}")
                values[f.name] = tuple(float(v) for v in raw)
            elif f.name.endswith(("_range", "_range2")):
                values[f.name] = _pair(raw, f.name)
            elif f.name in ("scale", "gt_size", "queue_size"):
                values[f.name] = int(raw)
            else:
                values[f.name] = float(raw)
        settings = cls(**values)
        crop = real_esrgan_data.CROP_PAD_SIZE
        if settings.gt_size > crop:
            raise OptionsError(
                f"gt_size: {settings.gt_size} is larger than the {crop}-pixel GT crop that RealESRGANDataset "
                f"makes; use at most {crop}"
            )
        if settings.gt_size % settings.scale:
            raise OptionsError(f"gt_size: {settings.gt_size} is not a multiple of scale {settings.scale}")
        if settings.queue_size < 1:
            raise OptionsError(f"queue_size: expected a positive int, got {settings.queue_size}")
        return settings


def _resize_factor(prob: Sequence[float], value_range: tuple[float, float]) -> float:
    kind = random.choices(("up", "down", "keep"), prob)[0]
    if kind == "up":
        return float(np.random.uniform(1, value_range[1]))
    if kind == "down":
        return float(np.random.uniform(value_range[0], 1))
    return 1.0


def _add_noise(out: torch.Tensor, gaussian_prob: float, sigma: tuple, poisson: tuple, gray: float) -> torch.Tensor:
    from restore.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt

    if np.random.uniform() < gaussian_prob:
        return random_add_gaussian_noise_pt(out, sigma_range=sigma, clip=True, rounds=False, gray_prob=gray)
    return random_add_poisson_noise_pt(out, scale_range=poisson, gray_prob=gray, clip=True, rounds=False)


def _jpeg(out: torch.Tensor, jpeger: torch.nn.Module, quality_range: tuple[float, float]) -> torch.Tensor:
    quality = out.new_zeros(out.size(0)).uniform_(*quality_range)
    return jpeger(out.clamp(0, 1), quality=quality)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """``clamp(round(255 img), 0, 255) / 255``: values on the 8-bit grid, as saved LQ images would be."""
    return torch.clamp((img * 255.0).round(), 0, 255) / 255.0


@torch.no_grad()
def degrade(
    gt: torch.Tensor,
    kernel1: torch.Tensor,
    kernel2: torch.Tensor,
    sinc_kernel: torch.Tensor,
    settings: DegradationSettings,
    jpeger: torch.nn.Module,
) -> torch.Tensor:
    """The second-order degradation (module docstring, steps 1-4).

    Args:
        gt: (B, 3, H, W) RGB in [0, 1] (the USM-sharpened GT in the official recipes).
        kernel1, kernel2, sinc_kernel: (B, k, k) per-sample kernels.
        settings: the degradation keys.
        jpeger: BasicSR's ``DiffJPEG(differentiable=False)``.

    Returns:
        (B, 3, H // scale, W // scale) LQ on the 8-bit grid.
    """
    from restore.data.degradations import filter2D

    s = settings
    h, w = gt.shape[-2:]
    # first stage
    out = filter2D(gt, kernel1)
    factor = _resize_factor(s.resize_prob, s.resize_range)
    out = F.interpolate(out, scale_factor=factor, mode=random.choice(_RESIZE_MODES))
    out = _add_noise(out, s.gaussian_noise_prob, s.noise_range, s.poisson_scale_range, s.gray_noise_prob)
    out = _jpeg(out, jpeger, s.jpeg_range)
    # second stage
    if np.random.uniform() < s.second_blur_prob:
        out = filter2D(out, kernel2)
    factor = _resize_factor(s.resize_prob2, s.resize_range2)
    size = (int(h / s.scale * factor), int(w / s.scale * factor))
    out = F.interpolate(out, size=size, mode=random.choice(_RESIZE_MODES))
    out = _add_noise(out, s.gaussian_noise_prob2, s.noise_range2, s.poisson_scale_range2, s.gray_noise_prob2)
    # final: resize + sinc filter and JPEG, in random order
    lq_size = (h // s.scale, w // s.scale)
    if np.random.uniform() < 0.5:
        out = F.interpolate(out, size=lq_size, mode=random.choice(_RESIZE_MODES))
        out = filter2D(out, sinc_kernel)
        out = _jpeg(out, jpeger, s.jpeg_range2)
    else:
        out = _jpeg(out, jpeger, s.jpeg_range2)
        out = F.interpolate(out, size=lq_size, mode=random.choice(_RESIZE_MODES))
        out = filter2D(out, sinc_kernel)
    return quantize(out)


def paired_random_crop(
    gts: Sequence[torch.Tensor], lq: torch.Tensor, gt_size: int, scale: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One random ``gt_size // scale`` LQ window (top, then left, from Python ``random``) for the whole batch and
    the aligned ``gt_size`` window of every tensor in ``gts``.

    Raises:
        ValueError: the LQ is smaller than the window or a GT is not ``scale`` times the LQ.
    """
    lq_size = gt_size // scale
    h, w = lq.shape[-2:]
    if h < lq_size or w < lq_size:
        raise ValueError(f"gt_size: LQ {h}x{w} is smaller than the {lq_size}x{lq_size} patch (gt_size / scale)")
    for gt in gts:
        if gt.shape[-2:] != (h * scale, w * scale):
            raise ValueError(f"scale: GT {tuple(gt.shape[-2:])} is not {scale} x LQ {h}x{w}")
    top, left = random.randint(0, h - lq_size), random.randint(0, w - lq_size)
    lq = lq[..., top : top + lq_size, left : left + lq_size]
    crops = [gt[..., top * scale : (top + lq_size) * scale, left * scale : (left + lq_size) * scale] for gt in gts]
    return crops, lq


def _pack(t: torch.Tensor) -> dict[str, Any]:
    """Store a pool tensor as uint8 when it lies exactly on the 8-bit grid (LQ always does), else as it is."""
    q = (t * 255.0).round()
    if torch.equal(q / 255.0, t) and bool((q >= 0).all()) and bool((q <= 255).all()):
        return {"uint8": q.to(torch.uint8).cpu(), "dtype": str(t.dtype).removeprefix("torch.")}
    return {"tensor": t.cpu()}


def _unpack(packed: Mapping[str, Any], device: torch.device) -> torch.Tensor:
    if "uint8" in packed:
        return packed["uint8"].to(device).to(getattr(torch, packed["dtype"])) / 255.0
    return packed["tensor"].to(device)


class PairPool:
    """The training-pair pool (BasicSR's ``_dequeue_and_enqueue``), one per process.

    Args:
        size: ``queue_size``; must be a multiple of the batch size.
        batch_size: the per-process batch size (``datasets.train.batch_size_per_gpu``).

    Raises:
        OptionsError: ``size`` is not divisible by ``batch_size`` (one line naming ``queue_size``).
    """

    def __init__(self, size: int, batch_size: int) -> None:
        if size % batch_size:
            raise OptionsError(
                f"queue_size: {size} is not divisible by datasets.train.batch_size_per_gpu {batch_size}; "
                f"use a multiple such as {max(1, size // batch_size) * batch_size}"
            )
        self.size, self.batch_size = int(size), int(batch_size)
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None
        self.filled = 0

    def __call__(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Put the fresh batch in; return the batch to train on (the fresh one while filling)."""
        b = lq.shape[0]
        if b != self.batch_size:
            raise ValueError(f"queue_size: pool made for batches of {self.batch_size}, got {b}")
        if self.lq is None:
            self.lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.size, *gt.shape[1:]))
        assert self.gt is not None
        if self.filled < self.size:
            self.lq[self.filled : self.filled + b] = lq
            self.gt[self.filled : self.filled + b] = gt
            self.filled += b
            return lq, gt
        order = torch.randperm(self.size).to(self.lq.device)
        self.lq, self.gt = self.lq[order], self.gt[order]
        out_lq, out_gt = self.lq[:b].clone(), self.gt[:b].clone()
        self.lq[:b] = lq
        self.gt[:b] = gt
        return out_lq, out_gt

    def state_dict(self) -> dict[str, Any]:
        if self.lq is None or self.gt is None:
            return {"filled": 0}
        return {"filled": self.filled, "lq": _pack(self.lq), "gt": _pack(self.gt)}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.filled = int(state.get("filled", 0))
        if "lq" in state:
            self.lq, self.gt = _unpack(state["lq"], device), _unpack(state["gt"], device)
            if self.lq.shape[0] != self.size:
                raise ValueError(
                    f"queue_size: the training state holds a pool of {self.lq.shape[0]}, the options say {self.size}"
                )
        else:
            self.lq = self.gt = None
