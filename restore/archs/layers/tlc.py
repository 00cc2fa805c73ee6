"""Test-time local converter (TLC): run a global operator on overlapping windows and average the results.

Used at inference by DLGSANet's channel attention so that statistics are gathered over windows of the size seen
in training. Windows of ``min(H, K) x min(W, K)`` are placed along each axis at evenly spaced origins, the last
one flush with the border; where windows overlap their outputs are averaged (sum / number of covering windows).

``tlc_apply`` places the windows with Python integers (the reference arithmetic). While ``torch.export`` traces
(ONNX export), ``tlc_apply_traced`` places the same windows from the input's symbolic height and width instead,
so that one graph serves every image size: origins are a tensor, windows are gathered with ``index_select`` and
merged with ``index_add``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["tlc_apply", "tlc_apply_traced", "tlc_membership", "tlc_origins"]


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
    if torch.compiler.is_exporting() and not all(isinstance(size, int) for size in x.shape):
        return tlc_apply_traced(fn, x, kernel)  # symbolic height/width: the grid is computed in the graph
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


def _axis_origins(size: int, kernel: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """``(origins, k)``: the window origins of :func:`tlc_origins` as an int64 tensor and the window length ``k``,
    computed without branching on ``size`` (which may be symbolic while tracing)."""
    k = torch.sym_min(size, kernel)
    count = (size - 1) // k + 1
    span = size - k  # origin of the last window
    step = torch.sym_max((span + count - 2) // torch.sym_max(count - 1, 1), 1)  # ceil(span / (count - 1))
    windows = (span + step - 1) // step + 1
    return torch.clamp_max(torch.arange(windows, device=device) * step, span), k


def _axis_windows(size: int, kernel: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """``(index, k)``: pixel indices of every window along one axis, ``(n * k,)`` int64 (window-major)."""
    origins, k = _axis_origins(size, kernel, device)
    return (origins[:, None] + torch.arange(k, device=device)[None, :]).flatten(), k


def tlc_membership(size: int, kernel: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n, size)`` matrix of the TLC windows along one axis: 1 where pixel ``i`` lies in window ``r``, else 0
    (traceable with a symbolic ``size``)."""
    origins, k = _axis_origins(size, kernel, device)
    pixels = torch.arange(size, device=device)[None, :]
    return ((pixels >= origins[:, None]) & (pixels < origins[:, None] + k)).to(dtype)


def tlc_apply_traced(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kernel: int) -> torch.Tensor:
    """:func:`tlc_apply` for graphs with dynamic height and width: the same windows and average, with the window
    grid derived from the shape of ``x`` inside the graph (equal to ``tlc_apply`` up to the order in which
    overlapping outputs are summed)."""
    batch, channels, height, width = x.shape
    rows, kh = _axis_windows(height, kernel, x.device)
    cols, kw = _axis_windows(width, kernel, x.device)
    n_rows, n_cols = rows.shape[0] // kh, cols.shape[0] // kw
    # rows are gathered as whole image rows, columns after a transpose: both gathers copy contiguous runs
    gathered = x.index_select(2, rows).transpose(2, 3).index_select(2, cols)  # (B, C, n_cols*kw, n_rows*kh)
    windows = gathered.view(batch, channels, n_cols, kw, n_rows, kh).permute(0, 4, 2, 1, 5, 3)
    outs = fn(windows.reshape(batch * n_rows * n_cols, channels, kh, kw))
    out_channels, dtype = outs.shape[1], outs.dtype
    outs = outs.view(batch, n_rows, n_cols, out_channels, kh, kw).permute(0, 3, 2, 5, 1, 4).float()
    outs = outs.reshape(batch, out_channels, n_cols * kw, n_rows * kh)
    zeros = x.new_zeros((), dtype=torch.float32)
    merged = zeros.expand(batch, out_channels, width, n_rows * kh).index_add(2, cols, outs).transpose(2, 3)
    merged = zeros.expand(batch, out_channels, height, width).index_add(2, rows, merged)
    row_count = zeros.expand(height).index_add(0, rows, torch.ones_like(rows, dtype=torch.float32))
    col_count = zeros.expand(width).index_add(0, cols, torch.ones_like(cols, dtype=torch.float32))
    return (merged / (row_count[:, None] * col_count[None, :])).to(dtype)
