"""Reference records of ``tests/fixtures/metrics`` (see its README) and the photos they were computed on."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import skimage

METRICS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
SKIMAGE_DATA = Path(skimage.__file__).resolve().parent / "data"


@lru_cache(maxsize=1)
def index() -> dict:
    """The parsed ``index.json`` (read at collection time so every record becomes a test id)."""
    return json.loads((METRICS_DIR / "index.json").read_text())


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@lru_cache(maxsize=8)
def image(name: str) -> np.ndarray:
    """A reference image as defined in ``index.json["images"]``: BGR uint8 (H, W, 3) or gray (H, W), sha256-checked."""
    spec = index()["images"][name]
    flag = cv2.IMREAD_GRAYSCALE if spec["gray"] else cv2.IMREAD_COLOR
    img = cv2.imread(str(SKIMAGE_DATA / spec["file"]), flag)
    assert img is not None, f"{SKIMAGE_DATA / spec['file']}: cannot be read"
    y0, x0, h, w = spec["box"]
    img = np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])
    assert sha256(img) == spec["sha256"], f"{spec['file']}: decoded pixels differ from the reference (sha256)"
    img.setflags(write=False)
    return img


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """The README's definition, kept independent of the library's ``modcrop``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


@lru_cache(maxsize=16)
def npz(filename: str) -> dict[str, np.ndarray]:
    with np.load(METRICS_DIR / filename) as data:
        return {key: data[key] for key in data.files}
