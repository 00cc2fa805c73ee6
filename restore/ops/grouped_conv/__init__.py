"""Grouped convolution with several input channels and one output channel per group, as in DRSformer's MSFN.

``y[:, o] = sum_j conv(x[:, o*n + j], weight[o, j]) + bias[o]`` for ``o < groups``, ``n = C_in / groups``: a
``groups``-group ``F.conv2d`` whose weight is ``(groups, n, k, k)``.

Backends (``restore.ops._backend``):

* ``naive``: ``F.conv2d(..., groups=groups)``, as the official code calls it.
* ``torch`` / ``triton`` on CPU tensors: one depthwise convolution over all ``C_in`` channels with the weight
  viewed as ``(C_in, 1, k, k)``, then the ``n`` partial maps of each group summed. oneDNN runs depthwise
  convolutions with a vectorised kernel but grouped ones with few channels per group with a generic one, 2-4x
  slower at DRSformer's sizes (``docs/benchmarks.md``). Same products, summed in another order: equal up to float
  rounding. In channels-last memory the sum reads the ``n`` neighbouring channels of each pixel, which are adjacent.
* CUDA tensors keep ``F.conv2d`` (cuDNN), whatever the backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restore.ops import _backend

__all__ = ["grouped_conv2d"]


def _depthwise_then_sum(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    groups, per_group, kh, kw = weight.shape
    partial = F.conv2d(x, weight.reshape(groups * per_group, 1, kh, kw), padding=padding, groups=groups * per_group)
    channels_last = not partial.is_contiguous() and partial.is_contiguous(memory_format=torch.channels_last)
    # (B, H, W, groups, n) in channels-last memory, else (B, groups, n, H, W); the group's n maps are added one by
    # one (a strided add runs 10-20x faster than .sum over a dimension of 2 on the CPU)
    parts = (
        partial.permute(0, 2, 3, 1).unflatten(-1, (groups, per_group))
        if channels_last
        else partial.unflatten(1, (groups, per_group))
    )
    summed = parts.select(-1 if channels_last else 2, 0)
    for index in range(1, per_group):
        summed = summed + parts.select(-1 if channels_last else 2, index)
    if channels_last:
        summed = summed.permute(0, 3, 1, 2)
    return summed if bias is None else summed + bias.view(1, -1, 1, 1)


def grouped_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    padding: int,
    backend: str | None = None,
) -> torch.Tensor:
    """Grouped 2-D convolution, stride 1, ``groups = weight.shape[0]`` (one output channel per group).

    Args:
        x: ``(B, C_in, H, W)``, any memory format; ``C_in = groups * n``.
        weight: ``(groups, n, k, k)``.
        bias: ``(groups,)`` or None.
        padding: zero padding on every side (``k // 2`` keeps the size).
        backend: ``"naive"``, ``"torch"``, ``"triton"`` or None (``RESTORE_OPS`` / automatic).

    Returns:
        ``(B, groups, H', W')`` in the memory format of ``x``.

    Raises:
        ValueError: ``C_in`` is not ``groups * n``.
    """
    groups, per_group = weight.shape[:2]
    if x.shape[1] != groups * per_group:
        raise ValueError(
            f"grouped_conv2d: x has {x.shape[1]} channels, weight {tuple(weight.shape)} expects {groups * per_group}"
        )
    choice = _backend.resolve("grouped_conv2d", x, backend=backend)
    if choice == "naive" or x.is_cuda or per_group == 1:
        return F.conv2d(x, weight, bias, padding=padding, groups=groups)
    return _depthwise_then_sum(x, weight, bias, padding)
