"""ONNX spellings of the project's own graph ops (``custom_translation_table`` of ``torch.onnx.export``).

``restore::packed_attention`` (:func:`restore.ops.window_attention.graph_impl.packed_attention`, heads packed in
the channels) becomes one ``Attention`` operator from opset 23 on, which takes 3-D ``(B, N, h*d)`` inputs with
``q_num_heads`` / ``kv_num_heads`` and splits the heads itself; before opset 23 it is spelled out as reshapes,
transposes, two ``MatMul`` and a ``Softmax``.

``restore::dynamic_depthwise_conv`` (:mod:`restore.ops.dynamic_conv.graph_impl`) becomes one ``Split`` of the
taps per tap set and a ``Slice``, ``Mul`` and ``Add`` per tap, one tap set at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["translation_table"]

_ATTENTION_OPSET = 23


def _attention_op(opset: int) -> Callable[..., Any]:
    import onnxscript

    op = onnxscript.values.Opset("", opset)

    def attention(q: Any, k: Any, v: Any, mask: Any, num_heads: int, scale: float) -> Any:
        return op.Attention(q, k, v, mask, q_num_heads=num_heads, kv_num_heads=num_heads, scale=scale)[0]

    return attention


def _attention_spelled_out(opset: int) -> Callable[..., Any]:
    import onnxscript

    op = onnxscript.values.Opset("", opset)

    def attention(q: Any, k: Any, v: Any, mask: Any, num_heads: int, scale: float) -> Any:
        heads = op.Constant(value_ints=[0, 0, num_heads, -1])  # (B, N, h, d); 0 keeps the input's dimension

        def split(t: Any, perm: list[int]) -> Any:
            return op.Transpose(op.Reshape(t, heads), perm=perm)

        scores = op.MatMul(split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1]))  # (B, h, Nq, Nk)
        scores = op.Add(op.Mul(scores, op.Constant(value_float=scale)), mask)
        out = op.MatMul(op.Softmax(scores, axis=-1), split(v, [0, 2, 1, 3]))  # (B, h, Nq, dv)
        return op.Reshape(op.Transpose(out, perm=[0, 2, 1, 3]), op.Constant(value_ints=[0, 0, -1]))

    return attention


def translation_table(opset: int) -> dict[Callable[..., Any], Callable[..., Any]]:
    """``{torch op: ONNX translation}`` for the project's graph ops at ``opset``."""
    import torch

    import restore.ops.window_attention.graph_impl  # noqa: F401  (registers restore::packed_attention)
    from restore.ops.dynamic_conv import graph_impl as dynamic_conv

    attention = _attention_op if opset >= _ATTENTION_OPSET else _attention_spelled_out
    return {
        torch.ops.restore.packed_attention.default: attention(opset),
        torch.ops.restore.dynamic_depthwise_conv.default: dynamic_conv.onnx_translation(opset),
    }
