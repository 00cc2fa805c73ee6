"""Blur kernels of the Real-ESRGAN degradation model, with BasicSR's names, signatures and conventions.

Every kernel is a (K, K) float64 NumPy array that sums to 1. The grid is ``-(K//2) .. K//2``; ``x`` runs along
columns and ``y`` along rows. A covariance ``Sigma = R diag(sig_x^2, sig_y^2) R^T`` with ``R`` the rotation by
``theta`` (radians) gives the quadratic form ``q = [x y] Sigma^-1 [x y]^T``; isotropic kernels use
``Sigma = sig_x^2 I`` and ignore ``sig_y`` and ``theta``.

The ``random_*`` functions draw their parameters from NumPy's global generator (and ``random_mixed_kernels`` the
kernel type from Python's ``random``), in BasicSR's order, so a seeded run draws the same kernels as BasicSR.
Pass ``rng`` (a ``numpy.random.Generator`` or ``RandomState``) to draw everything from it instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")

Range = Sequence[float]


def _check_odd(kernel_size: int, owner: str) -> None:
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{owner}: kernel_size must be a positive odd integer, got {kernel_size!r}")


def _check_range(rng_: Range, name: str, owner: str) -> None:
    if not rng_[0] < rng_[1]:
        raise ValueError(f"{owner}: {name} must be an increasing (low, high) pair, got {tuple(rng_)!r}")


def sigma_matrix2(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """Covariance ``R diag(sig_x^2, sig_y^2) R^T`` of a Gaussian rotated by ``theta`` radians; (2, 2) float64."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T


def mesh_grid(kernel_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centred integer grid: ``(xy (K, K, 2), xx (K, K), yy (K, K))`` with ``xy[..., 0] = xx`` (column offset)."""
    ax = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) // 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1), xx, yy


def _quadratic(inv: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``g^T inv g`` at every point of ``grid`` (K, K, 2); (K, K) float64."""
    x, y = grid[..., 0], grid[..., 1]
    return inv[0, 0] * x * x + (inv[0, 1] + inv[1, 0]) * x * y + inv[1, 1] * y * y


def _quadratic_form(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, grid: np.ndarray | None, isotropic: bool
) -> np.ndarray:
    """``q = g^T Sigma^-1 g`` on the kernel grid (or ``grid``); (K, K) float64."""
    if grid is None:
        grid = mesh_grid(kernel_size)[0]
    sigma = np.diag([sig_x**2, sig_x**2]) if isotropic else sigma_matrix2(sig_x, sig_y, theta)
    return _quadratic(np.linalg.inv(sigma), grid)


def pdf2(sigma_matrix: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Unnormalised Gaussian ``exp(-q / 2)`` of covariance ``sigma_matrix`` (2, 2) on ``grid`` (K, K, 2)."""
    return np.exp(-0.5 * _quadratic(np.linalg.inv(sigma_matrix), grid))


def bivariate_Gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, grid: np.ndarray | None = None, isotropic: bool = True
) -> np.ndarray:
    """Gaussian kernel ``exp(-q / 2)``, normalised; (K, K) float64."""
    kernel = np.exp(-0.5 * _quadratic_form(kernel_size, sig_x, sig_y, theta, grid, isotropic))
    return kernel / kernel.sum()


def bivariate_generalized_Gaussian(
    kernel_size: int,
    sig_x: float,
    sig_y: float,
    theta: float,
    beta: float,
    grid: np.ndarray | None = None,
    isotropic: bool = True,
) -> np.ndarray:
    """Generalised Gaussian kernel ``exp(-q^beta / 2)`` (``beta = 1``: Gaussian), normalised; (K, K) float64."""
    kernel = np.exp(-0.5 * np.power(_quadratic_form(kernel_size, sig_x, sig_y, theta, grid, isotropic), beta))
    return kernel / kernel.sum()


def bivariate_plateau(
    kernel_size: int,
    sig_x: float,
    sig_y: float,
    theta: float,
    beta: float,
    grid: np.ndarray | None = None,
    isotropic: bool = True,
) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (q^beta + 1)``, normalised; (K, K) float64."""
    kernel = 1.0 / (np.power(_quadratic_form(kernel_size, sig_x, sig_y, theta, grid, isotropic), beta) + 1.0)
    return kernel / kernel.sum()


def _draw_shape(
    owner: str,
    kernel_size: int,
    sigma_x_range: Range,
    sigma_y_range: Range,
    rotation_range: Range,
    isotropic: bool,
    rng: Any,
) -> tuple[float, float, float]:
    """Draw ``(sig_x, sig_y, theta)`` in BasicSR's order (isotropic: ``sig_y = sig_x``, ``theta = 0``)."""
    _check_odd(kernel_size, owner)
    _check_range(sigma_x_range, "sigma_x_range", owner)
    sig_x = rng.uniform(sigma_x_range[0], sigma_x_range[1])
    if isotropic:
        return sig_x, sig_x, 0.0
    _check_range(sigma_y_range, "sigma_y_range", owner)
    _check_range(rotation_range, "rotation_range", owner)
    sig_y = rng.uniform(sigma_y_range[0], sigma_y_range[1])
    theta = rng.uniform(rotation_range[0], rotation_range[1])
    return sig_x, sig_y, theta


def _draw_beta(beta_range: Range, rng: Any) -> float:
    """Half of the draws below 1, half above: ``U(beta_range[0], 1)`` or ``U(1, beta_range[1])``."""
    if rng.uniform() < 0.5:
        return rng.uniform(beta_range[0], 1)
    return rng.uniform(1, beta_range[1])


def _with_noise(kernel: np.ndarray, noise_range: Range | None, owner: str, rng: Any) -> np.ndarray:
    """Optional element-wise multiplicative noise ``U(noise_range)``, then renormalise."""
    if noise_range is not None:
        _check_range(noise_range, "noise_range", owner)
        kernel = kernel * rng.uniform(noise_range[0], noise_range[1], size=kernel.shape)
    return kernel / kernel.sum()


def random_bivariate_Gaussian(
    kernel_size: int,
    sigma_x_range: Range,
    sigma_y_range: Range,
    rotation_range: Range,
    noise_range: Range | None = None,
    isotropic: bool = True,
    rng: Any = None,
) -> np.ndarray:
    """Gaussian kernel with ``sig_x ~ U(sigma_x_range)`` (and ``sig_y``, ``theta`` if anisotropic)."""
    rng = np.random if rng is None else rng
    owner = "random_bivariate_Gaussian"
    sig_x, sig_y, theta = _draw_shape(owner, kernel_size, sigma_x_range, sigma_y_range, rotation_range, isotropic, rng)
    kernel = bivariate_Gaussian(kernel_size, sig_x, sig_y, theta, isotropic=isotropic)
    return _with_noise(kernel, noise_range, owner, rng)


def random_bivariate_generalized_Gaussian(
    kernel_size: int,
    sigma_x_range: Range,
    sigma_y_range: Range,
    rotation_range: Range,
    beta_range: Range,
    noise_range: Range | None = None,
    isotropic: bool = True,
    rng: Any = None,
) -> np.ndarray:
    """Generalised Gaussian kernel with random shape and ``beta`` (below or above 1 with equal odds)."""
    rng = np.random if rng is None else rng
    owner = "random_bivariate_generalized_Gaussian"
    sig_x, sig_y, theta = _draw_shape(owner, kernel_size, sigma_x_range, sigma_y_range, rotation_range, isotropic, rng)
    beta = _draw_beta(beta_range, rng)
    kernel = bivariate_generalized_Gaussian(kernel_size, sig_x, sig_y, theta, beta, isotropic=isotropic)
    return _with_noise(kernel, noise_range, owner, rng)


def random_bivariate_plateau(
    kernel_size: int,
    sigma_x_range: Range,
    sigma_y_range: Range,
    rotation_range: Range,
    beta_range: Range,
    noise_range: Range | None = None,
    isotropic: bool = True,
    rng: Any = None,
) -> np.ndarray:
    """Plateau kernel with random shape and ``beta`` (below or above 1 with equal odds)."""
    rng = np.random if rng is None else rng
    owner = "random_bivariate_plateau"
    sig_x, sig_y, theta = _draw_shape(owner, kernel_size, sigma_x_range, sigma_y_range, rotation_range, isotropic, rng)
    beta = _draw_beta(beta_range, rng)
    kernel = bivariate_plateau(kernel_size, sig_x, sig_y, theta, beta, isotropic=isotropic)
    return _with_noise(kernel, noise_range, owner, rng)


def random_mixed_kernels(
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    kernel_size: int = 21,
    sigma_x_range: Range = (0.6, 5),
    sigma_y_range: Range = (0.6, 5),
    rotation_range: Range = (-math.pi, math.pi),
    betag_range: Range = (0.5, 8),
    betap_range: Range = (0.5, 8),
    noise_range: Range | None = None,
    rng: Any = None,
) -> np.ndarray:
    """Draw a kernel type from ``kernel_list`` with weights ``kernel_prob``, then a kernel of that type.

    Types: ``iso``, ``aniso`` (Gaussian), ``generalized_iso``, ``generalized_aniso`` (``beta ~ betag_range``),
    ``plateau_iso``, ``plateau_aniso`` (``beta ~ betap_range``; as in BasicSR, plateau kernels never get
    ``noise_range``). Returns a (K, K) float64 kernel summing to 1.
    """
    if len(kernel_list) != len(kernel_prob) or not kernel_list:
        raise ValueError(
            f"random_mixed_kernels: kernel_list and kernel_prob must be non-empty and of equal length, "
            f"got {len(kernel_list)} and {len(kernel_prob)}"
        )
    unknown = [k for k in kernel_list if k not in KERNEL_TYPES]
    if unknown:
        raise ValueError(f"random_mixed_kernels: unknown kernel type {unknown[0]!r} (one of {', '.join(KERNEL_TYPES)})")
    if rng is None:
        kernel_type = random.choices(kernel_list, kernel_prob)[0]
        rng = np.random
    else:
        cum = np.cumsum(np.asarray(kernel_prob, dtype=np.float64))
        kernel_type = kernel_list[
            min(int(np.searchsorted(cum, rng.uniform() * cum[-1], side="right")), len(kernel_list) - 1)
        ]
    shape = (kernel_size, sigma_x_range, sigma_y_range, rotation_range)
    isotropic = not kernel_type.endswith("aniso")
    if kernel_type in ("iso", "aniso"):
        return random_bivariate_Gaussian(*shape, noise_range=noise_range, isotropic=isotropic, rng=rng)
    if kernel_type.startswith("generalized"):
        return random_bivariate_generalized_Gaussian(
            *shape, betag_range, noise_range=noise_range, isotropic=isotropic, rng=rng
        )
    return random_bivariate_plateau(*shape, betap_range, noise_range=None, isotropic=isotropic, rng=rng)


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind of order 1, float64, to ~1e-15 absolute (no SciPy needed).

    Uses Bessel's integral ``J1(x) = 1/(2 pi) * integral_0^{2 pi} cos(t - x sin t) dt``; the trapezoidal rule is
    exact for this periodic integrand up to terms ``J_{N-1}(x)``, negligible with ``N = 64 + 2 ceil(max |x|)`` nodes.
    """
    x = np.asarray(x, dtype=np.float64)
    nodes = 64 + 2 * math.ceil(float(np.abs(x).max(initial=0.0)))
    t = 2 * np.pi * np.arange(nodes) / nodes
    return np.cos(t - x[..., None] * np.sin(t)).mean(axis=-1)


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """Circularly symmetric low-pass (2-D sinc) kernel ``cutoff * J1(cutoff * r) / (2 pi r)``, normalised.

    Args:
        cutoff: cutoff frequency in radians (pi is the Nyquist frequency).
        kernel_size: odd side K.
        pad_to: zero-pad the kernel to this odd side if it is larger than ``kernel_size`` (0 or False: no padding).

    Returns:
        (K, K) or (pad_to, pad_to) float64 array summing to 1.
    """
    _check_odd(kernel_size, "circular_lowpass_kernel")
    _, xx, yy = mesh_grid(kernel_size)
    r = np.hypot(xx, yy)
    centre = (kernel_size - 1) // 2
    r[centre, centre] = 1.0  # placeholder: the centre is set to the limit cutoff^2 / (4 pi) below
    kernel = cutoff * bessel_j1(cutoff * r) / (2 * np.pi * r)
    kernel[centre, centre] = cutoff**2 / (4 * np.pi)
    kernel = kernel / kernel.sum()
    if pad_to and pad_to > kernel_size:
        _check_odd(pad_to, "circular_lowpass_kernel (pad_to)")
        pad = (pad_to - kernel_size) // 2
        kernel = np.pad(kernel, ((pad, pad), (pad, pad)))
    return kernel
