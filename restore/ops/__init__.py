"""Accelerated ops shared by the networks; each is a stateless function of tensors.

The public functions are imported lazily, so ``import restore.ops`` costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "window_attention": "restore.ops.window_attention",
    "overlapping_window_attention": "restore.ops.window_attention",
    "sparse_channel_attention": "restore.ops.sparse_channel_attention",
    "dynamic_depthwise_conv": "restore.ops.dynamic_conv",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'restore.ops' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
