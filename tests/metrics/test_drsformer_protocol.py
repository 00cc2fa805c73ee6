"""The shipped DRSformer option files score each set the way DRSformer's own MATLAB scripts do.

The protocol table is read from README.md; each ``options/test/test_DRSformer_<set>.yml`` is loaded and its metric
set-up built exactly as ``restore test`` builds it. The built metrics are then compared with a direct NumPy
transcription of the scripts' arithmetic (MATLAB ``rgb2ycbcr`` on uint8 or ``im2double`` input, ``SSIM_index`` /
Wang's ``ssim.m`` with its block-average downsampling), written here independently of ``restore.metrics``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage
from readme_tables import drsformer_protocol

from restore.evaluate import metric_specs
from restore.utils.options import load_options

REPO = Path(__file__).resolve().parents[2]
SETS = ("Rain200H", "Rain200L", "DID", "DDN", "SPA")


def test_readme_table_covers_every_shipped_drsformer_file() -> None:
    shipped = {p.stem.removeprefix("test_DRSformer_") for p in (REPO / "options" / "test").glob("test_DRSformer_*")}
    assert set(drsformer_protocol()) == shipped == set(SETS)


# ----------------------------------------------------------------- MATLAB arithmetic, transcribed directly


#: MATLAB rgb2ycbcr.m's Y row, scaled as it scales it: ``T = (1/255) * origT``, one double product per entry.
T_Y = [(1 / 255) * c for c in (65.481, 128.553, 24.966)]


def matlab_y(rgb: np.ndarray, uint8: bool) -> np.ndarray:
    """MATLAB ``rgb2ycbcr(x)(:, :, 1)`` on the 0..255 scale: uint8 input rounds, ``im2double`` input does not.

    Both evaluate ``T1*R + T2*G + T3*B + offset`` left to right in double (``imlincomb``); uint8 input on 0..255
    with offset 16, then rounded half away from zero; ``im2double`` input on [0, 1] with offset 16/255 (statistic.m
    then scales by 255 for ``ssim.m``; its PSNR on [0, 1] equals the 0..255 one).
    """
    x = rgb.astype(np.float64) if uint8 else rgb.astype(np.float64) / 255.0
    offset = 16.0 if uint8 else (1 / 255) * 16
    y = T_Y[0] * x[..., 0]
    y = y + T_Y[1] * x[..., 1]
    y = y + T_Y[2] * x[..., 2]
    y = y + offset
    if uint8:
        return np.floor(y) + (y - np.floor(y) >= 0.5)  # y > 0: half away from zero
    return y * 255.0


def _gaussian_window() -> np.ndarray:
    ax = np.arange(11) - 5.0
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    k = window.shape[0]
    h, w = img.shape[0] - k + 1, img.shape[1] - k + 1
    out = np.zeros((h, w))
    for dy in range(k):
        for dx in range(k):
            out += window[dy, dx] * img[dy : dy + h, dx : dx + w]
    return out


def matlab_ssim(a: np.ndarray, b: np.ndarray, downsample: bool) -> float:
    """``SSIM_index`` (``downsample=False``) or Wang's ``ssim.m`` (block average by f first) on 0..255 planes."""
    if downsample:
        f = max(1, int(np.floor(min(a.shape) / 256 + 0.5)))
        if f > 1:
            centre = (f + 1) // 2  # imfilter 'same': kernel origin at floor((f + 1) / 2), 1-based
            lo, hi = centre - 1, f - centre  # rows/columns reached before and after each pixel
            planes = []
            for x in (a, b):
                padded = np.pad(x, ((lo, hi), (lo, hi)), mode="symmetric")  # MATLAB 'symmetric' repeats the edge
                acc = sum(padded[i : i + x.shape[0], j : j + x.shape[1]] for i in range(f) for j in range(f))
                planes.append((acc / (f * f))[::f, ::f])
            a, b = planes
    window = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = _filter_valid(a, window), _filter_valid(b, window)
    s11 = _filter_valid(a * a, window) - mu1 * mu1
    s22 = _filter_valid(b * b, window) - mu2 * mu2
    s12 = _filter_valid(a * b, window) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean())


def matlab_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Both scripts: ``10 log10(peak^2 / mse)``; statistic.m's [0, 1] scale gives the same value as 0..255."""
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A 400x420 RGB photo and a noisy copy (min side 400 -> ssim.m's f = 2), as saved uint8 images."""
    clean = skimage.data.astronaut()[50:450, 40:460]
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 3, clean.shape), 0, 255).round().astype(np.uint8)
    return noisy, clean


@pytest.mark.parametrize("dataset", SETS)
def test_option_file_metrics_follow_the_readme_table(dataset: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    expected = drsformer_protocol()[dataset]
    opt = load_options(REPO / "options" / "test" / f"test_DRSformer_{dataset}.yml")
    specs = {s.name: s for s in metric_specs(opt)}
    assert set(specs) == {"psnr", "ssim"}
    for spec in specs.values():
        assert spec.options["crop_border"] == 0 and spec.options["test_y_channel"] is True
        assert bool(spec.options.get("y_channel_uint8", False)) is expected["y_channel_uint8"]
        assert bool(spec.options.get("y_channel_float64", False)) is expected["y_channel_float64"]
    assert bool(specs["ssim"].options.get("auto_downsample", False)) is expected["auto_downsample"]

    # The built metrics compute what the official script computes (restore's metrics take BGR uint8).
    out_rgb, gt_rgb = pair
    y_out, y_gt = matlab_y(out_rgb, expected["y_channel_uint8"]), matlab_y(gt_rgb, expected["y_channel_uint8"])
    out_bgr, gt_bgr = out_rgb[..., ::-1].copy(), gt_rgb[..., ::-1].copy()
    psnr = specs["psnr"].fn(img=out_bgr, img2=gt_bgr, **specs["psnr"].options)
    ssim = specs["ssim"].fn(img=out_bgr, img2=gt_bgr, **specs["ssim"].options)
    assert psnr == pytest.approx(matlab_psnr(y_out, y_gt), abs=1e-10)  # float32 Y would be ~2e-7 dB off
    assert ssim == pytest.approx(matlab_ssim(y_out, y_gt, expected["auto_downsample"]), abs=1e-9)
    # and the other set family's rule would give a measurably different number on the same images
    other_y = matlab_y(out_rgb, not expected["y_channel_uint8"]), matlab_y(gt_rgb, not expected["y_channel_uint8"])
    assert abs(matlab_psnr(*other_y) - psnr) > 1e-3
    assert abs(matlab_ssim(y_out, y_gt, not expected["auto_downsample"]) - ssim) > 1e-3
