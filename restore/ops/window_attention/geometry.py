"""Window geometry shared by every backend: relative-position indices, shift masks, window partitioning.

Conventions (Swin): an image of ``H x W`` tokens is cut into ``nW = (H/ws) * (W/ws)`` windows of
``N = ws * ws`` tokens. Windows are numbered batch-major, then row-major over the window grid, and tokens
inside a window row-major. A shifted layer first rolls the map by ``(-shift, -shift)``; windows that wrap
around the border then hold tokens from up to four image regions, which the shift mask keeps apart.
"""

from __future__ import annotations

import torch

#: Additive score offset for token pairs from different regions of a shifted window (the official constant).
MASK_VALUE = -100.0


def relative_position_index(window_size: int) -> torch.Tensor:
    """Index into a ``((2ws-1)**2, h)`` bias table for every (query, key) pair of one window.

    Returns:
        int64 tensor ``(N, N)`` with ``N = ws*ws``: ``(dy + ws-1) * (2ws-1) + (dx + ws-1)`` where
        ``(dy, dx)`` is the query position minus the key position.
    """
    ws = window_size
    rows, cols = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()])  # (2, N)
    delta = pos[:, :, None] - pos[:, None, :] + (ws - 1)  # (2, N, N), both components in [0, 2ws-2]
    return delta[0] * (2 * ws - 1) + delta[1]


def overlapping_relative_position_index(window_size: int, overlap_window_size: int) -> torch.Tensor:
    """Index into a ``((ws+ows-1)**2, h)`` bias table for queries of a ``ws`` window and keys of the
    concentric ``ows`` window (HAT's overlapping cross-attention).

    Returns:
        int64 tensor ``(ws*ws, ows*ows)``: ``(dy + ws-ows+1) * (ws+ows-1) + (dx + ws-ows+1)`` where
        ``(dy, dx)`` is the key position (in ``ows`` coordinates) minus the query position (in ``ws`` coordinates).
    """
    ws, ows = window_size, overlap_window_size
    qr, qc = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    kr, kc = torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")
    q_pos = torch.stack([qr.flatten(), qc.flatten()])  # (2, ws*ws)
    k_pos = torch.stack([kr.flatten(), kc.flatten()])  # (2, ows*ows)
    delta = k_pos[:, None, :] - q_pos[:, :, None] + (ws - ows + 1)
    return delta[0] * (ws + ows - 1) + delta[1]


def overlap_window_size(window_size: int, overlap_ratio: float) -> int:
    """Side of HAT's key window: ``int(ws * overlap_ratio) + ws``."""
    return int(window_size * overlap_ratio) + window_size


def _region_labels(length: int, window_size: int, shift_size: int) -> torch.Tensor:
    """Per-coordinate region id (0, 1, 2) along one axis of the rolled map."""
    labels = torch.zeros(length, dtype=torch.int64)
    labels[length - window_size : length - shift_size] = 1
    labels[length - shift_size :] = 2
    return labels


def shift_mask(
    height: int,
    width: int,
    window_size: int,
    shift_size: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Additive attention mask of a shifted window layer (the official ``calculate_mask``).

    Tokens of the rolled map are labelled by the image region they came from (3 x 3 regions: the bulk, the
    band of width ``ws - shift`` and the wrapped band of width ``shift`` along each axis); pairs with different
    labels get ``MASK_VALUE``. With ``shift_size == 0`` every label is equal and the mask is all zeros.

    Returns:
        ``(nW, N, N)`` tensor in ``dtype`` on ``device``, windows in partition order; values 0 or -100.
    """
    if shift_size == 0:
        n = window_size * window_size
        return torch.zeros((height // window_size) * (width // window_size), n, n, dtype=dtype, device=device)
    labels = (
        _region_labels(height, window_size, shift_size)[:, None] * 3
        + _region_labels(width, window_size, shift_size)[None, :]
    )
    windows = window_partition(labels[None, :, :, None], window_size).reshape(-1, window_size * window_size)
    different = windows[:, None, :] != windows[:, :, None]
    mask = torch.zeros(different.shape, dtype=dtype)
    mask.masked_fill_(different, MASK_VALUE)
    return mask.to(device)


def boundary_windows(height: int, width: int, window_size: int) -> torch.Tensor:
    """Boolean ``(nW,)``: windows of the last window row or column, the only ones a shift mask touches."""
    rows, cols = height // window_size, width // window_size
    grid = torch.zeros(rows, cols, dtype=torch.bool)
    grid[-1, :] = True
    grid[:, -1] = True
    return grid.flatten()


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> contiguous ``(B*nW, ws, ws, C)`` windows, batch-major then row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``window_partition``: ``(B*nW, ws, ws, C)`` -> contiguous ``(B, H, W, C)``."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((height // window_size) * (width // window_size))
    x = windows.view(b, height // window_size, width // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, height, width, c)
