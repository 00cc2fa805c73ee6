"""``RealESRGANDataset``: GT crops plus the random blur kernels of Real-ESRGAN's second-order degradation.

Only the per-sample part of the degradation happens here (in the loader workers); the rest runs on the training
device in :mod:`restore.models.real_degradation`. For each GT image:

1. read it (float32 RGB in [0, 1]); GT files come from ``meta_info`` (a list of file names relative to
   ``dataroot_gt``, first column) when set, else the sorted image files directly inside ``dataroot_gt``;
2. bring it to :data:`CROP_PAD_SIZE` (400) pixels a side: pad bottom/right by reflection without repeating the
   edge (OpenCV ``BORDER_REFLECT_101``) when smaller, take a random 400 x 400 crop when larger;
3. flip/transpose as BasicSR's ``augment`` (``use_hflip``, ``use_rot``);
4. draw ``kernel1`` (first blur), ``kernel2`` (second blur) and ``sinc_kernel`` (final filter), each 21 x 21:

   - blur kernels: side drawn uniformly from 7, 9, ..., 21; with probability ``sinc_prob`` a circular low-pass
     kernel with cutoff U(pi/3, pi) (U(pi/5, pi) for sides >= 13), otherwise ``random_mixed_kernels`` with
     ``kernel_list``/``kernel_prob``, sigma in ``blur_sigma``, rotation in [-pi, pi], ``betag_range``,
     ``betap_range``; zero-padded to 21 x 21. ``kernel2`` uses the ``*2`` keys.
   - ``sinc_kernel``: with probability ``final_sinc_prob`` a circular low-pass kernel (side from 7..21, cutoff
     U(pi/3, pi), padded to 21), otherwise the identity (a unit impulse).

Items: ``{'gt': (3, 400, 400), 'kernel1', 'kernel2', 'sinc_kernel': (21, 21) float32, 'gt_path'}``.

Keys read by the official option files but ignored by the official dataset, and so here: ``blur_kernel_size``,
``blur_kernel_size2`` (the side is always drawn from 7..21), ``meta_info_file`` (only ``meta_info`` selects
files) and ``gt_size`` (the patch is cut after the degradation, with the top-level ``gt_size``).

Random draws come from the per-sample seed that :class:`restore.data.sampler.TrainSampler` passes with each
index, so an item depends only on ``(index, seed)``: not on the worker that loads it, nor on an interruption.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from restore.data import transforms
from restore.data.datasets import list_images, read_meta_info, read_rgb, split_key
from restore.utils.registry import DATASET_REGISTRY

__all__ = ["CROP_PAD_SIZE", "KERNEL_SIDES", "RealESRGANDataset", "draw_blur_kernel", "draw_sinc_kernel"]

#: Side of the GT crop handed to the degradation (hard-coded in the official dataset).
CROP_PAD_SIZE = 400
#: Possible blur-kernel sides; every kernel is zero-padded to the largest.
KERNEL_SIDES = (7, 9, 11, 13, 15, 17, 19, 21)
KERNEL_PAD = KERNEL_SIDES[-1]

_DEFAULT_KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
_DEFAULT_PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's and NumPy's global generators for the block, then put their previous states back.

    BasicSR's kernel functions draw from the global generators; this keeps the draws tied to ``seed`` without
    disturbing the caller's random stream (e.g. the main process when the loader has no workers).
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _pad_kernel(kernel: np.ndarray) -> np.ndarray:
    pad = (KERNEL_PAD - kernel.shape[0]) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad))) if pad else kernel


def draw_blur_kernel(
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    sinc_prob: float,
    blur_sigma: Sequence[float],
    betag_range: Sequence[float],
    betap_range: Sequence[float],
) -> np.ndarray:
    """One 21 x 21 blur kernel (sums to 1), drawn from the global ``random``/``np.random`` as the official dataset."""
    from restore.data.degradations import circular_lowpass_kernel, random_mixed_kernels

    side = random.choice(KERNEL_SIDES)
    if np.random.uniform() < sinc_prob:
        low = math.pi / 3 if side < 13 else math.pi / 5
        kernel = circular_lowpass_kernel(np.random.uniform(low, math.pi), side, pad_to=False)
    else:
        kernel = random_mixed_kernels(
            list(kernel_list),
            list(kernel_prob),
            side,
            list(blur_sigma),
            list(blur_sigma),
            [-math.pi, math.pi],
            list(betag_range),
            list(betap_range),
            noise_range=None,
        )
    return _pad_kernel(np.asarray(kernel, dtype=np.float64))


def draw_sinc_kernel(final_sinc_prob: float) -> np.ndarray:
    """The final 21 x 21 filter: a circular low-pass kernel with probability ``final_sinc_prob``, else an impulse."""
    from restore.data.degradations import circular_lowpass_kernel

    if np.random.uniform() < final_sinc_prob:
        side = random.choice(KERNEL_SIDES)
        return np.asarray(circular_lowpass_kernel(np.random.uniform(math.pi / 3, math.pi), side, pad_to=KERNEL_PAD))
    pulse = np.zeros((KERNEL_PAD, KERNEL_PAD))
    pulse[KERNEL_PAD // 2, KERNEL_PAD // 2] = 1.0
    return pulse


def crop_or_pad(img: np.ndarray, size: int, rng: Any) -> np.ndarray:
    """Pad (bottom/right, ``BORDER_REFLECT_101``) to at least ``size`` a side, then crop ``size`` x ``size`` at a
    random position (top, then left, from ``rng.randint``)."""
    h, w = img.shape[:2]
    if h < size or w < size:
        img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
        if img.ndim == 2:
            img = img[..., None]
        h, w = img.shape[:2]
    if h > size or w > size:
        top, left = rng.randint(0, h - size), rng.randint(0, w - size)
        img = img[top : top + size, left : left + size]
    return img


@DATASET_REGISTRY.register()
class RealESRGANDataset(Dataset):
    """GT images and per-sample degradation kernels for Real-ESRGAN-style training (see the module docstring).

    Args:
        opt: a ``datasets.train`` dict: ``dataroot_gt``, optional ``meta_info``, ``io_backend`` (disk),
            ``use_hflip``, ``use_rot``, and the kernel keys ``kernel_list``, ``kernel_prob``, ``sinc_prob``,
            ``blur_sigma``, ``betag_range``, ``betap_range`` (and their ``*2`` versions), ``final_sinc_prob``.
    """

    def __init__(self, opt: Mapping[str, Any]) -> None:
        super().__init__()
        self.opt = dict(opt)
        self.name = str(opt.get("name") or "RealESRGANDataset")
        where = f"datasets.{self.name}"
        backend = (opt.get("io_backend") or {}).get("type", "disk")
        if backend != "disk":
            raise ValueError(f"{where}.io_backend.type: only 'disk' is supported, got {backend!r}")
        folder = opt.get("dataroot_gt")
        if not folder:
            raise ValueError(f"{where}.dataroot_gt: missing (a folder of GT images, see datasets/README.md)")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: {where}.dataroot_gt folder not found")
        if opt.get("meta_info"):
            self.paths = [os.path.join(folder, name) for name in read_meta_info(opt["meta_info"])]
        else:
            self.paths = list_images(folder)
            if not self.paths:
                raise FileNotFoundError(f"{folder}: no images in {where}.dataroot_gt")
        self.use_hflip = bool(opt.get("use_hflip", True))
        self.use_rot = bool(opt.get("use_rot", False))
        self.first = self._kernel_options(opt, "", where)
        self.second = self._kernel_options(opt, "2", where)
        self.final_sinc_prob = float(opt.get("final_sinc_prob", 0.8))

    @staticmethod
    def _kernel_options(opt: Mapping[str, Any], suffix: str, where: str) -> dict[str, Any]:
        out = {
            "kernel_list": list(opt.get("kernel_list" + suffix) or _DEFAULT_KERNELS),
            "kernel_prob": [float(p) for p in (opt.get("kernel_prob" + suffix) or _DEFAULT_PROBS)],
            "sinc_prob": float(opt.get("sinc_prob" + suffix, 0.1)),
            "blur_sigma": list(opt.get("blur_sigma" + suffix) or ([0.2, 3] if not suffix else [0.2, 1.5])),
            "betag_range": list(opt.get("betag_range" + suffix) or [0.5, 4]),
            "betap_range": list(opt.get("betap_range" + suffix) or [1, 2]),
        }
        if len(out["kernel_list"]) != len(out["kernel_prob"]):
            raise ValueError(
                f"{where}.kernel_prob{suffix}: {len(out['kernel_prob'])} probabilities for "
                f"{len(out['kernel_list'])} kernel types in kernel_list{suffix}"
            )
        return out

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, rng = split_key(key)
        path = self.paths[index % len(self.paths)]
        gt = read_rgb(path)
        gt = crop_or_pad(gt, CROP_PAD_SIZE, rng)
        (gt,) = transforms.flip_rotate([gt], self.use_hflip, self.use_rot, rng)
        seed = rng.getrandbits(63) if isinstance(rng, random.Random) else None
        with seeded_global_rngs(seed) if seed is not None else contextlib.nullcontext():
            kernel1 = draw_blur_kernel(**self.first)
            kernel2 = draw_blur_kernel(**self.second)
            sinc_kernel = draw_sinc_kernel(self.final_sinc_prob)
        return {
            "gt": transforms.to_tensor_chw(gt),
            "kernel1": torch.from_numpy(kernel1.astype(np.float32)),
            "kernel2": torch.from_numpy(kernel2.astype(np.float32)),
            "sinc_kernel": torch.from_numpy(sinc_kernel.astype(np.float32)),
            "gt_path": path,
        }
