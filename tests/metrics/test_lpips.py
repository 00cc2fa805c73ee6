"""LPIPS through the optional ``lpips`` package: real values when it is installed, clear errors otherwise."""

from __future__ import annotations

import importlib.util
import sys
import types
import urllib.error

import numpy as np
import pytest
from metric_refs import image as reference_image

from restore.metrics import METRIC_REGISTRY, calculate_lpips, perceptual


@pytest.fixture(autouse=True)
def fresh_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perceptual, "_MODELS", {})


def test_lpips_values_or_install_hint() -> None:
    """With ``lpips`` installed: 0 for identical images, larger for stronger distortion; without: the install hint."""
    img = np.ascontiguousarray(reference_image("astronaut")[128:192, 160:224])
    rng = np.random.default_rng(0)
    mild = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    strong = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    if importlib.util.find_spec("lpips") is None:
        with pytest.raises(ImportError) as err:
            calculate_lpips(img, mild, pnet_rand=True, device="cpu")
        assert "pip install 'restore[metrics]'" in str(err.value) and "\n" not in str(err.value)
        return
    fn = METRIC_REGISTRY.get("calculate_lpips")
    same = fn(img, img.copy(), crop_border=0, pnet_rand=True, device="cpu")
    d_mild = fn(img, mild, crop_border=0, pnet_rand=True, device="cpu")
    d_strong = fn(img, strong, crop_border=0, pnet_rand=True, device="cpu")
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0 < d_mild < d_strong


def test_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lpips", None)  # makes ``import lpips`` fail even where it is installed
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ImportError) as err:
        calculate_lpips(img, img, device="cpu")
    assert "pip install 'restore[metrics]'" in str(err.value) and "\n" not in str(err.value)


def test_offline_backbone_message(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Without network the backbone download fails; the error must say where to put the weights."""

    class OfflineLPIPS:
        def __init__(self, **kwargs) -> None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=OfflineLPIPS))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(RuntimeError) as err:
        calculate_lpips(img, img, device="cpu")
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "TORCH_HOME" in message and "name resolution" in message and "\n" not in message
