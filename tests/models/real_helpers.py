"""Tiny Real-ESRGAN-style training setups: a GT-only folder cut from a real photo, small crops, tiny networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from train_helpers import TINY_HAT, deep_update, photo, write_rgb

#: GT crop used instead of 400 pixels in the tiny runs (patched into ``restore.data.real_esrgan``).
TINY_CROP = 48

#: Discriminator small enough for a CPU step in milliseconds.
TINY_D = {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 4, "skip_connection": True}

#: Top-level degradation keys of the official option files.
OFFICIAL_DEGRADATION = {
    "resize_prob": [0.2, 0.7, 0.1],
    "resize_range": [0.15, 1.5],
    "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30],
    "poisson_scale_range": [0.05, 3],
    "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95],
    "second_blur_prob": 0.8,
    "resize_prob2": [0.3, 0.4, 0.3],
    "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5,
    "noise_range2": [1, 25],
    "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4,
    "jpeg_range2": [30, 95],
}

KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
DATASET_KERNEL_KEYS = {
    "blur_kernel_size": 21,
    "kernel_list": KERNELS,
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4],
    "betap_range": [1, 2],
    "blur_kernel_size2": 21,
    "kernel_list2": KERNELS,
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5],
    "betag_range2": [0.5, 4],
    "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
}


@pytest.fixture
def tiny_crop(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make RealESRGANDataset crop/pad to :data:`TINY_CROP` instead of 400 pixels (keeps CPU runs short)."""
    import restore.data.real_esrgan as data

    monkeypatch.setattr(data, "CROP_PAD_SIZE", TINY_CROP)
    return TINY_CROP


def make_gt_folder(root: Path, count: int = 4, sizes: tuple[tuple[int, int], ...] = ((60, 52), (40, 56))) -> Path:
    """``count`` GT crops of a real photo (sizes cycle through ``sizes``, some below the crop size)."""
    img = photo()
    folder = root / "gt"
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        y, x = 37 * i + 100, 23 * i + 150
        write_rgb(folder / f"{i:03d}.png", img[y : y + h, x : x + w])
    return folder


def real_options(tmp: Path, *, gan: bool, name: str = "real", **extra: Any) -> dict[str, Any]:
    """A tiny x4 Real-ESRGAN run (MSE stage, or GAN stage with ``gan=True``) on a GT-only folder."""
    gt_dir = make_gt_folder(tmp / "data")
    opt: dict[str, Any] = {
        "name": name,
        "model_type": "RealHATGANModel" if gan else "RealHATMSEModel",
        "scale": 4,
        "num_gpu": 0,
        "manual_seed": 3,
        **OFFICIAL_DEGRADATION,
        "gt_size": 32,
        "queue_size": 4,
        "datasets": {
            "train": {
                "name": "tiny_real",
                "type": "RealESRGANDataset",
                "dataroot_gt": str(gt_dir),
                "meta_info_file": "ignored/by/this/dataset.txt",
                "io_backend": {"type": "disk"},
                **DATASET_KERNEL_KEYS,
                "gt_size": 256,
                "use_hflip": True,
                "use_rot": False,
                "use_shuffle": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 2,
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
            }
        },
        "network_g": dict(TINY_HAT, upscale=4),
        "path": {"experiments_root": str(tmp / "experiments" / name)},
        "train": {
            "ema_decay": 0.9,
            "optim_g": {"type": "Adam", "lr": 1e-3, "weight_decay": 0, "betas": [0.9, 0.99]},
            "optim_d": {"type": "Adam", "lr": 1e-3, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [4], "gamma": 0.5},
            "total_iter": 6,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False},
    }
    if gan:
        opt.update({"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False, "network_d": dict(TINY_D)})
        opt["train"].update(
            {
                "gan_opt": {
                    "type": "GANLoss",
                    "gan_type": "vanilla",
                    "real_label_val": 1.0,
                    "fake_label_val": 0.0,
                    "loss_weight": 0.1,
                },
                "net_d_iters": 1,
                "net_d_init_iters": 0,
            }
        )
    else:
        opt["gt_usm"] = True
    return deep_update(opt, extra)


def random_vgg19_weights(path: Path, stages: int = 5, seed: int = 0) -> Path:
    """A torchvision-format ``vgg19`` state dict (``features.*`` only) with random He-initialised weights, for the
    first ``stages`` of the five stages (``stages=2`` covers ``conv1_2`` and ``conv2_2``: a file of ~1 MB)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    in_ch, index = 3, 0
    for stage, (convs, width) in enumerate(zip((2, 2, 4, 4, 4), (64, 128, 256, 512, 512))):
        if stage >= stages:
            break
        for _ in range(convs):
            std = (2 / (9 * in_ch)) ** 0.5
            state[f"features.{index}.weight"] = torch.randn(width, in_ch, 3, 3, generator=gen) * std
            state[f"features.{index}.bias"] = torch.zeros(width)
            in_ch, index = width, index + 2
        index += 1  # max-pool
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


#: Perceptual loss of the official GAN recipes, restricted to the layers that :func:`random_vgg19_weights` with
#: ``stages=2`` covers.
SMALL_PERCEPTUAL = {
    "type": "PerceptualLoss",
    "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1},
    "vgg_type": "vgg19",
    "use_input_norm": True,
    "perceptual_weight": 1.0,
    "style_weight": 0,
    "range_norm": False,
    "criterion": "l1",
}


def as_uint8_grid(t: torch.Tensor) -> bool:
    q = (t * 255).round()
    return bool(torch.equal(q / 255, t)) and bool(np.all((q >= 0).numpy() & (q <= 255).numpy()))
