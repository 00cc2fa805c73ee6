"""Accelerated ops shared by the networks; each is a stateless function of tensors.

Each op lives in a sub-package of the same name (``naive``, ``torch_impl`` and ``triton_impl`` backends); the
functions are imported here so that ``restore.ops.window_attention`` is the function, not its package.
"""

from restore.ops.dynamic_conv import dynamic_depthwise_conv
from restore.ops.grouped_conv import grouped_conv2d
from restore.ops.sparse_channel_attention import sparse_channel_attention
from restore.ops.window_attention import (
    overlapping_window_attention,
    overlapping_window_self_attention,
    window_attention,
    window_self_attention,
)

__all__ = [
    "dynamic_depthwise_conv",
    "grouped_conv2d",
    "overlapping_window_attention",
    "overlapping_window_self_attention",
    "sparse_channel_attention",
    "window_attention",
    "window_self_attention",
]
