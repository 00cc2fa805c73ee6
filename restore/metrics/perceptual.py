"""LPIPS (Zhang et al. 2018) via the optional ``lpips`` package (``pip install 'restore[metrics]'``); lower is better.

The package is imported on first use. Its linear heads ship with it; the backbone (AlexNet by default) comes from
torchvision's pretrained weights, which torch downloads into ``$TORCH_HOME/hub/checkpoints`` on first use. On a
machine without network access, copy the weight file there beforehand (the error message names the folder).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from restore.metrics._prepare import check_pair, crop_hwc, to_hwc
from restore.utils.registry import METRIC_REGISTRY

INSTALL_HINT = "pip install 'restore[metrics]'"
#: The torch/torchvision pair the LPIPS comparison test runs with (torchvision must come from the same build
#: variant as torch: CPU with CPU, CUDA 13.0 with CUDA 13.0).
TESTED_PAIR = ("2.13.0", "0.28.0")
_MODELS: dict[tuple[str, str, bool, str], torch.nn.Module] = {}


def _torchvision_hint() -> str:
    torch_version, vision_version = TESTED_PAIR
    return (
        f"lpips needs torchvision built for the installed torch {torch.__version__} (torch {torch_version} pairs with "
        f"torchvision {vision_version}; a CPU torch needs the CPU torchvision build, e.g. from PyTorch's CPU wheel "
        "index)"
    )


def import_lpips() -> Any:
    """Import the ``lpips`` package or raise a one-line ImportError saying what to install.

    Any failure counts: ``lpips`` or ``torchvision`` missing (ImportError), or a torchvision built for another
    torch, whose compiled operators fail to register at import (RuntimeError ``operator torchvision::nms does
    not exist``), or whose shared library does not load (OSError).
    """
    try:
        return importlib.import_module("lpips")
    except Exception as err:  # see the docstring: every import failure gets the same hint
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        missing_lpips = isinstance(err, ImportError) and getattr(err, "name", None) == "lpips"
        need = "the optional 'lpips' package" if missing_lpips else _torchvision_hint()
        raise ImportError(
            f"calculate_lpips needs {need}; importing it failed ({type(err).__name__}: {first}); "
            f"run: {INSTALL_HINT} with a matching torch/torchvision pair"
        ) from None


def _weights_hint(net: str) -> str:
    checkpoints = f"{torch.hub.get_dir()}/checkpoints"
    return (
        f"the LPIPS backbone '{net}' needs torchvision's pretrained weights in {checkpoints} (set TORCH_HOME to use "
        f"another cache); on a machine without network access copy the weight file (e.g. alexnet-owt-7be5be79.pth, "
        f"vgg16-397923af.pth) there"
    )


def lpips_model(
    net: str = "alex", version: str = "0.1", pnet_rand: bool = False, device: str = "cpu"
) -> torch.nn.Module:
    """Build (once per configuration) an ``lpips.LPIPS`` network in eval mode on ``device``.

    Args:
        net: backbone, 'alex' (paper default), 'vgg' or 'squeeze'.
        version: LPIPS linear-head version.
        pnet_rand: random backbone weights (no download; only for tests).
        device: torch device string.
    """
    key = (net, version, pnet_rand, str(device))
    if key not in _MODELS:
        lpips = import_lpips()
        try:
            model = lpips.LPIPS(net=net, version=version, pnet_rand=pnet_rand, verbose=False)
        except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError
            raise RuntimeError(f"{_weights_hint(net)}; loading failed with: {err}") from None
        _MODELS[key] = model.eval().to(device)
    return _MODELS[key]


def _to_signed_rgb(img: np.ndarray, device: str) -> torch.Tensor:
    """BGR (H, W, 3) on the 0..255 scale -> RGB (1, 3, H, W) float32 in [-1, 1]."""
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    rgb = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(rgb).to(device)[None] / 127.5 - 1.0


@METRIC_REGISTRY.register()
def calculate_lpips(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
    net: str = "alex",
    version: str = "0.1",
    pnet_rand: bool = False,
    device: str | None = None,
) -> float:
    """LPIPS distance between two images (0 for identical images; lower is better).

    Args:
        img, img2: images on the 0..255 scale, BGR for colour, (H, W, 3), (3, H, W) or gray; same shape.
        crop_border: pixels removed from each edge.
        input_order: 'HWC' or 'CHW'.
        net, version, pnet_rand: see :func:`lpips_model`.
        device: where to run; default CUDA when available.

    Returns:
        The LPIPS distance (float).
    """
    check_pair(img, img2, "calculate_lpips")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = lpips_model(net, version, pnet_rand, device)
    a, b = (crop_hwc(to_hwc(np.asarray(x), input_order, "calculate_lpips"), crop_border) for x in (img, img2))
    with torch.no_grad():
        return float(model(_to_signed_rgb(a, device), _to_signed_rgb(b, device)).item())


__all__ = ["INSTALL_HINT", "TESTED_PAIR", "calculate_lpips", "import_lpips", "lpips_model"]
