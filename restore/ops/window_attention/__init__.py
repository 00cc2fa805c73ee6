"""Window attention shared by HAT and DRCT: (shifted) window self-attention and overlapping cross-attention.

Two levels. The attention cores take image-layout query/key/value maps and return one, before the output
projection::

    q, k, v = linear(norm(x), qkv_weight, qkv_bias).chunk(3, dim=-1)      # (B, H, W, C) each (views are fine)
    y = window_attention(q, k, v, num_heads=h, window_size=ws, shift_size=s,
                         rpb_table=table, rp_index=index, scale=d ** -0.5)

The projection of queries/keys/values is per token, so it commutes with the cyclic shift and the window
partition; both happen inside the op (a fused kernel can turn them into index arithmetic). The sub-layer ops
``window_self_attention`` / ``overlapping_window_self_attention`` take the normalised map and both projections'
weights, so that the ``naive`` backend can follow the official module step by step while the others run one
aligned projection GEMM in image order::

    x = x + window_self_attention(norm(x), qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads=h, ...)

Notation: B batch, H x W tokens, C channels, h heads, d = C / h head dim, ws window side, N = ws*ws tokens per
window, nW = (H/ws) * (W/ws) windows per image, ows overlapping key window side, M = ows*ows.

Backends (``restore.ops._backend.resolve``): ``naive`` (official arithmetic, materialised scores), ``torch``
(SDPA, grouped shift masks), ``triton`` (``restore.ops.window_attention.triton_impl``; it receives exactly the
keyword arguments of the public function except ``backend``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restore.ops import _backend
from restore.ops.window_attention import graph_impl, naive, torch_impl
from restore.ops.window_attention.geometry import (
    MASK_VALUE,
    overlap_window_size,
    overlapping_relative_position_index,
    relative_position_index,
    shift_mask,
)
from restore.ops.window_attention.projection import project_qkv

__all__ = [
    "MASK_VALUE",
    "TOLERANCES",
    "overlap_window_size",
    "overlapping_relative_position_index",
    "overlapping_window_attention",
    "overlapping_window_self_attention",
    "relative_position_index",
    "shift_mask",
    "window_attention",
    "window_self_attention",
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
    _check_grid(name, q.shape, num_heads, ws)


def _check_grid(name: str, shape: torch.Size, num_heads: int, ws: int) -> None:
    """``shape = (B, H, W, C)``: ``H``, ``W`` multiples of ``ws`` and ``C`` divisible by ``num_heads``."""
    _, h, w, c = shape
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
    kwargs = _window_kwargs(name, num_heads, window_size, shift_size, rpb_table, rp_index, scale, dropout_p)
    return _dispatch(name, q, k, v, backend, kwargs)


def _window_kwargs(
    name: str,
    num_heads: int,
    window_size: int,
    shift_size: int,
    rpb_table: torch.Tensor,
    rp_index: torch.Tensor,
    scale: float,
    dropout_p: float,
) -> dict:
    """Validated keyword arguments of ``window_attention`` (those every backend receives)."""
    if not 0 <= shift_size < window_size:
        raise ValueError(f"{name}: shift_size must be in [0, window_size={window_size}), got {shift_size}")
    _check_table(name, rpb_table, (2 * window_size - 1) ** 2, num_heads)
    n = window_size * window_size
    _check_index(name, rp_index, (n, n))
    return dict(
        num_heads=num_heads,
        window_size=window_size,
        shift_size=shift_size,
        rpb_table=rpb_table,
        rp_index=rp_index,
        scale=scale,
        dropout_p=dropout_p,
    )


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
    kwargs = _overlap_kwargs(
        name, num_heads, window_size, overlap_window_size, rpb_table, rp_index, scale, dropout_p
    )
    return _dispatch(name, q, k, v, backend, kwargs)


def _overlap_kwargs(
    name: str,
    num_heads: int,
    window_size: int,
    overlap_window_size: int,
    rpb_table: torch.Tensor,
    rp_index: torch.Tensor,
    scale: float,
    dropout_p: float,
) -> dict:
    """Validated keyword arguments of ``overlapping_window_attention`` (those every backend receives)."""
    ows = overlap_window_size
    if ows < window_size or (ows - window_size) % 2 != 0:
        raise ValueError(f"{name}: overlap_window_size - window_size must be even and >= 0, got {ows} - {window_size}")
    _check_table(name, rpb_table, (window_size + ows - 1) ** 2, num_heads)
    _check_index(name, rp_index, (window_size * window_size, ows * ows))
    return dict(
        num_heads=num_heads,
        window_size=window_size,
        overlap_window_size=ows,
        rpb_table=rpb_table,
        rp_index=rp_index,
        scale=scale,
        dropout_p=dropout_p,
    )


# ----------------------------------------------------------------------------------------------------------------
# The whole attention sub-layer: qkv projection -> window attention -> output projection.

def _check_projections(
    name: str,
    x: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
    num_heads: int,
    ws: int,
) -> None:
    """Validate the projection tensors and the ``(B, H, W, C)`` map the attention core will see."""
    if x.dim() != 4:
        raise ValueError(f"{name}: x must be a (B, H, W, C_in) token map, got shape {tuple(x.shape)}")
    c_in = x.shape[-1]
    if qkv_weight.dim() != 2 or qkv_weight.shape[1] != c_in or qkv_weight.shape[0] % 3 != 0:
        raise ValueError(f"{name}: qkv_weight expected (3C, {c_in}), got {tuple(qkv_weight.shape)}")
    c = qkv_weight.shape[0] // 3
    if qkv_bias is not None and tuple(qkv_bias.shape) != (3 * c,):
        raise ValueError(f"{name}: qkv_bias expected ({3 * c},), got {tuple(qkv_bias.shape)}")
    if proj_weight.dim() != 2 or proj_weight.shape[1] != c:
        raise ValueError(f"{name}: proj_weight expected (C_out, {c}), got {tuple(proj_weight.shape)}")
    if proj_bias is not None and tuple(proj_bias.shape) != (proj_weight.shape[0],):
        raise ValueError(f"{name}: proj_bias expected ({proj_weight.shape[0]},), got {tuple(proj_bias.shape)}")
    _check_grid(name, torch.Size((*x.shape[:3], c)), num_heads, ws)


def _projected(
    name: str,
    core: str,
    x: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None],
    backend: str | None,
    kwargs: dict,
) -> torch.Tensor:
    """Run ``proj(core(qkv(x)))`` on the resolved backend: ``naive`` in the official order of operations, the
    others as one aligned ``qkv`` GEMM in image order, the core op ``core`` (arguments already validated) on its
    slices, then ``proj``."""
    chosen = _backend.resolve(name, x, backend=backend)
    if chosen == "naive":
        return getattr(naive, name)(x, *weights, **kwargs)
    if chosen == "torch" and torch.compiler.is_exporting():
        return getattr(graph_impl, name)(x, *weights, **kwargs)  # the same arithmetic laid out for graph runtimes
    qkv_weight, qkv_bias, proj_weight, proj_bias = weights
    q, k, v = project_qkv(x, qkv_weight, qkv_bias)
    return F.linear(_dispatch(core, q, k, v, chosen, kwargs), proj_weight, proj_bias)


def window_self_attention(
    x: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
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
    """The attention sub-layer of a Swin / HAT / DRCT block: ``proj(window_attention(*qkv(x).chunk(3, -1)))``.

    The ``naive`` backend follows the official module literally (roll, window partition, ``qkv`` on the
    windows, attention, ``proj``, window reverse, roll back). The others project in image order with one
    aligned GEMM (``projection.project_qkv``) and let ``window_attention`` gather the windows.

    Args:
        x: ``(B, H, W, C_in)`` (normalised) token map; ``H``, ``W`` multiples of ``window_size``.
        qkv_weight, qkv_bias: ``(3C, C_in)`` and ``(3C,)`` or ``None`` (``nn.Linear`` layout, rows ``q|k|v``).
        proj_weight, proj_bias: ``(C_out, C)`` and ``(C_out,)`` or ``None``.
        num_heads, window_size, shift_size, rpb_table, rp_index, scale, dropout_p, backend: as in
            ``window_attention`` (``dropout_p`` acts on the attention probabilities only).

    Returns:
        ``(B, H, W, C_out)`` in image order, dtype of ``x``.
    """
    name = "window_self_attention"
    _check_projections(name, x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads, window_size)
    kwargs = _window_kwargs(name, num_heads, window_size, shift_size, rpb_table, rp_index, scale, dropout_p)
    return _projected(name, "window_attention", x, (qkv_weight, qkv_bias, proj_weight, proj_bias), backend, kwargs)


def overlapping_window_self_attention(
    x: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
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
    """HAT's OCA sub-layer: ``proj(overlapping_window_attention(*qkv(x).chunk(3, -1)))``.

    Args:
        x, qkv_weight, qkv_bias, proj_weight, proj_bias: as in ``window_self_attention``.
        num_heads, window_size, overlap_window_size, rpb_table, rp_index, scale, dropout_p, backend: as in
            ``overlapping_window_attention``.

    Returns:
        ``(B, H, W, C_out)``, dtype of ``x``.
    """
    name = "overlapping_window_self_attention"
    _check_projections(name, x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads, window_size)
    kwargs = _overlap_kwargs(
        name, num_heads, window_size, overlap_window_size, rpb_table, rp_index, scale, dropout_p
    )
    return _projected(
        name, "overlapping_window_attention", x, (qkv_weight, qkv_bias, proj_weight, proj_bias), backend, kwargs
    )
