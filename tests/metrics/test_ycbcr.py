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
    to_y_channel_float64,
    ycbcr2bgr,
    ycbcr2rgb,
)
from restore.metrics._prepare import y_channel_pt

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
    if key in ("y_u8", "ycbcr_u8"):
        # BasicSR rounds its float evaluation half to even; MATLAB (which these follow) rounds its double evaluation
        # half away from zero. They can differ only where the exact value ends in .5: there MATLAB's value is taken.
        rgb = crop_bgr()[..., ::-1]
        for row in range(1 if key == "y_u8" else 3):
            plane, ref = (got, expected) if key == "y_u8" else (got[..., row], expected[..., row])
            ties = _scaled_value(*rgb.astype(np.int64).transpose(2, 0, 1), row) % 255000 == 127500
            for i, j in np.argwhere(ties):
                assert plane[i, j] == _round_half_away(_matlab_double(tuple(int(v) for v in rgb[i, j]), row))
            np.testing.assert_array_equal(plane[~ties], ref[~ties])
    elif atol == 0:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


ROWS = (("65.481", "128.553", "24.966", 16), ("-37.797", "-74.203", "112", 128), ("112", "-93.786", "-18.214", 128))


def _exact(rgb: tuple[int, int, int], row: int) -> Fraction:
    *coeffs, offset = ROWS[row]
    return offset + sum(Fraction(c) * v for c, v in zip(coeffs, rgb)) / 255


def _exact_ycbcr(rgb: tuple[int, int, int]) -> list[int]:
    """The exact rational value rounded half up (all values are positive); MATLAB agrees away from .5 ties."""
    return [int(_exact(rgb, row) + Fraction(1, 2)) for row in range(3)]


def _matlab_double(rgb: tuple[int, int, int], row: int) -> float:
    """MATLAB ``rgb2ycbcr.m`` on uint8, in Python floats: ``T = (1/255) * origT`` entry by entry, then
    ``T1*R + T2*G + T3*B + offset`` left to right (``imlincomb``)."""
    *coeffs, offset = ROWS[row]
    t = [(1 / 255) * float(c) for c in coeffs]
    return t[0] * rgb[0] + t[1] * rgb[1] + t[2] * rgb[2] + offset


def _round_half_away(value: float) -> int:
    """Exact half-away-from-zero rounding of a double (positive here), via its exact rational value."""
    exact = Fraction(value)
    return int(exact + Fraction(1, 2)) if exact >= 0 else -int(-exact + Fraction(1, 2))


def _scaled_value(r: np.ndarray, g: np.ndarray, b: np.ndarray, row: int) -> np.ndarray:
    """``255000 * value`` of ``row`` for int64 R, G, B (broadcast), exactly: offset * 255000 + thousandths x R, G, B."""
    *coeffs, offset = ROWS[row]
    milli = [int(Fraction(c) * 1000) for c in coeffs]
    return milli[0] * r + milli[1] * g + milli[2] * b + offset * 255000


def tie_colours(row: int) -> list[tuple[int, int, int]]:
    """Every uint8 RGB colour whose exact value of ``row`` (0: Y, 1: Cb, 2: Cr) ends in .5, by integer arithmetic."""
    v = np.arange(256, dtype=np.int64)
    num = _scaled_value(v[:, None, None], v[None, :, None], v[None, None, :], row)
    return [tuple(int(c) for c in t) for t in np.argwhere(num % 255000 == 127500)]


def test_uint8_rounding_is_exact_away_from_ties() -> None:
    rng = np.random.default_rng(0)
    colours = [tuple(int(v) for v in c) for c in rng.integers(0, 256, size=(300, 3))]
    colours = [c for c in colours if all(_exact(c, row).denominator != 2 for row in range(3))]
    rgb = np.array(colours, dtype=np.uint8)[None]
    got = rgb2ycbcr(rgb)[0]
    expected = np.array([_exact_ycbcr(c) for c in colours])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(rgb2ycbcr(rgb, y_only=True)[0], expected[:, 0])


@pytest.mark.parametrize("row", [0, 1, 2], ids=["Y", "Cb", "Cr"])
def test_uint8_ties_round_as_matlab_double_arithmetic(row: int) -> None:
    """Exact .5 ties round as MATLAB's double evaluation lands them, not as exact arithmetic would."""
    ties = tie_colours(row)
    if row == 1:
        assert ties == []  # no colour has a Cb ending in .5
        return
    assert all(_exact(c, row).denominator == 2 for c in ties)
    expected = np.array([_round_half_away(_matlab_double(c, row)) for c in ties])
    rgb = np.array(ties, dtype=np.uint8)[None]
    np.testing.assert_array_equal(rgb2ycbcr(rgb)[0][:, row], expected)
    np.testing.assert_array_equal(bgr2ycbcr(np.ascontiguousarray(rgb[..., ::-1]))[0][:, row], expected)
    if row == 0:
        assert len(ties) == 194
        np.testing.assert_array_equal(rgb2ycbcr(rgb, y_only=True)[0], expected)
        down = sum(int(e) < _exact(c, 0) for c, e in zip(ties, expected))
        assert down == 149 and (0, 204, 68) in ties and _matlab_double((0, 204, 68), 0) < 125.5
        # the metrics' tensor path quantises and rounds the same way
        tensor = torch.from_numpy(np.array(ties, dtype=np.float64).T.copy()).view(1, 3, 1, -1) / 255
        y = y_channel_pt(tensor.float(), y_channel_uint8=True) * 255
        np.testing.assert_array_equal(y.round().view(-1).numpy(), expected)


def test_float64_y_is_matlab_im2double_arithmetic() -> None:
    """``to_y_channel_float64`` = ``rgb2ycbcr(im2double(x))(:, :, 1) * 255`` evaluated as MATLAB does, bit for bit,
    while BasicSR's float32 Y (``to_y_channel``) differs in the last digits."""
    bgr = crop_bgr()[:12, :10]
    got = to_y_channel_float64(bgr)
    assert got.dtype == np.float64 and got.shape == (*bgr.shape[:2], 1)
    t = [(1 / 255) * c for c in (65.481, 128.553, 24.966)]
    for (i, j), _ in np.ndenumerate(bgr[..., 0]):
        b, g, r = (int(v) / 255 for v in bgr[i, j])
        assert got[i, j, 0] == (t[0] * r + t[1] * g + t[2] * b + (1 / 255) * 16) * 255
    assert np.abs(to_y_channel(bgr).astype(np.float64) - got).max() > 1e-6
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))).double()[None] / 255
    np.testing.assert_array_equal(y_channel_pt(rgb, False, y_channel_float64=True)[0, 0].numpy() * 255, got[..., 0])


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
