"""Image datasets with BasicSR's option keys, registered in ``DATASET_REGISTRY``.

Every item is a dict of (C, H, W) float32 RGB tensors in [0, 1] plus the source paths:
``{'lq', 'gt', 'lq_path', 'gt_path'}`` for paired data and ``{'lq', 'lq_path'}`` for ``SingleImageDataset``.

``PairedImageDataset`` (``opt['phase'] == 'train'`` with ``gt_size`` set: training patches; otherwise whole images):

- GT/LQ pairs from two folders (``dataroot_gt``, ``dataroot_lq``): each GT file ``<name><ext>`` pairs with the LQ
  file ``filename_tmpl.format(<name>)<ext>``; or from ``meta_info_file`` (one GT file name per line, first column).
- LQ sides must be ``GT side // scale``; GT is then cropped to exactly ``scale`` times LQ (so benchmark HR images
  need not be mod-cropped). Any other size is an error naming both files.
- GT only (``dataroot_lq: ~``): LQ images are made on the fly with MATLAB-bicubic ``imresize`` by ``1 / scale``
  and rounded to 8 bits, as benchmark LR files are. Training crops the GT patch, augments it, then downscales it.
- training: a random ``gt_size`` GT patch aligned to the LQ grid; ``use_hflip``/``use_rot`` flips and
  transposes (BasicSR), or ``geometric_augs`` for the 8 rotations/flips (DRSformer).

``Dataset_PairedImage`` (DRSformer's name) is the same dataset, except that images smaller than the patch are
padded by reflection instead of rejected. Deraining data (``rainy``/``clean`` folders) use it with ``scale: 1``.

Random crops and flips come from the per-sample seed that :class:`restore.data.sampler.TrainSampler` passes
with each index (``dataset[(index, seed)]``); a plain ``dataset[index]`` uses Python's global ``random``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from restore.data import transforms
from restore.data.imresize import imresize, round_to_uint8
from restore.utils.registry import DATASET_REGISTRY

__all__ = ["Dataset_PairedImage", "PairedImageDataset", "SingleImageDataset", "list_images", "read_rgb"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1] (gray is replicated, alpha dropped, 16-bit scaled)."""
    from restore.data.image_io import read_image

    return read_image(path).rgb


def list_images(folder: str) -> list[str]:
    """Sorted paths of the image files directly inside ``folder`` (hidden files skipped)."""
    if not folder or not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: image folder not found")
    names = sorted(
        n for n in os.listdir(folder) if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
    )
    return [os.path.join(folder, n) for n in names]


def read_meta_info(meta_info_file: str) -> list[str]:
    """File names listed in a BasicSR meta-info file: the first whitespace-separated column of each line."""
    with open(meta_info_file, encoding="utf-8") as handle:
        names = [line.split()[0] for line in handle if line.strip()]
    if not names:
        raise ValueError(f"{meta_info_file}: meta_info_file lists no images")
    return names


def pair_paths(
    gt_folder: str, lq_folder: str | None, filename_tmpl: str = "{}", meta_info_file: str | None = None
) -> list[tuple[str, str | None]]:
    """``(gt_path, lq_path)`` for every GT image; ``lq_path`` is ``None`` when ``lq_folder`` is ``None``.

    Raises:
        FileNotFoundError: a folder, or the LQ file that a GT file needs (both named).
        ValueError: the LQ folder holds images that no GT image pairs with (folder mode).
    """
    if not os.path.isdir(gt_folder):
        raise FileNotFoundError(f"{gt_folder}: dataroot_gt folder not found")
    if meta_info_file:
        gt_paths = [os.path.join(gt_folder, name) for name in read_meta_info(meta_info_file)]
    else:
        gt_paths = list_images(gt_folder)
        if not gt_paths:
            raise FileNotFoundError(f"{gt_folder}: no images in dataroot_gt")
    if lq_folder is None:
        return [(p, None) for p in gt_paths]
    if not os.path.isdir(lq_folder):
        raise FileNotFoundError(f"{lq_folder}: dataroot_lq folder not found")
    pairs = []
    for gt_path in gt_paths:
        stem, ext = os.path.splitext(os.path.basename(gt_path))
        lq_path = os.path.join(lq_folder, filename_tmpl.format(stem) + ext)
        if not os.path.isfile(lq_path):
            raise FileNotFoundError(f"{lq_path}: LQ image for GT {gt_path} not found (filename_tmpl {filename_tmpl!r})")
        pairs.append((gt_path, lq_path))
    if not meta_info_file:
        unmatched = sorted(set(list_images(lq_folder)) - {lq for _, lq in pairs})
        if unmatched:
            raise ValueError(
                f"{lq_folder}: {len(unmatched)} LQ image(s) have no GT partner in {gt_folder}, e.g. "
                f"{', '.join(os.path.basename(p) for p in unmatched[:3])} (filename_tmpl {filename_tmpl!r})"
            )
    return pairs


def split_key(key: int | tuple[int, int]) -> tuple[int, random.Random | Any]:
    """``index`` -> (index, global ``random``); ``(index, seed)`` -> (index, ``random.Random(seed)``)."""
    if isinstance(key, tuple):
        index, seed = key
        return int(index), random.Random(seed)
    return int(key), random


def bicubic_lq(gt: np.ndarray, scale: int) -> np.ndarray:
    """LQ made from a GT image whose sides are multiples of ``scale``: MATLAB bicubic by ``1 / scale``, 8-bit."""
    return round_to_uint8(imresize(gt, 1.0 / scale)).astype(np.float32) / 255.0


def _check_io_backend(opt: Mapping[str, Any], where: str) -> None:
    backend = (opt.get("io_backend") or {}).get("type", "disk")
    if backend != "disk":
        raise ValueError(f"{where}.io_backend.type: only 'disk' is supported, got {backend!r}")


def _to_y(img: np.ndarray) -> np.ndarray:
    from restore.data.color import rgb2ycbcr

    return rgb2ycbcr(img, y_only=True)[..., None].astype(np.float32)


@DATASET_REGISTRY.register()
class PairedImageDataset(Dataset):
    """GT/LQ image pairs (or GT only, with bicubic LQ made on the fly); see the module docstring.

    Args:
        opt: a ``datasets.<phase>`` option dict: ``dataroot_gt``, ``dataroot_lq`` (``None``: bicubic from GT),
            ``filename_tmpl``, ``meta_info_file``, ``io_backend`` (disk), ``phase``, ``scale``, ``gt_size``,
            ``use_hflip``, ``use_rot``, ``geometric_augs``, ``color`` (``y``: one luminance channel).
    """

    #: Pad images smaller than the training patch (DRSformer) instead of rejecting them (BasicSR).
    pad_small_images = False

    def __init__(self, opt: Mapping[str, Any]) -> None:
        super().__init__()
        self.opt = dict(opt)
        self.name = str(opt.get("name") or type(self).__name__)
        where = f"datasets.{self.name}"
        _check_io_backend(opt, where)
        self.scale = int(opt.get("scale") or 1)
        self.gt_size = opt.get("gt_size")
        self.training = opt.get("phase") == "train" and self.gt_size is not None
        if self.training and int(self.gt_size) % self.scale:
            raise ValueError(f"{where}.gt_size: {self.gt_size} is not a multiple of scale {self.scale}")
        self.use_hflip = bool(opt.get("use_hflip", False))
        self.use_rot = bool(opt.get("use_rot", False))
        self.geometric_augs = bool(opt.get("geometric_augs", False))
        self.color = opt.get("color")
        if self.color not in (None, "rgb", "y"):
            raise ValueError(f"{where}.color: expected 'y' or 'rgb', got {self.color!r}")
        lq_folder = opt.get("dataroot_lq")
        if lq_folder is None and self.scale == 1:
            raise ValueError(f"{where}.dataroot_lq: required when scale is 1 (LQ is made from GT only by downscaling)")
        if opt.get("dataroot_gt") is None:
            raise ValueError(f"{where}.dataroot_gt: missing")
        self.paths = pair_paths(
            opt["dataroot_gt"], lq_folder, opt.get("filename_tmpl") or "{}", opt.get("meta_info_file")
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, rng = split_key(key)
        gt_path, lq_path = self.paths[index % len(self.paths)]
        gt = read_rgb(gt_path)
        if lq_path is None:
            gt, lq = self._from_gt_only(gt, gt_path, rng)
        else:
            lq = read_rgb(lq_path)
            gt = transforms.fit_pair(gt, lq, self.scale, gt_path, lq_path)
            if self.training:
                gt, lq = self._training_patch(gt, lq, lq_path, rng)
        if self.color == "y":
            gt, lq = _to_y(gt), _to_y(lq)
        return {
            "lq": transforms.to_tensor_chw(lq),
            "gt": transforms.to_tensor_chw(gt),
            "lq_path": lq_path if lq_path is not None else gt_path,
            "gt_path": gt_path,
        }

    def _augment(self, images: list[np.ndarray], rng: Any) -> list[np.ndarray]:
        if self.geometric_augs:
            return transforms.random_dihedral(images, rng)
        return transforms.flip_rotate(images, self.use_hflip, self.use_rot, rng)

    def _training_patch(self, gt: np.ndarray, lq: np.ndarray, lq_path: str, rng: Any) -> tuple[np.ndarray, np.ndarray]:
        gt_size = int(self.gt_size)
        if self.pad_small_images:  # GT is exactly scale x LQ here, so padding both keeps them aligned
            (lq,) = transforms.pad_to_size([lq], gt_size // self.scale)
            (gt,) = transforms.pad_to_size([gt], gt_size)
        gt, lq = transforms.paired_random_crop(gt, lq, gt_size, self.scale, rng, lq_path)
        gt, lq = self._augment([gt, lq], rng)
        return gt, lq

    def _from_gt_only(self, gt: np.ndarray, gt_path: str, rng: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.training:
            gt_size = int(self.gt_size)
            if self.pad_small_images:
                (gt,) = transforms.pad_to_size([gt], gt_size)
            gt = transforms.random_crop(gt, gt_size, rng, gt_path)
            (gt,) = self._augment([gt], rng)
        else:
            gt = gt[: gt.shape[0] - gt.shape[0] % self.scale, : gt.shape[1] - gt.shape[1] % self.scale]
            if gt.shape[0] == 0 or gt.shape[1] == 0:
                raise ValueError(f"{gt_path}: GT image is smaller than scale {self.scale}")
        gt = np.ascontiguousarray(gt)
        return gt, bicubic_lq(gt, self.scale)


@DATASET_REGISTRY.register()
class Dataset_PairedImage(PairedImageDataset):
    """DRSformer's paired dataset: :class:`PairedImageDataset` that pads images smaller than the patch."""

    pad_small_images = True


@DATASET_REGISTRY.register()
class SingleImageDataset(Dataset):
    """LQ images only (inference on inputs without ground truth): items ``{'lq', 'lq_path'}``, whole images.

    Args:
        opt: ``dataroot_lq``, optional ``meta_info_file`` (file names, first column), ``io_backend`` (disk).
    """

    def __init__(self, opt: Mapping[str, Any]) -> None:
        super().__init__()
        self.opt = dict(opt)
        self.name = str(opt.get("name") or "SingleImageDataset")
        _check_io_backend(opt, f"datasets.{self.name}")
        folder = opt.get("dataroot_lq")
        if folder is None:
            raise ValueError(f"datasets.{self.name}.dataroot_lq: missing")
        if opt.get("meta_info_file"):
            self.paths = [os.path.join(folder, n) for n in read_meta_info(opt["meta_info_file"])]
        else:
            self.paths = list_images(folder)
            if not self.paths:
                raise FileNotFoundError(f"{folder}: no images in dataroot_lq")
        self.color = opt.get("color")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, _ = split_key(key)
        path = self.paths[index % len(self.paths)]
        lq = read_rgb(path)
        if self.color == "y":
            lq = _to_y(lq)
        return {"lq": transforms.to_tensor_chw(lq), "lq_path": path}
