"""The dynamic depthwise convolution as traced for an exported graph (``torch.compiler.is_exporting()``).

Under ``torch.export`` the ``torch`` backend traces one op, ``restore::dynamic_depthwise_conv`` (its eager body is
:func:`.torch_impl._forward`, so an exported program runs the reference arithmetic), and ``restore.export`` writes
it as ONNX with :func:`onnx_translation`: one ``Split`` of the G*K*K taps, then per tap set (group of C // G
channels) and tap a ``Slice`` of the padded input, a ``Mul`` by the tap (broadcast over the group's channels) and an
``Add``, kh-major then kw like the eager loop; the groups are concatenated. Why ONNX Runtime needs this layout:

* ONNX has no fused multiply-add and ONNX Runtime runs no op in place or on a view, so every tap costs three
  full passes (copy the shifted input, multiply, add) where PyTorch's ``addcmul_`` makes one.
* Over all channels at once, a tap's tensors (48 channels at 64 x 64: 786 KB each, four of them live) overflow a
  core's L2 cache and the 49 taps run at cache-miss speed; one tap set at a time (6 channels: 98 KB) they stay
  cached. One layer (48 channels, 8 tap sets, 7 x 7) in ONNX Runtime, one thread: 0.76x the time of the
  all-channel loop at 64 x 64, 0.56x at 128 x 128 (``docs/benchmarks.md``).
* The taps are cut by one ``Split`` (one copy of the weights) instead of a ``Gather`` and ``Unsqueeze`` per tap,
  the shifted window is one two-axis ``Slice``, and the first product starts the sum instead of a zero tensor.
* Traced through ``torch.export`` the same loop is about 1200 ops per layer, each traced with symbolic sizes:
  an export of DLGSANet-light took 542 s instead of 158 s (same load). As one op with a translation it exports
  faster than the eager loop did (44-78 s).

DLGSANet's own layer does not reach this op in an export: its taps are an affine function of the hyper-network's
hidden features, so ``restore.archs.dlgsanet.dynamic_conv_export`` writes it as static depthwise convolutions
weighted per pixel (2.2-3.5x faster in ONNX Runtime). This translation serves networks that call the op with taps
of any other origin.

Products are rounded before they are added (no fused multiply-add), so the result can differ from the eager
path in the last bits; half inputs are widened to float32 once, as ``addcmul_`` does per tap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from restore.ops.dynamic_conv.torch_impl import _forward

__all__ = ["dynamic_depthwise_conv", "onnx_translation"]


@torch.library.custom_op("restore::dynamic_depthwise_conv", mutates_args=())
def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` filtered with per-pixel taps ``weight`` ``(B, G, K, K, H, W)``; arguments validated by
    :func:`restore.ops.dynamic_depthwise_conv`. Runs :func:`.torch_impl._forward`; not differentiable."""
    return _forward(x, weight)


@dynamic_depthwise_conv.register_fake
def _dynamic_depthwise_conv_shape(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape)


def onnx_translation(opset: int) -> Callable[..., Any]:
    """The ONNX graph of ``restore::dynamic_depthwise_conv`` at ``opset`` (18 and up), an onnxscript function of
    the traced ``x`` and ``weight``; height and width may be symbolic, B, C, G and K are not."""
    import onnxscript
    from onnxscript import ir

    op = onnxscript.values.Opset("", opset)

    def ints(*values: int) -> Any:
        return op.Constant(value_ints=list(values))

    def split(value: Any, axis: int, parts: int) -> list[Any]:
        return [value] if parts == 1 else list(op.Split(value, axis=axis, num_outputs=parts))

    def translation(x: Any, weight: Any) -> Any:
        channels, groups, size = x.shape[1], weight.shape[1], weight.shape[2]
        pad = (size - 1) // 2
        dtype = x.dtype
        if dtype != ir.DataType.FLOAT:  # half inputs: widened once, as the eager path accumulates in float32
            x, weight = op.Cast(x, to=ir.DataType.FLOAT), op.Cast(weight, to=ir.DataType.FLOAT)
        height, width = op.Shape(x, start=2, end=3), op.Shape(x, start=3, end=4)
        padded = op.Pad(x, ints(0, 0, pad, pad, 0, 0, pad, pad))  # (B, C, H + 2p, W + 2p)
        padded = op.Reshape(padded, op.Concat(ints(0, groups, channels // groups), op.Shape(padded, start=2),
                                              axis=0))  # fmt: skip
        taps = op.Reshape(weight, op.Concat(ints(0, groups * size * size, 1), height, width, axis=0))
        taps = split(taps, 1, groups * size * size)  # (B, 1, 1, H, W) each, group-major then kh, kw
        rows, cols = [op.Add(height, ints(i)) for i in range(size)], [op.Add(width, ints(j)) for j in range(size)]
        ends = [[op.Concat(row, col, axis=0) for col in cols] for row in rows]  # ends of the tap's window
        outs = []
        for g, group in enumerate(split(padded, 1, groups)):
            out = None
            for index, tap in enumerate(taps[g * size * size : (g + 1) * size * size]):
                i, j = divmod(index, size)
                term = op.Mul(op.Slice(group, ints(i, j), ends[i][j], ints(3, 4)), tap)
                out = term if out is None else op.Add(out, term)
            outs.append(out)
        out = op.Reshape(outs[0] if groups == 1 else op.Concat(*outs, axis=1), op.Shape(x))
        return out if dtype == ir.DataType.FLOAT else op.Cast(out, to=dtype)

    return translation
