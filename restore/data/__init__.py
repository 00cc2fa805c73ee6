"""Data: image I/O, MATLAB-compatible resizing, colour conversions and datasets.

``imresize`` is both a function and the name of its submodule. Importing a submodule binds it as an attribute of the
package, which would shadow a lazily provided function of the same name, so that module is imported eagerly here
and the function is bound after it. The other names are imported on first use and then cached in the package.
"""

from __future__ import annotations

import importlib
from typing import Any

from restore.data.imresize import imresize, modcrop, round_to_uint8

_LAZY = {
    **dict.fromkeys(("read_image", "write_image"), "restore.data.image_io"),
    **dict.fromkeys(
        ("rgb2ycbcr", "bgr2ycbcr", "ycbcr2rgb", "ycbcr2bgr", "to_y_channel", "rgb2ycbcr_pt"), "restore.data.color"
    ),
    "tensor_to_uint8": "restore.data.benchmark",
}

__all__ = ["imresize", "modcrop", "round_to_uint8", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'restore.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
