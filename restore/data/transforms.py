"""Paired crops and geometric augmentations on (H, W, C) NumPy images.

Randomness comes from an explicit ``random.Random`` so that a sample's augmentation depends only on its seed
(see ``restore.data.sampler``), not on which worker process loads it or on where a run was resumed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch


def fit_pair(gt: np.ndarray, lq: np.ndarray, scale: int, gt_path: str = "<gt>", lq_path: str = "<lq>") -> np.ndarray:
    """Check that ``lq`` is ``gt`` downscaled by ``scale`` and crop ``gt`` to exactly ``scale`` times ``lq``.

    GT images whose sides are not multiples of ``scale`` are accepted (benchmark HR images are often not
    mod-cropped): the rule is ``lq_side == gt_side // scale``, then GT is cropped at the top left.

    Returns:
        ``gt[: scale * h_lq, : scale * w_lq]``.

    Raises:
        ValueError: one line naming both files, their sizes and the scale.
    """
    (h_gt, w_gt), (h_lq, w_lq) = gt.shape[:2], lq.shape[:2]
    if h_gt // scale != h_lq or w_gt // scale != w_lq:
        raise ValueError(
            f"size mismatch at scale {scale}: GT {gt_path} is {h_gt}x{w_gt} (HxW) but LQ {lq_path} is {h_lq}x{w_lq}; "
            f"expected LQ {h_gt // scale}x{w_gt // scale}"
        )
    return gt[: h_lq * scale, : w_lq * scale]


def paired_random_crop(
    gt: np.ndarray, lq: np.ndarray, gt_size: int, scale: int, rng: random.Random, lq_path: str = "<lq>"
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a ``gt_size`` GT patch and the aligned ``gt_size // scale`` LQ patch at a random LQ-grid position.

    Args:
        gt: (scale*h, scale*w, C) image (see :func:`fit_pair`).
        lq: (h, w, C) image.
        gt_size: GT patch side in pixels; must be a multiple of ``scale``.
        rng: source of the crop position (top first, then left, each uniform over valid LQ offsets).

    Raises:
        ValueError: ``gt_size`` not a multiple of ``scale``, or an LQ image smaller than the patch (names the file).
    """
    if gt_size % scale:
        raise ValueError(f"gt_size: {gt_size} is not a multiple of scale {scale}")
    lq_size = gt_size // scale
    h, w = lq.shape[:2]
    if h < lq_size or w < lq_size:
        raise ValueError(f"{lq_path}: LQ image {h}x{w} is smaller than the {lq_size}x{lq_size} training patch")
    top = rng.randint(0, h - lq_size)
    left = rng.randint(0, w - lq_size)
    lq_patch = lq[top : top + lq_size, left : left + lq_size]
    gt_patch = gt[top * scale : (top + lq_size) * scale, left * scale : (left + lq_size) * scale]
    return gt_patch, lq_patch


def random_crop(img: np.ndarray, size: int, rng: random.Random, path: str = "<gt>") -> np.ndarray:
    """Crop a random ``size`` x ``size`` patch of ``img`` (used when LQ is made from the GT patch)."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{path}: image {h}x{w} is smaller than the {size}x{size} training patch")
    top = rng.randint(0, h - size)
    left = rng.randint(0, w - size)
    return img[top : top + size, left : left + size]


def pad_to_size(images: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """Pad images smaller than ``size`` at the bottom/right by mirror reflection with the edge repeated
    (OpenCV ``BORDER_REFLECT``), as DRSformer does before cropping; larger images are returned unchanged."""
    out = []
    for img in images:
        pad_h, pad_w = max(0, size - img.shape[0]), max(0, size - img.shape[1])
        if pad_h or pad_w:
            img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        out.append(img)
    return out


def flip_rotate(images: Sequence[np.ndarray], hflip: bool, rotation: bool, rng: random.Random) -> list[np.ndarray]:
    """BasicSR's ``augment``: horizontal flip, vertical flip and transpose, each with probability 1/2.

    The same transform is applied to every image. Draw order: horizontal flip (only if ``hflip``), then vertical
    flip and transpose (only if ``rotation``), so disabled options consume no random numbers.
    """
    do_hflip = hflip and rng.random() < 0.5
    do_vflip = rotation and rng.random() < 0.5
    do_transpose = rotation and rng.random() < 0.5
    out = []
    for img in images:
        if do_hflip:
            img = img[:, ::-1]
        if do_vflip:
            img = img[::-1]
        if do_transpose:
            img = img.transpose(1, 0, 2)
        out.append(img)
    return out


def dihedral(img: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 symmetries of the square: ``mode = 2 * k + f`` rotates by ``k * 90`` degrees counter-clockwise
    (``np.rot90``), then flips up-down if ``f == 1`` (DRSformer's ``data_augmentation`` modes 0..7)."""
    if not 0 <= mode < 8:
        raise ValueError(f"dihedral: mode must be in 0..7, got {mode}")
    out = np.rot90(img, k=mode // 2)
    return np.flipud(out) if mode % 2 else out


def random_dihedral(images: Sequence[np.ndarray], rng: random.Random) -> list[np.ndarray]:
    """Apply the same uniformly drawn :func:`dihedral` transform to every image (``geometric_augs``)."""
    mode = rng.randint(0, 7)
    return [dihedral(img, mode) for img in images]


def to_tensor_chw(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> contiguous (C, H, W) float32 tensor (no channel reordering)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))
