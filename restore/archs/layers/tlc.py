"""Test-time local converter (TLC): run a global operator on overlapping windows and average the results.

Used at inference by DLGSANet's channel attention so that statistics are gathered over windows of the size seen
in training. Windows of ``min(H, K) x min(W, K)`` are placed along each axis at evenly spaced origins, the last
one flush with the border; where windows overlap their outputs are averaged (sum / number of covering windows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["tlc_apply", "tlc_origins"]


def tlc_origins(size: int, kernel: int) -> list[int]:
    """Window origins along one axis of length ``size`` for windows of ``min(size, kernel)``.

    ``n = ceil(size / k)`` windows, step ``ceil((size - k) / (n - 1))`` (k itself when n == 1); origins
    ``0, step, 2 step, ...`` while the window ends before the border, then ``size - k``.
    E.g. (64, 48) -> [0, 16]; (39, 16) -> [0, 12, 23]; (70, 20) -> [0, 17, 34, 50]; size <= kernel -> [0].
    """
    k = min(size, kernel)
    count = (size - 1) // k + 1
    step = k if count == 1 else math.ceil((size - k) / (count - 1) - 1e-8)
    origins = list(range(0, size - k, step))
    return [*origins, size - k]


def tlc_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Apply ``fn`` to the TLC windows of ``x`` (as one batch) and merge the results by averaging.

    Args:
        fn: maps ``(N, C, h, w) -> (N, C_out, h, w)``, treating every item independently.
        x: ``(B, C, H, W)``; any batch size (windows of all images are batched together).
        kernel: the TLC window size K.

    Returns:
        ``(B, C_out, H, W)`` in the dtype of ``fn``'s output; overlaps summed in float32 (row-major window
        order) and divided by their coverage count.
    """
    batch, _, height, width = x.shape
    rows, cols = tlc_origins(height, kernel), tlc_origins(width, kernel)
    if len(rows) == 1 and len(cols) == 1:
        return fn(x)
    kh, kw = min(height, kernel), min(width, kernel)
    windows = [x[:, :, i : i + kh, j : j + kw] for i in rows for j in cols]
    outs = fn(torch.stack(windows, dim=1).flatten(0, 1))
    outs = outs.unflatten(0, (batch, len(windows)))
    merged = torch.zeros(batch, outs.shape[2], height, width, dtype=torch.float32, device=x.device)
    row_count = torch.zeros(height, dtype=torch.float32, device=x.device)
    col_count = torch.zeros(width, dtype=torch.float32, device=x.device)
    for index, (i, j) in enumerate((i, j) for i in rows for j in cols):
        merged[:, :, i : i + kh, j : j + kw] += outs[:, index]
    for i in rows:
        row_count[i : i + kh] += 1
    for j in cols:
        col_count[j : j + kw] += 1
    return (merged / (row_count[:, None] * col_count[None, :])).to(outs.dtype)
