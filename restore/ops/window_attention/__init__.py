"""Window attention shared by HAT and DRCT: (shifted) window self-attention and overlapping cross-attention.

Both functions take image-layout token maps and return one, before the output projection::

    qkv = linear(norm(x))                        # (B, H, W, 3C), per token
    q, k, v = qkv.chunk(3, dim=-1)               # (B, H, W, C) each (views are fine)
    y = window_attention(q, k, v, num_heads=h, window_size=ws, shift_size=s,
                         rpb_table=table, rp_index=index, scale=d ** -0.5)
    x = x + proj(y)

The projection of queries/keys/values is per token, so it commutes with the cyclic shift and the window
partition; both happen inside the op (a fused kernel can turn them into index arithmetic).

Notation: B batch, H x W tokens, C channels, h heads, d = C / h head dim, ws window side, N = ws*ws tokens per
window, nW = (H/ws) * (W/ws) windows per image, ows overlapping key window side, M = ows*ows.

Backends (``restore.ops._backend.resolve``): ``naive`` (official arithmetic, materialised scores), ``torch``
(SDPA, grouped shift masks), ``triton`` (``restore.ops.window_attention.triton_impl``; it receives exactly the
keyword arguments of the public function except ``backend``).
"""

from __future__ import annotations

import torch

from restore.ops import _backend
from restore.ops.window_attention import naive, torch_impl
from restore.ops.window_attention.geometry import (
    MASK_VALUE,
    overlap_window_size,
    overlapping_relative_position_index,
    relative_position_index,
    shift_mask,
)

__all__ = [
    "MASK_VALUE",
    "TOLERANCES",
    "overlap_window_size",
    "overlapping_relative_position_index",
    "overlapping_window_attention",
    "relative_position_index",
    "shift_mask",
    "window_attention",
]

#: Per-dtype ``(atol, rtol)`` between any backend and the float64 naive result, for unit-scale inputs.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-8),
    torch.float32: (2e-5, 1e-5),
    torch.bfloat16: (3e-2, 2e-2),
    torch.float16: (5e-3, 5e-3),
}


def _check_common(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, ws: int) -> None:
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"{name}: q, k, v must share one (B, H, W, C) shape, got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"{name}: q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    _, h, w, c = q.shape
    if c % num_heads != 0:
        raise ValueError(f"{name}: channels C={c} must be divisible by num_heads={num_heads}")
    if ws <= 0 or h % ws != 0 or w % ws != 0:
        raise ValueError(f"{name}: H x W = {h} x {w} must be multiples of window_size={ws}")


def _check_table(name: str, rpb_table: torch.Tensor, rows: int, num_heads: int) -> None:
    if tuple(rpb_table.shape) != (rows, num_heads):
        raise ValueError(f"{name}: rpb_table shape expected {(rows, num_heads)}, got {tuple(rpb_table.shape)}")


def _check_index(name: str, rp_index: torch.Tensor, shape: tuple[int, int]) -> None:
    if tuple(rp_index.shape) != shape or rp_index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name}: rp_index expected int64 {shape}, got {rp_index.dtype} {tuple(rp_index.shape)}")


def _dispatch(
    name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str | None, kwargs: dict
) -> torch.Tensor:
    """Run op ``name`` on the resolved backend; Triton is imported only when chosen."""
    chosen = _backend.resolve(name, q, backend=backend)
    if chosen == "triton":
        from restore.ops.window_attention import triton_impl as module
    else:
        module = naive if chosen == "naive" else torch_impl
    return getattr(module, name)(q, k, v, **kwargs)


def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    num_heads: int,
    window_size: int,
    shift_size: int = 0,
    rpb_table: torch.Tensor,
    rp_index: torch.Tensor,
    scale: float,
    dropout_p: float = 0.0,
    backend: str | None = None,
) -> torch.Tensor:
    """(Shifted) window multi-head self-attention with a relative-position bias (Swin / HAT / DRCT).

    Computes, for every window of the map rolled by ``(-shift_size, -shift_size)``::

        out = softmax(scale * q @ k^T + rpb_table[rp_index].permute(2, 0, 1) + mask) @ v

    per head, then puts the windows back and rolls by ``(+shift_size, +shift_size)``. ``mask`` is the
    official shift mask (``-100`` between tokens from different image regions, see ``shift_mask``) when
    ``shift_size > 0`` and zero otherwise.

    Args:
        q, k, v: ``(B, H, W, C)`` token maps, same dtype (float32 / bfloat16 / float16 / float64) and device;
            any strides (e.g. channel slices of one ``(B, H, W, 3C)`` tensor). ``H`` and ``W`` must be
            multiples of ``window_size``; ``C`` is split into ``num_heads`` heads of ``d = C / num_heads``
            channels (any ``d``, odd ones included).
        num_heads: ``h``.
        window_size: ``ws``; windows hold ``N = ws*ws`` tokens.
        shift_size: cyclic shift, ``0 <= shift_size < ws``.
        rpb_table: ``((2ws-1)**2, h)`` learnable bias table (any float dtype; cast to the compute dtype).
        rp_index: ``(N, N)`` int64 index into the table rows (``relative_position_index(ws)``); a negative
            entry selects row ``idx % table_rows`` (Python indexing).
        scale: multiplier of ``q @ k^T`` (``qk_scale or d ** -0.5`` in the official code).
        dropout_p: dropout on the attention probabilities (pass 0 in eval mode).
        backend: ``'naive'``, ``'torch'``, ``'triton'`` or ``None`` (``RESTORE_OPS`` / auto).

    Returns:
        ``(B, H, W, C)`` contiguous, dtype of ``q``, in image order (shift undone), before the projection.
    """
    name = "window_attention"
    _check_common(name, q, k, v, num_heads, window_size)
    if not 0 <= shift_size < window_size:
        raise ValueError(f"{name}: shift_size must be in [0, window_size={window_size}), got {shift_size}")
    _check_table(name, rpb_table, (2 * window_size - 1) ** 2, num_heads)
    n = window_size * window_size
    _check_index(name, rp_index, (n, n))
    kwargs = dict(
        num_heads=num_heads,
        window_size=window_size,
        shift_size=shift_size,
        rpb_table=rpb_table,
        rp_index=rp_index,
        scale=scale,
        dropout_p=dropout_p,
    )
    return _dispatch(name, q, k, v, backend, kwargs)


def overlapping_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    num_heads: int,
    window_size: int,
    overlap_window_size: int,
    rpb_table: torch.Tensor,
    rp_index: torch.Tensor,
    scale: float,
    dropout_p: float = 0.0,
    backend: str | None = None,
) -> torch.Tensor:
    """HAT's overlapping cross-attention (OCA): ``ws`` query windows attend to ``ows`` key windows.

    The query window at window-grid position ``(i, j)`` covers pixels ``[i*ws, (i+1)*ws) x [j*ws, (j+1)*ws)``;
    its key/value window is the concentric ``ows x ows`` square ``[i*ws - p, i*ws - p + ows)`` (same for
    columns), ``p = (ows - ws) / 2``, with zeros outside the image (``nn.Unfold`` with zero padding, applied to
    the already projected keys/values, so padded keys are exactly 0 and contribute ``exp(bias)`` weight to a
    zero value). Per head::

        out = softmax(scale * q_win @ k_win^T + rpb_table[rp_index].permute(2, 0, 1)) @ v_win   # no mask

    Args:
        q, k, v: ``(B, H, W, C)`` token maps as in ``window_attention`` (``H``, ``W`` multiples of ``ws``).
        num_heads: ``h``.
        window_size: ``ws`` (query windows of ``N = ws*ws`` tokens).
        overlap_window_size: ``ows = int(ws * overlap_ratio) + ws``; ``ows - ws`` must be even and >= 0.
        rpb_table: ``((ws+ows-1)**2, h)`` learnable bias table.
        rp_index: ``(N, M)`` int64, ``M = ows*ows`` (``overlapping_relative_position_index(ws, ows)``). The
            official index holds negative entries; like Python indexing they select row ``idx % table_rows``.
        scale: multiplier of ``q @ k^T``.
        dropout_p: dropout on the attention probabilities (0 in eval mode).
        backend: as in ``window_attention``.

    Returns:
        ``(B, H, W, C)`` contiguous, dtype of ``q``, before the projection.
    """
    name = "overlapping_window_attention"
    _check_common(name, q, k, v, num_heads, window_size)
    ows = overlap_window_size
    if ows < window_size or (ows - window_size) % 2 != 0:
        raise ValueError(f"{name}: overlap_window_size - window_size must be even and >= 0, got {ows} - {window_size}")
    _check_table(name, rpb_table, (window_size + ows - 1) ** 2, num_heads)
    _check_index(name, rp_index, (window_size * window_size, ows * ows))
    kwargs = dict(
        num_heads=num_heads,
        window_size=window_size,
        overlap_window_size=ows,
        rpb_table=rpb_table,
        rp_index=rp_index,
        scale=scale,
        dropout_p=dropout_p,
    )
    return _dispatch(name, q, k, v, backend, kwargs)
