"""Degradations against BasicSR's golden fixtures, plus behaviour the fixtures do not pin down."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from realworld_fixtures import COVERED, assert_matches, entries, load
from torch_threads import one_thread_fixture

from restore.data import degradations as deg
from restore.data.degradations import (
    DiffJPEG,
    USMSharp,
    add_gaussian_noise_pt,
    add_poisson_noise_pt,
    bivariate_Gaussian,
    circular_lowpass_kernel,
    filter2D,
    generate_gaussian_noise_pt,
    generate_poisson_noise_pt,
    quality_to_factor,
    random_add_gaussian_noise_pt,
    random_add_poisson_noise_pt,
    random_bivariate_Gaussian,
    random_bivariate_plateau,
    random_mixed_kernels,
    usm_sharp,
)
from restore.data.degradations.filtering import reflect_band_matrix

COMPONENTS = COVERED["tests/data/test_degradations.py"]
one_thread = one_thread_fixture()


def run_fixture(entry: dict[str, Any], fx: dict[str, Any]) -> dict[str, Any]:
    """Call the public API exactly as the fixture's ``call`` describes."""
    component, args = entry["component"], entry["args"]
    if component.startswith("kernel."):
        fn = getattr(deg, component.split(".", 1)[1])
        kernel = fn(**args)
        assert isinstance(kernel, np.ndarray) and kernel.dtype == np.float64
        return {"kernel": torch.from_numpy(kernel)}
    if component == "filter2D":
        return {"out": filter2D(fx["img"], fx["kernel"])}
    if component == "USMSharp":
        usm = USMSharp(radius=args["radius"], sigma=args["sigma"])
        return {"out": usm(fx["img"], weight=args["weight"], threshold=args["threshold"]), "kernel": usm.kernel}
    if component == "usm_sharp":
        out = usm_sharp(
            fx["img_hwc_bgr"].numpy(), weight=args["weight"], radius=args["radius"], threshold=args["threshold"]
        )
        return {"out": torch.from_numpy(out)}
    if component == "DiffJPEG":
        assert args["quality_kind"] == "tensor"
        quality = fx["quality"].clone()
        out = DiffJPEG(differentiable=args["differentiable"])(fx["img"], quality=quality)
        assert torch.equal(quality, fx["quality"]), "DiffJPEG must not modify the quality tensor"
        # BasicSR overwrites the quality tensor with the table factor; compare ours, computed by the public helper
        return {"out": out, "quality_after_call": quality_to_factor(fx["quality"])}
    raise AssertionError(f"unhandled component {component}")


@pytest.mark.parametrize("entry", entries(COMPONENTS))
def test_matches_basicsr_fixture(entry: dict[str, Any], fixtures: Path) -> None:
    fx = load(fixtures, entry)
    assert_matches(run_fixture(entry, fx), fx, entry)


def test_fixture_count() -> None:
    assert len(entries(COMPONENTS)) == 29  # 18 kernels, 5 filter2D, 3 USM, 3 DiffJPEG


# ------------------------------------------------------------------------------------------------ kernels


def test_random_kernels_follow_basicsr_draw_order() -> None:
    np.random.seed(3)
    kernel = random_bivariate_Gaussian(15, (0.6, 5), (0.6, 5), (-math.pi, math.pi), isotropic=False)
    np.random.seed(3)
    sx, sy, theta = np.random.uniform(0.6, 5), np.random.uniform(0.6, 5), np.random.uniform(-math.pi, math.pi)
    np.testing.assert_allclose(kernel, bivariate_Gaussian(15, sx, sy, theta, isotropic=False), rtol=1e-12)

    np.random.seed(4)
    kernel = random_bivariate_plateau(21, (1, 3), (1, 3), (0, 1), (0.5, 4), isotropic=True)
    np.random.seed(4)
    sx = np.random.uniform(1, 3)
    beta = np.random.uniform(0.5, 1) if np.random.uniform() < 0.5 else np.random.uniform(1, 4)
    np.testing.assert_allclose(kernel, deg.bivariate_plateau(21, sx, sx, 0, beta, isotropic=True), rtol=1e-12)


def test_random_mixed_kernels_reproducible_and_valid() -> None:
    kinds = list(deg.KERNEL_TYPES)
    probs = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    random.seed(0)
    np.random.seed(0)
    first = [random_mixed_kernels(kinds, probs, 21, noise_range=(0.75, 1.25)) for _ in range(20)]
    random.seed(0)
    np.random.seed(0)
    second = [random_mixed_kernels(kinds, probs, 21, noise_range=(0.75, 1.25)) for _ in range(20)]
    for a, b in zip(first, second):
        assert a.shape == (21, 21) and abs(a.sum() - 1) < 1e-12 and (a >= 0).all()
        np.testing.assert_array_equal(a, b)
    # an explicit generator gives its own reproducible stream and never touches the global ones
    state = np.random.get_state()[1].copy()
    a = random_mixed_kernels(kinds, probs, 21, rng=np.random.default_rng(5))
    b = random_mixed_kernels(kinds, probs, 21, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_random_mixed_kernels_type_frequencies_follow_kernel_prob() -> None:
    # iso kernels are symmetric under transposition and centred; plateau_iso ones too but with heavier tails:
    # tell the two types apart by the draws that produced them, recomputed through the same generator.
    rng = np.random.default_rng(11)
    kinds, probs = ["iso", "aniso"], [0.8, 0.2]
    draws = [
        random_mixed_kernels(
            kinds, probs, 7, sigma_x_range=(1, 2), sigma_y_range=(0.5, 0.6), rotation_range=(0.3, 0.4), rng=rng
        )
        for _ in range(2000)
    ]
    iso = sum(bool(np.allclose(k, k.T, atol=1e-12)) for k in draws) / len(draws)
    assert abs(iso - 0.8) < 0.04


def test_basicsr_kernel_helpers_agree() -> None:
    grid, xx, yy = deg.mesh_grid(9)
    assert xx[0, 0] == -4 and xx[0, 8] == 4 and yy[8, 0] == 4  # x along columns, y along rows
    unnormalised = deg.pdf2(deg.sigma_matrix2(2.0, 0.7, 0.4), grid)
    expected = bivariate_Gaussian(9, 2.0, 0.7, 0.4, grid=grid, isotropic=False)
    np.testing.assert_allclose(unnormalised / unnormalised.sum(), expected, rtol=1e-12)


def test_kernel_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="unknown kernel type 'skew'"):
        random_mixed_kernels(["skew"], [1.0])
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        circular_lowpass_kernel(1.0, 8)
    with pytest.raises(ValueError, match="sigma_x_range must be an increasing"):
        random_bivariate_Gaussian(7, (2, 1), (1, 2), (0, 1))


def test_sinc_kernel_padding() -> None:
    small = circular_lowpass_kernel(math.pi / 3, 7)
    padded = circular_lowpass_kernel(math.pi / 3, 7, pad_to=21)
    assert padded.shape == (21, 21)
    np.testing.assert_array_equal(padded[7:14, 7:14], small)
    assert padded[:7].sum() == 0 and circular_lowpass_kernel(math.pi / 3, 7, pad_to=5).shape == (7, 7)


def test_bessel_j1_against_series() -> None:
    x = np.linspace(0, 45, 91)
    series = sum((-1) ** m / (math.factorial(m) * math.factorial(m + 1)) * (x / 2) ** (2 * m + 1) for m in range(90))
    np.testing.assert_allclose(deg.kernels.bessel_j1(x[:30]), series[:30], atol=1e-10)  # the series is exact here
    roots = np.array([3.8317059702075123, 7.0155866698156188, 10.173468135062722])  # zeros of J1
    np.testing.assert_allclose(deg.kernels.bessel_j1(roots), 0, atol=1e-13)


# ------------------------------------------------------------------------------------------------ filter2D / USM


def test_filter2d_errors() -> None:
    img = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="kernel size must be odd, got 4"):
        filter2D(img, torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="3 kernels for a batch of 2"):
        filter2D(img, torch.ones(3, 5, 5))
    with pytest.raises(ValueError, match="too small for a 21x21 kernel"):
        filter2D(torch.rand(1, 3, 10, 30), torch.ones(1, 21, 21))


def test_filter2d_per_sample_equals_one_by_one_and_casts_kernel() -> None:
    torch.manual_seed(0)
    img = torch.rand(3, 3, 20, 24)
    kernels = torch.rand(3, 5, 5, dtype=torch.float64)
    out = filter2D(img, kernels)
    assert out.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], filter2D(img[i : i + 1], kernels[i : i + 1].float()))


def test_band_matrix_filtering_equals_filter2d_with_the_outer_kernel() -> None:
    torch.manual_seed(2)
    taps_h, taps_w = torch.rand(9, dtype=torch.float64), torch.rand(9, dtype=torch.float64)
    img = torch.rand(2, 3, 11, 17, dtype=torch.float64)
    ours = reflect_band_matrix(11, taps_h) @ img @ reflect_band_matrix(17, taps_w).T
    torch.testing.assert_close(ours, filter2D(img, torch.outer(taps_h, taps_w)[None]), rtol=1e-12, atol=1e-12)


def test_usm_even_radius_is_next_odd_and_flat_image_unchanged() -> None:
    torch.testing.assert_close(USMSharp(50).kernel, USMSharp(51).kernel, rtol=0, atol=0)
    assert USMSharp(50).radius == 51 and USMSharp(7).kernel.shape == (1, 7, 7)
    with pytest.raises(ValueError, match=r"USMSharp: image \(20, 40\) too small for a 51x51 kernel"):
        USMSharp()(torch.rand(1, 3, 20, 40))
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(USMSharp(7)(flat), flat)
    np.testing.assert_allclose(usm_sharp(np.full((30, 30, 1), 0.3, np.float32), radius=7), 0.3, atol=1e-6)


# ------------------------------------------------------------------------------------------------ DiffJPEG


def test_diffjpeg_number_quality_matches_tensor_quality_fixture(fixtures: Path) -> None:
    entry = next(e for e in entries({"DiffJPEG"}) if e.id.startswith("diffjpeg_00")).values[0]
    fx = load(fixtures, entry)
    jpeg = DiffJPEG(differentiable=False)
    for i, q in enumerate(fx["quality"].tolist()):
        out = jpeg(fx["img"][i : i + 1], quality=q)
        torch.testing.assert_close(out.double(), fx["out"][i : i + 1].double(), atol=entry["atol"], rtol=0)


def test_diffjpeg_gradients_and_errors() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 3, 24, 20, requires_grad=True)
    out = DiffJPEG(differentiable=True)(img, quality=torch.tensor([40.0, 80.0]))
    assert out.shape == img.shape and float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert not list(DiffJPEG().parameters()) and not DiffJPEG().state_dict()
    with pytest.raises(ValueError, match=r"quality must lie in \(0, 100\)"):
        DiffJPEG()(img, quality=100)
    with pytest.raises(ValueError, match="quality must be a number or a"):
        DiffJPEG()(img, quality=torch.ones(3) * 50)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        DiffJPEG()(img[:, :1], quality=50)
    # lower quality loses more
    clean = torch.rand(1, 3, 32, 32)
    errs = [float((DiffJPEG(False)(clean, q) - clean).abs().mean()) for q in (20, 60, 95)]
    assert errs[0] > errs[1] > errs[2]


# ------------------------------------------------------------------------------------------------ noise


def test_gaussian_noise_levels_gray_and_rounding() -> None:
    img = torch.full((4, 3, 64, 64), 0.5)
    sigma = torch.tensor([1.0, 5.0, 10.0, 20.0])
    gray = torch.tensor([0.0, 1.0, 0.0, 1.0])
    noise = generate_gaussian_noise_pt(img, sigma, gray)
    std = noise.std(dim=(1, 2, 3)) * 255
    torch.testing.assert_close(std, sigma, rtol=0.05, atol=0)
    assert torch.equal(noise[1, 0], noise[1, 2]) and not torch.equal(noise[0, 0], noise[0, 2])
    out = add_gaussian_noise_pt(img, sigma=30, clip=True, rounds=True)
    assert torch.equal(out, (out * 255).round() / 255) and float(out.min()) >= 0 and float(out.max()) <= 1
    g = torch.Generator().manual_seed(1)
    a = random_add_gaussian_noise_pt(img, (1, 30), gray_prob=0.4, generator=g)
    g.manual_seed(1)
    torch.testing.assert_close(a, random_add_gaussian_noise_pt(img, (1, 30), gray_prob=0.4, generator=g))


def _poisson_reference(img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """BasicSR's per-sample loop with ``torch.unique``, on the same generator."""
    img = torch.clamp((img * 255.0).round(), 0, 255) / 255.0
    vals = [2 ** math.ceil(math.log2(len(torch.unique(img[i])))) for i in range(img.shape[0])]
    vals_t = img.new_tensor(vals).view(-1, 1, 1, 1)
    return torch.poisson(img * vals_t, generator=generator) / vals_t - img


def test_poisson_noise_matches_per_sample_unique_loop() -> None:
    torch.manual_seed(0)
    img = torch.rand(3, 3, 16, 16)
    img[1] = (img[1] * 8).round() / 8  # few distinct levels
    scale = torch.tensor([0.5, 1.0, 3.0])
    g = torch.Generator().manual_seed(7)
    ours = generate_poisson_noise_pt(img, scale, 0, generator=g)
    g.manual_seed(7)
    torch.testing.assert_close(ours, _poisson_reference(img, g) * scale.view(-1, 1, 1, 1))
    gray = generate_poisson_noise_pt(img, 1.0, torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    out = random_add_poisson_noise_pt(img, (0.05, 3), gray_prob=0.4, rounds=True)
    assert torch.equal(out, (out * 255).round() / 255)
    assert add_poisson_noise_pt(img, scale=0.0).sub(img).abs().max() == 0


def test_numpy_noise_functions() -> None:
    np.random.seed(0)
    img = np.full((32, 32, 3), 0.5, np.float32)
    noisy = deg.add_gaussian_noise(img, sigma=10, gray_noise=True)
    np.testing.assert_array_equal(noisy[..., 0], noisy[..., 2])
    assert abs(float((noisy - img).std()) * 255 - 10) < 1
    out = deg.random_add_poisson_noise(img, (0.5, 1.0), gray_prob=0, rounds=True)
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-9)
    jpg = deg.add_jpg_compression(np.random.rand(16, 16, 3).astype(np.float32), 50)
    assert jpg.shape == (16, 16, 3) and jpg.dtype == np.float32


def test_plateau_kernels_draw_beta_from_betap_range_on_both_branches() -> None:
    """Seeded draws recomputed by hand from ``betap_range`` (never ``betag_range``); both beta branches reached."""
    betag, betap = (0.5, 4.0), (0.3, 2.5)
    branches = set()
    for seed in range(12):
        kernel = random_mixed_kernels(
            ["plateau_iso"], [1.0], 11, (1, 3), (1, 3), (0, 1), betag, betap, rng=np.random.RandomState(seed)
        )
        rs = np.random.RandomState(seed)
        rs.uniform()  # the kernel-type draw
        sigma = rs.uniform(1, 3)
        lower = rs.uniform() < 0.5
        beta = rs.uniform(betap[0], 1) if lower else rs.uniform(1, betap[1])
        branches.add(lower)
        assert (beta < 1) is lower
        expected = deg.bivariate_plateau(11, sigma, sigma, 0, beta, isotropic=True)
        np.testing.assert_allclose(kernel, expected, rtol=1e-12, atol=0)
    assert branches == {True, False}


def test_usm_defaults_are_weight_half_and_threshold_ten() -> None:
    img = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    usm = USMSharp()
    torch.testing.assert_close(usm(img), usm(img, weight=0.5, threshold=10), rtol=0, atol=0)
    assert not torch.equal(usm(img), usm(img, weight=0.8, threshold=10))
    arr = img[0].permute(1, 2, 0).numpy().copy()
    np.testing.assert_array_equal(deg.usm_sharp(arr), deg.usm_sharp(arr, weight=0.5, radius=50, threshold=10))
