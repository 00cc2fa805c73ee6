"""PSNR/SSIM against the reference values of ``tests/fixtures/metrics`` (every record), plus behaviour checks."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from metric_refs import image as reference_image
from metric_refs import index, modcrop, npz, sha256

from restore.metrics import (
    METRIC_REGISTRY,
    calculate_psnr,
    calculate_psnr_pt,
    calculate_ssim,
    calculate_ssim_pt,
)
from restore.metrics.psnr_ssim import downsample_factor

PAIRS = {p["image"]: p for p in index()["psnr_ssim"]["pairs"]}
VALUES = index()["psnr_ssim"]["values"]
VALUES_TORCH = index()["psnr_ssim"]["values_torch"]


def _id(r: dict) -> str:
    space = "y" if r["test_y_channel"] else "all"
    dtype = f"-{r['tensor_dtype']}" if "tensor_dtype" in r else ""
    return f"{r['image']}-{r['degraded']}-{r['metric']}-crop{r['crop_border']}-{space}{dtype}"


def pair(name: str, degraded: str) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, degraded) uint8 arrays in BGR/gray as the README defines them."""
    spec = PAIRS[name]
    gt = modcrop(reference_image(name), spec["gt"]["modcrop"])
    assert sha256(gt) == spec["gt"]["sha256"]
    return gt, npz(spec["file"])[spec["degraded"][degraded]["key"]]


def rgb_tensor(img: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """uint8 BGR (H, W, 3) / gray (H, W) -> (1, C, H, W) RGB in [0, 1], exactly as the README builds it."""
    chw = img[None] if img.ndim == 2 else img[..., ::-1].transpose(2, 0, 1)
    return torch.from_numpy(np.array(chw)).to(dtype)[None] / 255


@pytest.mark.parametrize("record", VALUES, ids=_id)
def test_numpy_metric_matches_reference(record: dict) -> None:
    gt, degraded = pair(record["image"], record["degraded"])
    fn = {"psnr": calculate_psnr, "ssim": calculate_ssim}[record["metric"]]
    value = fn(degraded, gt, record["crop_border"], input_order="HWC", test_y_channel=record["test_y_channel"])
    assert value == pytest.approx(record["value"], abs=record["atol"], rel=0)


@pytest.mark.parametrize("record", VALUES_TORCH, ids=_id)
def test_torch_metric_matches_reference(record: dict) -> None:
    gt, degraded = pair(record["image"], record["degraded"])
    dtype = getattr(torch, record["tensor_dtype"])
    fn = {"psnr": calculate_psnr_pt, "ssim": calculate_ssim_pt}[record["metric"]]
    value = fn(rgb_tensor(degraded, dtype), rgb_tensor(gt, dtype), record["crop_border"],
               test_y_channel=record["test_y_channel"])  # fmt: skip
    assert value.shape == (1,)
    assert value.item() == pytest.approx(record["value"], abs=record["atol"], rel=0)


def _matlab_y_u8(bgr: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8 (independent of the library): ``T = (1/255) * [65.481 128.553 24.966]``,
    ``T1*R + T2*G + T3*B + 16`` left to right in double, rounded half away from zero."""
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    t = [(1 / 255) * c for c in (65.481, 128.553, 24.966)]
    return np.floor(t[0] * r + t[1] * g + t[2] * b + 16 + 0.5)


def test_y_channel_uint8_is_the_deraining_protocol() -> None:
    gt, degraded = pair("coffee", "jpeg_q30")
    y_gt, y_deg = _matlab_y_u8(gt), _matlab_y_u8(degraded)
    expected_psnr = 10 * math.log10(255**2 / np.mean((y_gt - y_deg) ** 2))
    psnr = calculate_psnr(degraded, gt, 0, test_y_channel=True, y_channel_uint8=True)
    assert psnr == pytest.approx(expected_psnr, abs=1e-10)
    # rounding Y is a different number from the SR convention, so the switch must matter
    assert abs(psnr - calculate_psnr(degraded, gt, 0, test_y_channel=True)) > 1e-4
    # SSIM on integer Y equals the colour-free SSIM of a gray image holding those integers
    ssim = calculate_ssim(degraded, gt, 0, test_y_channel=True, y_channel_uint8=True)
    assert ssim == pytest.approx(calculate_ssim(y_deg.astype(np.uint8), y_gt.astype(np.uint8), 0), abs=1e-12)


def test_y_channel_uint8_torch_agrees_with_numpy() -> None:
    gt, degraded = pair("chelsea", "gauss_s15")
    a, b = rgb_tensor(degraded, torch.float32), rgb_tensor(gt, torch.float32)
    ssim_pt = calculate_ssim_pt(a, b, 4, test_y_channel=True, y_channel_uint8=True).item()
    ssim_np = calculate_ssim(degraded, gt, 4, test_y_channel=True, y_channel_uint8=True)
    assert ssim_pt == pytest.approx(ssim_np, abs=1e-10)
    psnr_pt = calculate_psnr_pt(a, b, 4, test_y_channel=True, y_channel_uint8=True).item()
    psnr_np = calculate_psnr(degraded, gt, 4, test_y_channel=True, y_channel_uint8=True)
    assert psnr_pt == pytest.approx(psnr_np, abs=1e-3)  # the torch formula adds 1e-8 to the mse


def test_y_channel_uint8_requires_test_y_channel() -> None:
    gt, degraded = pair("camera", "gauss_s15")
    with pytest.raises(ValueError, match="test_y_channel"):
        calculate_psnr(degraded, gt, 0, y_channel_uint8=True)


def test_identical_images() -> None:
    gt, _ = pair("astronaut", "jpeg_q30")
    assert calculate_psnr(gt, gt.copy(), 0) == math.inf
    assert calculate_ssim(gt, gt.copy(), 4, test_y_channel=True) == pytest.approx(1.0, abs=1e-12)
    t = rgb_tensor(gt[:64, :64], torch.float32)
    assert calculate_psnr_pt(t, t.clone(), 0).item() == pytest.approx(80.0, abs=1e-9)  # 10 log10(1 / 1e-8)
    assert calculate_ssim_pt(t, t.clone(), 0).item() == pytest.approx(1.0, abs=1e-12)


def test_chw_order_and_batching() -> None:
    gt, jpeg = pair("chelsea", "jpeg_q30")
    _, noisy = pair("chelsea", "gauss_s15")
    hwc = calculate_ssim(jpeg, gt, 4, test_y_channel=True)
    chw = calculate_ssim(jpeg.transpose(2, 0, 1), gt.transpose(2, 0, 1), 4, input_order="CHW", test_y_channel=True)
    assert chw == hwc
    batch = torch.cat([rgb_tensor(jpeg, torch.float64), rgb_tensor(noisy, torch.float64)])
    target = rgb_tensor(gt, torch.float64).expand(2, -1, -1, -1)
    for fn in (calculate_psnr_pt, calculate_ssim_pt):
        both = fn(batch, target, 4, test_y_channel=True)
        assert both.shape == (2,)
        for i in range(2):
            single = fn(batch[i : i + 1], target[i : i + 1], 4, test_y_channel=True)
            assert both[i].item() == pytest.approx(single.item(), abs=1e-12)


def test_errors_are_one_line() -> None:
    gt, degraded = pair("camera", "jpeg_q30")
    with pytest.raises(ValueError, match=r"shapes differ: \(512, 512\) vs \(512, 508\)") as err:
        calculate_psnr(gt, degraded[:, :508], 0)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="input_order"):
        calculate_ssim(gt, degraded, 0, input_order="WHC")
    with pytest.raises(ValueError, match="at least 11x11"):
        calculate_ssim(gt[:10, :10], degraded[:10, :10], 0)


@pytest.mark.parametrize("name", ["calculate_psnr", "calculate_ssim", "calculate_psnr_pt", "calculate_ssim_pt"])
def test_registered_and_option_keys_accepted(name: str) -> None:
    fn = METRIC_REGISTRY.get(name)
    assert fn.__name__ == name
    gt, degraded = pair("astronaut", "bicubic_x4")
    options = {"crop_border": 4, "test_y_channel": True}  # as in option files (``type``/``better`` stay behind)
    if name.endswith("_pt"):
        images = (rgb_tensor(degraded, torch.float64), rgb_tensor(gt, torch.float64))
        value = fn(*images, **options).item()
    else:
        images = (degraded, gt)
        value = fn(*images, **options)
    assert np.isfinite(value)
    with pytest.raises(TypeError, match="test_y_chanel"):  # no **kwargs: a misspelt key is never swallowed
        fn(*images, crop_border=4, test_y_chanel=True)


@pytest.mark.cuda
def test_torch_metrics_on_cuda_match_cpu() -> None:
    gt, degraded = pair("coffee", "jpeg_q30")
    a, b = rgb_tensor(degraded, torch.float32), rgb_tensor(gt, torch.float32)
    for fn in (calculate_psnr_pt, calculate_ssim_pt):
        cpu = fn(a, b, 4, test_y_channel=True)
        cuda = fn(a.cuda(), b.cuda(), 4, test_y_channel=True)
        assert cuda.device.type == "cuda"
        assert cuda.cpu().item() == pytest.approx(cpu.item(), abs=1e-6)


def _ssim_m_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """Independent ssim.m reduction: imfilter(img, ones(f)/f^2, 'symmetric', 'same') then img(1:f:end, 1:f:end)."""
    before = (f + 1) // 2 - 1  # MATLAB puts the kernel centre at floor((f + 1) / 2)
    padded = np.pad(img.astype(np.float64), ((before, f - 1 - before), (before, f - 1 - before)), mode="symmetric")
    h, w = img.shape
    box = sum(padded[i : i + h, j : j + w] for i in range(f) for j in range(f)) / (f * f)
    return box[::f, ::f]


@pytest.mark.parametrize("shape", [(512, 520), (650, 700)], ids=["f2", "f3-odd-edges"])
def test_auto_downsample_is_wangs_ssim_m(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    gt = cv2.GaussianBlur(rng.integers(0, 256, shape).astype(np.uint8), (7, 7), 2)
    noisy = np.clip(gt + rng.normal(0, 10, shape), 0, 255).astype(np.uint8)
    f = round(min(shape) / 256)
    expected = calculate_ssim(_ssim_m_downsample(noisy, f), _ssim_m_downsample(gt, f), 0)
    assert calculate_ssim(noisy, gt, 0, auto_downsample=True) == pytest.approx(expected, abs=1e-12)
    assert abs(expected - calculate_ssim(noisy, gt, 0)) > 1e-3  # the reduction matters
    as_tensor = [torch.from_numpy(x.astype(np.float64) / 255)[None, None] for x in (noisy, gt)]
    assert calculate_ssim_pt(*as_tensor, 0, auto_downsample=True).item() == pytest.approx(expected, abs=1e-12)
    # images under 384 pixels are not reduced
    small = calculate_ssim(noisy[:300, :300], gt[:300, :300], 0)
    assert calculate_ssim(noisy[:300, :300], gt[:300, :300], 0, auto_downsample=True) == small


def test_downsample_factor_rounds_halves_away_from_zero() -> None:
    """MATLAB's ``round``: 640 / 256 = 2.5 -> 3 and 1152 / 256 = 4.5 -> 5 (Python's ``round`` would give 2 and 4)."""
    assert downsample_factor(640, 700) == 3 and downsample_factor(700, 640) == 3
    assert downsample_factor(1152, 1300) == 5
    assert downsample_factor(639, 700) == 2 and downsample_factor(1151, 1300) == 4
    assert downsample_factor(100, 100) == 1
