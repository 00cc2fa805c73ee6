"""Data: image I/O, MATLAB-compatible resizing, colour conversions and datasets (imported lazily)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(("imresize", "modcrop", "round_to_uint8"), "restore.data.imresize"),
    **dict.fromkeys(("read_image", "write_image"), "restore.data.image_io"),
    **dict.fromkeys(
        ("rgb2ycbcr", "bgr2ycbcr", "ycbcr2rgb", "ycbcr2bgr", "to_y_channel", "rgb2ycbcr_pt"), "restore.data.color"
    ),
    "tensor_to_uint8": "restore.data.benchmark",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'restore.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
