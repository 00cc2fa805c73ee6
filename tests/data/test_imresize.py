"""MATLAB bicubic ``imresize`` against ``tests/fixtures/metrics`` (every record), plus tensor and edge-case checks.

The stored references are the full outputs sampled at the rows and columns of ``index.json["imresize_sampling"]``
(every border and corner plus a middle band; see that folder's README); the full output's shape is checked too."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import torch

from restore.data.imresize import imresize, modcrop, resize_matrix, round_to_uint8

METRICS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
INDEX = json.loads((METRICS_DIR / "index.json").read_text())
RECORDS = INDEX["imresize"]
LR_RULE = INDEX["tolerances"]["lr_u8"]
SAMPLING = INDEX["imresize_sampling"]


def sample_indices(n: int) -> np.ndarray:
    """The README's rule: all indices if the axis is short, else the first/last ``edge`` and a ``middle`` band."""
    edge, middle = SAMPLING["edge"], SAMPLING["middle"]
    if n <= 2 * edge + middle:
        return np.arange(n)
    start = n // 2 - middle // 2
    return np.concatenate([np.arange(edge), np.arange(start, start + middle), np.arange(n - edge, n)])


def sampled(out: np.ndarray) -> np.ndarray:
    return out[sample_indices(out.shape[0])][:, sample_indices(out.shape[1])]


@lru_cache(maxsize=8)
def reference_image(name: str) -> np.ndarray:
    """Decode ``skimage/data/<file>`` as the README says (BGR or gray uint8) and check its sha256."""
    spec = INDEX["images"][name]
    path = Path(skimage.__file__).resolve().parent / "data" / spec["file"]
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if spec["gray"] else cv2.IMREAD_COLOR)
    y0, x0, h, w = spec["box"]
    img = np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])
    assert hashlib.sha256(img.tobytes()).hexdigest() == spec["sha256"], f"{path}: pixels differ from the reference"
    return img


@lru_cache(maxsize=8)
def stored(filename: str) -> dict[str, np.ndarray]:
    with np.load(METRICS_DIR / filename) as data:
        return {k: data[k] for k in data.files}


def record_input(record: dict) -> np.ndarray:
    """The uint8 input of a record: the image, its ``box`` crop, then the top-left mod-crop."""
    img = reference_image(record["image"])
    if record["box"]:
        y0, x0, h, w = record["box"]
        img = img[y0 : y0 + h, x0 : x0 + w]
    if record["modcrop"]:
        s = record["modcrop"]
        img = img[: img.shape[0] - img.shape[0] % s, : img.shape[1] - img.shape[1] % s]
    assert list(img.shape) == record["input_shape"]
    return np.ascontiguousarray(img)


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_matches_reference(record: dict) -> None:
    img = record_input(record)
    expected = stored(record["file"])[record["key"]]
    if record["key"].endswith("_lr_u8"):
        lr = round_to_uint8(imresize(img.astype(np.float64) / 255.0, record["scale"]))
        assert lr.dtype == np.uint8 and list(lr.shape) == record["output_shape"]
        lr = sampled(lr)
        differ = lr != expected
        if differ.any():  # only .5 ties of the stored float result may round the other way
            float_ref = stored(record["file"])[record["derived_from"]] * 255.0
            at_tie = np.abs(float_ref - np.floor(float_ref) - 0.5) < LR_RULE["tie_window"]
            assert np.abs(lr.astype(int) - expected.astype(int)).max() <= LR_RULE["max_abs"]
            assert at_tie[differ].all(), f"{int((differ & ~at_tie).sum())} non-tie pixels differ"
            assert differ.mean() <= LR_RULE["max_fraction_differing"]
        return
    data = img if record["input_dtype"] == "uint8" else img.astype(np.float64) / 255.0
    out = imresize(data, record["scale"])
    assert list(out.shape) == record["output_shape"]
    assert out.dtype == (np.float32 if record["input_dtype"] == "uint8" else np.float64)
    np.testing.assert_allclose(sampled(out), expected, rtol=0, atol=record["atol"])


def test_tensor_path_matches_numpy() -> None:
    img = reference_image("chelsea")[:90, :120].astype(np.float64) / 255.0  # (H, W, 3)
    chw = torch.from_numpy(img.transpose(2, 0, 1).copy())
    for scale in (0.25, 1 / 3, 2.0):
        expected = imresize(img, scale).transpose(2, 0, 1)
        single = imresize(chw, scale)
        batch = imresize(torch.stack([chw, chw.flip(0)]), scale)
        assert single.dtype == torch.float64 and tuple(single.shape) == expected.shape
        np.testing.assert_allclose(single.numpy(), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(batch[1].numpy(), expected[::-1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(imresize(chw.float(), scale).numpy(), expected, rtol=0, atol=2e-6)


def test_gray_and_uint8_semantics() -> None:
    gray = reference_image("camera")
    out = imresize(gray, 0.5)
    assert out.shape == (256, 256) and out.dtype == np.float32
    np.testing.assert_allclose(out / 255.0, imresize(gray.astype(np.float64) / 255.0, 0.5), rtol=0, atol=1e-5)
    assert imresize(gray.astype(np.float32), 0.5).dtype == np.float32


def test_identity_and_constant() -> None:
    img = reference_image("coffee")[:37, :53].astype(np.float64)
    np.testing.assert_allclose(imresize(img, 1.0), img, rtol=0, atol=1e-12)
    flat = np.full((31, 17), 0.3)
    for scale in (0.25, 1 / 3, 2.0, 3.0):
        np.testing.assert_allclose(imresize(flat, scale), 0.3, rtol=0, atol=1e-12)


def test_resize_matrix_rows_and_mirroring() -> None:
    m = resize_matrix(10, 3, 1 / 3)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # a tiny input forces mirrored taps beyond both edges; a ramp must still map to a symmetric result
    ramp = np.arange(4, dtype=np.float64)
    out = resize_matrix(4, 8, 2.0) @ ramp
    np.testing.assert_allclose(out + out[::-1], 3.0, rtol=0, atol=1e-12)


def test_output_size_and_modcrop() -> None:
    img = np.zeros((511, 509, 3), np.uint8)
    assert modcrop(img, 4).shape == (508, 508, 3)
    assert imresize(modcrop(img, 3), 1 / 3).shape == (170, 169, 3)
    assert imresize(img[:10, :10], 0.3).shape == (3, 3, 3)  # ceil(10 * 0.3)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(TypeError, match="int16"):
        imresize(np.zeros((4, 4), np.int16), 2)
    with pytest.raises(TypeError, match="floating point"):
        imresize(torch.zeros(3, 4, 4, dtype=torch.uint8), 2)


@pytest.mark.cuda
def test_tensor_path_on_cuda() -> None:
    img = torch.from_numpy(reference_image("coffee")[:64, :80].transpose(2, 0, 1).copy()).float()[None] / 255
    for scale in (0.25, 2.0):
        cpu = imresize(img, scale)
        cuda = imresize(img.cuda(), scale)
        assert cuda.device.type == "cuda"
        torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-5)
