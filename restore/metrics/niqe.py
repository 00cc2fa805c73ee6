"""NIQE, the no-reference Natural Image Quality Evaluator (Mittal, Soundararajan and Bovik, 2013). Lower is better.

The image (Y channel, rounded to integers) is cut into 96x96 blocks. For each block and for two scales (the image
and its half-size bicubic resize) 18 statistics of the mean-subtracted, contrast-normalised coefficients are
fitted: an asymmetric generalised Gaussian (AGGD) to the coefficients and to the products of horizontal, vertical
and both diagonal neighbours. NIQE is the distance between the multivariate Gaussian of these 36-dimensional
block features and a model fitted on pristine images (``niqe_pris_params.npz``).

The local mean/variance maps, the normalised coefficients and the half-scale image are float32, as in the widely
used evaluation code the published numbers come from: on flat regions the variance cancellation makes the result
depend on that precision (by up to ~0.04 for a float64 pipeline).

The pristine model ships with the package as ``restore/metrics/data/niqe_pris_params.npz`` (BasicSR's file, Apache-2.0,
see the NOTICE beside it). The ``niqe_params_path`` argument (option key) and the ``RESTORE_NIQE_PARAMS``
environment variable override it, in that order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from restore.data.color import to_y_channel
from restore.data.imresize import imresize
from restore.metrics._prepare import to_hwc
from restore.utils.registry import METRIC_REGISTRY

PARAMS_ENV = "RESTORE_NIQE_PARAMS"
PARAMS_FILENAME = "niqe_pris_params.npz"
PACKAGE_PARAMS = Path(__file__).resolve().parent / "data" / PARAMS_FILENAME
BLOCK = 96
# AGGD shape parameters searched (0.2:0.001:10, MATLAB notation), as in the reference release.
_SHAPE_GRID = np.arange(0.2, 10.001, 0.001)
# Neighbour offsets (rows, cols) for the pairwise products: horizontal, vertical, main and anti-diagonal.
_NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class PristineModel:
    """Multivariate Gaussian of pristine-image features: ``mu`` (36,), ``cov`` (36, 36), smoothing ``window`` (7, 7)."""

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray


def find_params_file(path: str | os.PathLike | None = None) -> Path:
    """Locate ``niqe_pris_params.npz``: explicit ``path`` > ``$RESTORE_NIQE_PARAMS`` > package data folder.

    Raises:
        FileNotFoundError: one line saying where the file was looked for and how to provide it.
    """
    if path is not None:
        candidate, origin = Path(path).expanduser(), "niqe_params_path"
    elif os.environ.get(PARAMS_ENV):
        candidate, origin = Path(os.environ[PARAMS_ENV]).expanduser(), f"${PARAMS_ENV}"
    else:
        candidate, origin = PACKAGE_PARAMS, "the package data folder"
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f"NIQE pristine model not found at {candidate} (from {origin}): download {PARAMS_FILENAME} from the BasicSR "
        f"repository (basicsr/metrics/{PARAMS_FILENAME}) and pass niqe_params_path, set {PARAMS_ENV}=/path/to/it, "
        f"or copy it to {PACKAGE_PARAMS}"
    )


@lru_cache(maxsize=4)
def _load_model(path: str) -> PristineModel:
    with np.load(path) as data:
        try:
            mu, cov, window = data["mu_pris_param"], data["cov_pris_param"], data["gaussian_window"]
        except KeyError as err:
            raise KeyError(
                f"{path}: missing array {err} (expected mu_pris_param, cov_pris_param, gaussian_window)"
            ) from None
    return PristineModel(mu=np.asarray(mu, np.float64).reshape(-1), cov=np.asarray(cov, np.float64), window=window)


def load_pristine_model(path: str | os.PathLike | None = None) -> PristineModel:
    """Read the pristine model found by :func:`find_params_file` (cached per file)."""
    return _load_model(str(find_params_file(path)))


@lru_cache(maxsize=1)
def _gamma_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gamma(1/a), Gamma(2/a), Gamma(3/a) on the shape grid, and r(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))."""
    g1, g2, g3 = (np.array([math.gamma(k / a) for a in _SHAPE_GRID]) for k in (1, 2, 3))
    return g1, g2, g3, g2 * g2 / (g1 * g3)


def _convolve_nearest(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """2-D convolution with edge replication, accumulated in float64 and returned as float32 (same size)."""
    kh, kw = window.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(img.astype(np.float64), ((ph, ph), (pw, pw)), mode="edge")
    h, w = img.shape
    out = np.zeros((h, w), dtype=np.float64)
    flipped = window[::-1, ::-1]
    for i in range(kh):
        for j in range(kw):
            out += flipped[i, j] * padded[i : i + h, j : j + w]
    return out.astype(np.float32)


def _normalised_coefficients(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MSCN coefficients ``(img - mu) / (sigma + 1)`` of a float32 (H, W) image, all steps in float32."""
    mu = _convolve_nearest(img, window)
    second_moment = _convolve_nearest(img * img, window)
    sigma = np.sqrt(np.abs(second_moment - mu * mu))
    return (img - mu) / (sigma + np.float32(1.0))


def _fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit per row of (n, L) samples.

    Returns:
        shape alpha (n,), left and right scales beta_l, beta_r (n,), and the grid index of alpha (n,).
        Rows without negative or positive samples give NaN scales (as the reference does).
    """
    x = samples.astype(np.float64)
    sq = x * x
    neg, pos = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.where(neg, sq, 0).sum(1) / neg.sum(1))
        right_std = np.sqrt(np.where(pos, sq, 0).sum(1) / pos.sum(1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(x).mean(1) ** 2 / sq.mean(1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    g1, _, g3, r_grid = _gamma_tables()
    index = np.argmin((r_grid[None, :] - r_norm[:, None]) ** 2, axis=1)
    ratio = np.sqrt(g1[index] / g3[index])
    return _SHAPE_GRID[index], left_std * ratio, right_std * ratio, index


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """18 AGGD features for each float32 block of (n, bh, bw) -> float64 (n, 18)."""
    n = blocks.shape[0]
    g1, g2, _, _ = _gamma_tables()
    alpha, beta_l, beta_r, _ = _fit_aggd(blocks.reshape(n, -1))
    columns = [alpha, (beta_l + beta_r) / 2]
    for shift in _NEIGHBOUR_SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, beta_l, beta_r, index = _fit_aggd(products.reshape(n, -1))
        columns += [alpha, (beta_r - beta_l) * g2[index] / g1[index], beta_l, beta_r]
    return np.stack(columns, axis=1)


def _split_blocks(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*bh, cols*bw) -> (cols*rows, bh, bw), column-major block order."""
    bh, bw = img.shape[0] // rows, img.shape[1] // cols
    return img.reshape(rows, bh, cols, bw).transpose(2, 0, 1, 3).reshape(rows * cols, bh, bw)


def niqe(img: np.ndarray, model: PristineModel, block_size: int = BLOCK) -> float:
    """NIQE of a gray/Y image.

    Args:
        img: (H, W) float image on the 0..255 scale (usually rounded Y); H, W >= ``block_size``.
        model: pristine model, see :func:`load_pristine_model`.
        block_size: block side in pixels at full scale (96 in the original release).

    Returns:
        The NIQE score (float, lower is better).
    """
    if img.ndim != 2:
        raise ValueError(f"niqe: expected a 2-D gray/Y image, got shape {img.shape}")
    rows, cols = img.shape[0] // block_size, img.shape[1] // block_size
    if rows == 0 or cols == 0:
        raise ValueError(f"niqe: image {img.shape} is smaller than one {block_size}x{block_size} block")
    img = np.ascontiguousarray(img[: rows * block_size, : cols * block_size], dtype=np.float32)
    features = []
    for level in range(2):
        coefficients = _normalised_coefficients(img, model.window)
        features.append(_block_features(_split_blocks(coefficients, rows, cols)))
        if level == 0:
            img = imresize(img / np.float32(255.0), 0.5) * np.float32(255.0)
    features = np.concatenate(features, axis=1)  # (blocks, 36)

    mu_dist = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    cov_dist = np.cov(complete, rowvar=False)
    diff = model.mu - mu_dist
    quality = diff @ np.linalg.pinv((model.cov + cov_dist) / 2) @ diff
    return float(np.sqrt(quality))


@METRIC_REGISTRY.register()
def calculate_niqe(
    img: np.ndarray,
    crop_border: int,
    input_order: str = "HWC",
    convert_to: str = "y",
    niqe_params_path: str | os.PathLike | None = None,
) -> float:
    """NIQE of one image (no reference image: the benchmark and validation pass none).

    Args:
        img: image on the 0..255 scale (uint8 or float), BGR for colour: (H, W, 3), (3, H, W) or gray (H, W).
        crop_border: pixels removed from each edge after the colour conversion.
        input_order: 'HWC', 'CHW', or 'HW' for an image that is already gray/Y.
        convert_to: 'y' (BT.601 Y, as in papers) or 'gray' (OpenCV luma).
        niqe_params_path: pristine model file; see :func:`find_params_file` for the fallbacks.

    Returns:
        NIQE (float, lower is better).
    """
    model = load_pristine_model(niqe_params_path)
    img = np.asarray(img).astype(np.float32)
    if input_order != "HW":
        img = to_hwc(img, input_order, "calculate_niqe")
        if img.shape[2] == 3:
            if convert_to == "y":
                img = to_y_channel(img)
            elif convert_to == "gray":
                img = cv2.cvtColor(img / np.float32(255.0), cv2.COLOR_BGR2GRAY)[..., None] * np.float32(255.0)
            else:
                raise ValueError(f"calculate_niqe: convert_to must be 'y' or 'gray', got {convert_to!r}")
        img = img[..., 0]
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    return niqe(np.round(img), model)


__all__ = ["PristineModel", "calculate_niqe", "find_params_file", "load_pristine_model", "niqe"]
