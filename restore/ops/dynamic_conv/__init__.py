"""Per-pixel dynamic depthwise convolution (DLGSANet's IDynamicDWConv arithmetic), without CUDA extensions.

For every pixel, every group of C // G channels is filtered with its own K x K taps predicted for that pixel::

    out[b, c, y, x] = sum_{i=0..K-1} sum_{j=0..K-1} weight[b, g(c), i, j, y, x] * x[b, c, y - p + i, x - p + j]
    g(c) = c // (C // G),  p = (K - 1) // 2,  x = 0 outside the image (zero padding)

i.e. a cross-correlation (no kernel flip), stride 1, dilation 1, no bias; the output has the input's size.

Backends (``restore.ops._backend``): ``naive`` (unfold, K^2 memory), ``torch`` (shift-and-accumulate with an
explicit backward; under ``torch.export`` one op that ``restore.export`` writes in the layout ONNX Runtime runs
fastest, see ``graph_impl``), ``triton`` (``triton_impl.dynamic_depthwise_conv``).
"""

from __future__ import annotations

import torch

from restore.ops import _backend
from restore.ops.dynamic_conv import graph_impl, naive, torch_impl

__all__ = ["TOLERANCES", "dynamic_depthwise_conv"]

#: Expected (atol, rtol) of a fast backend against the naive one evaluated in float32, per input dtype.
TOLERANCES = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 2e-2), torch.float16: (2e-3, 2e-3)}


def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """Filter x with per-pixel, per-group K x K taps, tensors in and out (no state).

    Args:
        x: ``(B, C, H, W)`` float tensor.
        weight: ``(B, G, K, K, H, W)`` taps, same dtype and device; C divisible by G; K odd;
            ``weight[b, g, i, j, y, x]`` multiplies ``x[b, c, y - p + i, x - p + j]`` for every c of group g.
        backend: ``"naive"``, ``"torch"``, ``"triton"`` or None (``RESTORE_OPS`` / automatic).

    Returns:
        ``(B, C, H, W)`` in the dtype of x. Differentiable with respect to x and weight.

    Raises:
        ValueError: mismatched shapes or dtypes, even K, or C not divisible by G.
    """
    if x.dim() != 4 or weight.dim() != 6:
        raise ValueError(
            f"dynamic_depthwise_conv: expected x (B, C, H, W) and weight (B, G, K, K, H, W), got "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )
    batch, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    expected = (batch, groups, size, size, height, width)
    if tuple(weight.shape) != expected:
        raise ValueError(f"dynamic_depthwise_conv: weight shape must be {expected} for x {tuple(x.shape)}, got "
                         f"{tuple(weight.shape)}")
    if size % 2 == 0:
        raise ValueError(f"dynamic_depthwise_conv: kernel size K must be odd, got {size}")
    if groups == 0 or channels % groups != 0:
        raise ValueError(f"dynamic_depthwise_conv: channels C={channels} must be divisible by groups G={groups}")
    if x.dtype != weight.dtype:
        raise ValueError(f"dynamic_depthwise_conv: x and weight dtypes differ ({x.dtype} vs {weight.dtype})")
    choice = _backend.resolve("dynamic_depthwise_conv", x, weight, backend=backend)
    if choice == "triton":
        from restore.ops.dynamic_conv import triton_impl

        return triton_impl.dynamic_depthwise_conv(x, weight)
    if choice == "naive":
        return naive.dynamic_depthwise_conv(x, weight)
    if torch.compiler.is_exporting():
        return graph_impl.dynamic_depthwise_conv(x, weight)  # the same sums laid out for graph runtimes
    return torch_impl.dynamic_depthwise_conv(x, weight)
