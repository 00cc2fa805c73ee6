"""ONNX spellings of the project's own graph ops (``custom_translation_table`` of ``torch.onnx.export``).

``restore::dynamic_depthwise_conv`` (:mod:`restore.ops.dynamic_conv.graph_impl`) becomes one ``Split`` of the
taps per tap set and a ``Slice``, ``Mul`` and ``Add`` per tap, one tap set at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["translation_table"]


def translation_table(opset: int) -> dict[Callable[..., Any], Callable[..., Any]]:
    """``{torch op: ONNX translation}`` for the project's graph ops at ``opset``."""
    import torch

    from restore.ops.dynamic_conv import graph_impl

    return {torch.ops.restore.dynamic_depthwise_conv.default: graph_impl.onnx_translation(opset)}
