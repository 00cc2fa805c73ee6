"""DLGSANet's dynamic depthwise convolution in the form ONNX Runtime's CPU provider runs fastest.

Used only while the network is exported (``torch.compiler.is_exporting()``); the PyTorch path is
``DynamicDepthwiseConv.forward`` (:func:`restore.ops.dynamic_depthwise_conv` of the predicted taps) and stays the
reference. Same function, summed in another order.

The taps are an affine function of the hyper-network's hidden features ``h = conv1(x)`` (R = C // 4 channels):
``conv2`` is one 1x1 convolution, ``taps[g, k, p] = b[g, k] + sum_r W[g, k, r] h[r, p]`` (g: tap set, k: tap, p:
pixel). So the per-pixel convolution is R + 1 static depthwise convolutions of x, weighted per pixel::

    out[c, p] = (D_R x)[c, p] + sum_{r < R} h[r, p] (D_r x)[c, p]

where ``D_r`` filters channel c with ``W[g(c), :, r]`` as a K x K kernel and ``D_R`` with the biases ``b[g(c), :]``.
Why: ONNX has no fused multiply-add and ONNX Runtime runs no op in place or on a view, so the tap-by-tap form
(``restore.ops.dynamic_conv.graph_impl``) costs three full passes per tap and about 1200 nodes per layer (48
channels, 8 tap sets, 7x7). This form is R + 1 convolutions, R products and R sums; the convolutions run in ONNX
Runtime's blocked depthwise kernel, which needs a multiple of :data:`CHANNEL_BLOCK` channels, so other widths are
padded with zero channels (DLGSANet-large: 90 -> 96) and cut back at the end. It does 13x (light) to 23x (large)
the multiply-adds of the tap form, yet one layer runs 2.2-3.5x as fast as the tap form in ONNX Runtime (48
channels, 64x64 to 256x256) and the file no longer holds ``conv2``: ``restore.export.to_onnx`` folds the
rearranged filters into initializers. Half inputs are computed in float32 and rounded once, as the eager path
accumulates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from restore.archs.dlgsanet.arch import DynamicDepthwiseConv

__all__ = ["CHANNEL_BLOCK", "dynamic_conv_export_forward", "static_filters"]

#: Channel multiple of the depthwise convolutions (ONNX Runtime's NCHWc block with AVX-512; AVX2's 8 divides it).
CHANNEL_BLOCK = 16


def static_filters(conv: DynamicDepthwiseConv, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The R + 1 depthwise filter banks of ``conv`` in ``dtype``: ``(R + 1, C_padded, 1, K, K)``, bank R from
    ``conv2``'s bias (zeros without one), rows past C zero (C_padded: C rounded up to :data:`CHANNEL_BLOCK`)."""
    pointwise = conv.conv2[0]
    size, groups = conv.kernel_size, conv.groups
    rank = pointwise.in_channels
    channels = conv.conv1[0].in_channels
    weight = pointwise.weight.to(dtype).view(groups, size * size, rank)
    bias = pointwise.bias
    bias = weight.new_zeros(groups * size * size) if bias is None else bias.to(dtype)
    banks = torch.cat([weight, bias.view(groups, size * size, 1)], dim=2)  # (G, K*K, R + 1)
    banks = banks.permute(2, 0, 1).reshape(rank + 1, groups, 1, 1, size, size)
    banks = banks.expand(rank + 1, groups, channels // groups, 1, size, size).reshape(rank + 1, channels, 1, size, size)
    padded = -(-channels // CHANNEL_BLOCK) * CHANNEL_BLOCK
    return F.pad(banks, (0, 0, 0, 0, 0, 0, 0, padded - channels))


def dynamic_conv_export_forward(conv: DynamicDepthwiseConv, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` in the export form, ``(B, C, H, W) -> (B, C, H, W)``; see the module docstring."""
    channels, dtype = x.shape[1], x.dtype
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    hidden = conv.conv1(x).to(compute)  # (B, R, H, W)
    banks = static_filters(conv, compute)
    rank, padded = banks.shape[0] - 1, banks.shape[1]
    x = F.pad(x.to(compute), (0, 0, 0, 0, 0, padded - channels))
    padding = conv.kernel_size // 2
    out = F.conv2d(x, banks[rank], padding=padding, groups=padded)
    for r, weight in enumerate(hidden.split(1, dim=1)):
        out = out + F.conv2d(x, banks[r], padding=padding, groups=padded) * weight
    return out[:, :channels].to(dtype)
