"""Tiny training setups shared by the model tests: image folders cut from a real photo and option files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data
import yaml

from restore.data.imresize import imresize, round_to_uint8

#: HAT small enough to train a few iterations on a CPU in well under a second per step.
TINY_HAT = {
    "type": "HAT",
    "upscale": 2,
    "in_chans": 3,
    "img_size": 8,
    "window_size": 4,
    "compress_ratio": 2,
    "squeeze_factor": 4,
    "conv_scale": 0.01,
    "overlap_ratio": 0.5,
    "img_range": 1.0,
    "depths": [1],
    "embed_dim": 8,
    "num_heads": [2],
    "mlp_ratio": 2,
    "upsampler": "pixelshuffle",
    "resi_connection": "1conv",
}


def photo() -> np.ndarray:
    """A real RGB photograph, uint8 (512, 512, 3)."""
    return skimage.data.astronaut()


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def make_pairs(root: Path, scale: int, count: int, size: int, offset: int = 0) -> tuple[Path, Path]:
    """``count`` GT crops of ``size`` pixels and their MATLAB-bicubic x``scale`` LQ images as PNG files.

    Returns:
        (gt folder, lq folder).
    """
    img = photo()
    gt_dir, lq_dir = root / "gt", root / "lq"
    for i in range(count):
        y, x = offset + 29 * i, 41 * i + 7
        gt = img[y : y + size, x : x + size]
        write_rgb(gt_dir / f"{i:03d}.png", gt)
        write_rgb(lq_dir / f"{i:03d}.png", round_to_uint8(imresize(gt.astype(np.float64) / 255, 1 / scale)))
    return gt_dir, lq_dir


def deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def train_options(tmp: Path, name: str = "tiny", scale: int = 2, **extra: Any) -> dict[str, Any]:
    """Options for a few iterations of a tiny HAT on 6 image pairs (data written under ``tmp/data``)."""
    gt_dir, lq_dir = make_pairs(tmp / "data" / f"train_x{scale}", scale, count=6, size=12 * scale)
    val_gt, val_lq = make_pairs(tmp / "data" / f"val_x{scale}", scale, count=2, size=10 * scale, offset=300)
    network = dict(TINY_HAT, upscale=scale)
    opt = {
        "name": name,
        "model_type": "HATModel",
        "scale": scale,
        "num_gpu": 0,
        "manual_seed": 7,
        "datasets": {
            "train": {
                "name": "tiny_train",
                "type": "PairedImageDataset",
                "dataroot_gt": str(gt_dir),
                "dataroot_lq": str(lq_dir),
                "io_backend": {"type": "disk"},
                "gt_size": 8 * scale,
                "use_hflip": True,
                "use_rot": True,
                "use_shuffle": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 2,
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
            },
            "val": {
                "name": "tiny_val",
                "type": "PairedImageDataset",
                "dataroot_gt": str(val_gt),
                "dataroot_lq": str(val_lq),
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": network,
        "path": {"experiments_root": str(tmp / "experiments" / name), "strict_load_g": True},
        "train": {
            "ema_decay": 0.5,
            "optim_g": {"type": "Adam", "lr": 2e-3, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
            "total_iter": 6,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "val": {
            "val_freq": 3,
            "save_img": False,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True}},
        },
        "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False},
    }
    return deep_update(opt, extra)


def write_options(tmp: Path, opt: dict[str, Any], filename: str = "train.yml") -> Path:
    path = tmp / filename
    path.write_text(yaml.safe_dump(opt, sort_keys=False), encoding="utf-8")
    return path
