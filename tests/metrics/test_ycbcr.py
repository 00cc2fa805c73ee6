"""BT.601 conversions against ``tests/fixtures/metrics/ycbcr.npz`` (every array) and exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from metric_refs import image as reference_image
from metric_refs import index, npz, sha256

from restore.data.color import (
    bgr2ycbcr,
    rgb2ycbcr,
    rgb2ycbcr_pt,
    to_y_channel,
    ycbcr2bgr,
    ycbcr2rgb,
)

SPEC = index()["ycbcr"]


def crop_bgr() -> np.ndarray:
    y0, x0, h, w = SPEC["input"]["box"]
    img = reference_image("astronaut")[y0 : y0 + h, x0 : x0 + w]
    assert sha256(img) == SPEC["input"]["sha256"]
    return np.ascontiguousarray(img)


def compute(key: str, bgr: np.ndarray) -> np.ndarray:
    unit = bgr.astype(np.float32) / 255  # float32 [0, 1], the README's float input
    if key == "y_u8":
        return bgr2ycbcr(bgr, y_only=True)
    if key == "y_f32":
        return bgr2ycbcr(unit, y_only=True)
    if key == "ycbcr_u8":
        return bgr2ycbcr(bgr)
    if key == "ycbcr_f32":
        return bgr2ycbcr(unit)
    if key == "y_f32_from_rgb":
        return rgb2ycbcr(np.ascontiguousarray(unit[..., ::-1]), y_only=True)
    if key == "to_y_channel":
        return to_y_channel(bgr)
    if key == "y_pt_f32":
        rgb = torch.from_numpy(np.array(bgr[..., ::-1].transpose(2, 0, 1))).float()[None] / 255
        return rgb2ycbcr_pt(rgb, y_only=True)[0, 0].numpy()
    raise KeyError(key)


@pytest.mark.parametrize("key", sorted(SPEC["arrays"]))
def test_matches_reference(key: str) -> None:
    expected = npz(SPEC["file"])[key]
    got = compute(key, crop_bgr())
    assert got.shape == tuple(SPEC["arrays"][key]["shape"])
    assert got.dtype == np.dtype(SPEC["arrays"][key]["dtype"])
    atol = SPEC["atol"][key]
    if atol == 0:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


def _exact_ycbcr(rgb: tuple[int, int, int]) -> list[int]:
    """MATLAB's uint8 result from exact rationals: round half away from zero (all values are positive)."""
    rows = [("65.481", "128.553", "24.966", 16), ("-37.797", "-74.203", "112", 128), ("112", "-93.786", "-18.214", 128)]
    out = []
    for *coeffs, offset in rows:
        value = offset + sum(Fraction(c) * v for c, v in zip(coeffs, rgb)) / 255
        out.append(int(value + Fraction(1, 2)) if value - int(value) >= Fraction(1, 2) else int(value))
    return out


def test_uint8_rounding_is_exact_including_ties() -> None:
    rng = np.random.default_rng(0)
    colours = [tuple(int(v) for v in c) for c in rng.integers(0, 256, size=(300, 3))]
    colours += [(0, 204, 68), (2, 44, 141), (5, 65, 25)]  # Y is exactly 125.5, 52.5, 52.5 for these
    rgb = np.array(colours, dtype=np.uint8)[None]
    got = rgb2ycbcr(rgb)[0]
    expected = np.array([_exact_ycbcr(c) for c in colours])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(rgb2ycbcr(rgb, y_only=True)[0], expected[:, 0])


def test_inverse_round_trip() -> None:
    bgr = crop_bgr()
    unit = bgr.astype(np.float64) / 255
    np.testing.assert_allclose(ycbcr2bgr(bgr2ycbcr(unit)), unit, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ycbcr2rgb(rgb2ycbcr(unit[..., ::-1])), unit[..., ::-1], rtol=0, atol=1e-12)
    back = ycbcr2bgr(bgr2ycbcr(bgr))  # uint8 YCbCr quantisation loses at most a couple of levels
    assert back.dtype == np.uint8 and np.abs(back.astype(int) - bgr).max() <= 2


def test_full_conversion_tensor_matches_numpy() -> None:
    bgr = crop_bgr()
    rgb = torch.from_numpy(np.array(bgr[..., ::-1].transpose(2, 0, 1))).double()[None] / 255
    got = rgb2ycbcr_pt(rgb)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, bgr2ycbcr(bgr.astype(np.float64) / 255), rtol=0, atol=1e-12)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        bgr2ycbcr(np.zeros((4, 4), np.uint8))
    with pytest.raises(TypeError, match="int32"):
        rgb2ycbcr(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        rgb2ycbcr_pt(torch.zeros(3, 4, 4))
