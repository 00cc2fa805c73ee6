"""LPIPS through the optional ``lpips`` package: real values when it is installed, clear errors otherwise.

The comparison with the ``lpips`` package called directly needs ``lpips`` and a torchvision built for the installed
torch (``perceptual.TESTED_PAIR``). Where that pair cannot be imported the comparison is skipped and the reason,
the import error itself, is shown.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import urllib.error

import numpy as np
import pytest
import torch
from metric_refs import image as reference_image

from restore.losses import LPIPSLoss
from restore.metrics import METRIC_REGISTRY, calculate_lpips, perceptual


def _lpips_or_reason() -> tuple[object | None, str]:
    try:
        return importlib.import_module("lpips"), ""
    except Exception as err:  # a torchvision of another build fails with RuntimeError, not ImportError
        first = (str(err).splitlines() or [""])[0][:200]
        reason = f"lpips/torchvision cannot be imported with torch {torch.__version__}"
        return None, f"{reason}: {type(err).__name__}: {first}"


LPIPS, LPIPS_UNAVAILABLE = _lpips_or_reason()


@pytest.fixture(autouse=True)
def fresh_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perceptual, "_MODELS", {})


def test_lpips_values_or_install_hint() -> None:
    """With ``lpips`` installed: 0 for identical images, larger for stronger distortion; without: the install hint."""
    img = np.ascontiguousarray(reference_image("astronaut")[128:192, 160:224])
    rng = np.random.default_rng(0)
    mild = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    strong = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    if LPIPS is None:
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


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("operator torchvision::nms does not exist"),  # torchvision built for another torch
        ModuleNotFoundError("No module named 'torchvision'", name="torchvision"),
        OSError("libcudart.so.13: cannot open shared object file"),
    ],
    ids=["mismatched-torchvision", "no-torchvision", "unloadable-library"],
)
def test_torchvision_failures_become_the_install_hint(failure: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def failing(name: str, *args, **kwargs):
        if name == "lpips":
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(perceptual.importlib, "import_module", failing)
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ImportError) as err:
        calculate_lpips(img, img, device="cpu")
    message = str(err.value)
    assert "\n" not in message and "pip install 'restore[metrics]'" in message
    assert "torchvision 0.28.0" in message and f"installed torch {torch.__version__}" in message
    assert str(failure).split(":")[0] in message
    with pytest.raises(ImportError, match=r"LPIPSLoss: .*torchvision"):
        LPIPSLoss(pnet_rand=True)


@pytest.mark.skipif(LPIPS is None, reason=LPIPS_UNAVAILABLE or "lpips importable")
def test_metric_and_loss_equal_the_lpips_package_with_random_backbone() -> None:
    """Random-weight backbone (``pnet_rand``), so nothing is downloaded; the same seed gives both sides the same
    weights. Inputs: our metric takes BGR uint8, the package RGB in [-1, 1]; our loss RGB in [0, 1]."""
    img = np.ascontiguousarray(reference_image("coffee")[100:164, 200:264])
    noisy = np.clip(img + np.random.default_rng(1).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    signed = [torch.from_numpy(x[..., ::-1].transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1 for x in (img, noisy)]
    torch.manual_seed(0)
    direct_model = LPIPS.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    with torch.no_grad():
        direct = float(direct_model(*signed).item())
    torch.manual_seed(0)
    ours = calculate_lpips(img, noisy, pnet_rand=True, device="cpu")
    assert ours == pytest.approx(direct, rel=1e-5, abs=1e-7) and direct > 0
    torch.manual_seed(0)
    loss = LPIPSLoss(loss_weight=2.0, pnet_rand=True)
    value = loss((signed[1] + 1) / 2, (signed[0] + 1) / 2)
    assert float(value) == pytest.approx(2.0 * direct, rel=1e-5)
