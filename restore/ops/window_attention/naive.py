"""Reference backend: the official HAT / DRCT arithmetic step by step (oracle for tests, baseline for benches).

Scores are materialised, the relative-position bias and the -100 shift mask are added, softmax, then ``@ V``,
exactly as the official ``WindowAttention`` / ``OCAB`` forward passes do. The only change is that masks are
built in the compute dtype, so bf16 inputs stay bf16.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from restore.ops.window_attention.geometry import shift_mask, window_partition, window_reverse


@functools.lru_cache(maxsize=32)
def _shift_mask(
    height: int, width: int, window_size: int, shift_size: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``shift_mask`` built once per size (the official blocks keep theirs as a buffer), so that the baseline
    does not pay for rebuilding it."""
    return shift_mask(height, width, window_size, shift_size, dtype=dtype, device=device)


def _split_heads(windows: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(b, n, C)`` -> ``(b, h, n, d)``."""
    b, n, c = windows.shape
    return windows.reshape(b, n, num_heads, c // num_heads).permute(0, 2, 1, 3)


def _gather_bias(rpb_table: torch.Tensor, rp_index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Table rows picked by ``rp_index`` -> ``(h, Nq, Nk)``."""
    nq, nk = rp_index.shape
    bias = rpb_table[rp_index.reshape(-1)].view(nq, nk, -1)
    return bias.permute(2, 0, 1).contiguous().to(dtype)


def _to_windows(x: torch.Tensor, window_size: int, shift_size: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B*nW, N, C)``: roll by ``-shift_size`` (if any), then window partition."""
    if shift_size > 0:
        x = torch.roll(x, shifts=(-shift_size, -shift_size), dims=(1, 2))
    return window_partition(x, window_size).view(-1, window_size * window_size, x.shape[-1])


def _from_windows(windows: torch.Tensor, window_size: int, height: int, width: int, shift_size: int) -> torch.Tensor:
    """Inverse of ``_to_windows``: ``(B*nW, N, C)`` -> ``(B, H, W, C)``, window reverse then roll back."""
    ws = window_size
    out = window_reverse(windows.view(-1, ws, ws, windows.shape[-1]), ws, height, width)
    if shift_size > 0:
        out = torch.roll(out, shifts=(shift_size, shift_size), dims=(1, 2))
    return out


def _attend(
    qw: torch.Tensor,
    kw: torch.Tensor,
    vw: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dropout_p: float,
) -> torch.Tensor:
    """Official attention core on windows: ``(b, h, N, d)`` queries, ``(b, h, M, d)`` keys/values, bias
    ``(h, N, M)``, optional mask ``(nW, N, M)`` (windows of one image) -> ``(b, N, h*d)``."""
    b, heads, n, d = qw.shape
    attn = (qw * scale) @ kw.transpose(-2, -1)
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(-1, nw, heads, n, attn.shape[-1]) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(b, heads, n, -1)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return (attn @ vw).transpose(1, 2).reshape(b, n, heads * d)


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
) -> torch.Tensor:
    """Shifted-window self-attention, official order of operations. Shapes as in the public function."""
    _, h, w, _ = q.shape
    qw, kw, vw = (_split_heads(_to_windows(t, window_size, shift_size), num_heads) for t in (q, k, v))
    bias = _gather_bias(rpb_table, rp_index, q.dtype)
    mask = _shift_mask(h, w, window_size, shift_size, q.dtype, q.device) if shift_size > 0 else None
    out = _attend(qw, kw, vw, bias, mask, scale, dropout_p)
    return _from_windows(out, window_size, h, w, shift_size)


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
) -> torch.Tensor:
    """HAT's overlapping cross-attention (queries from ``ws`` windows, keys/values from zero-padded ``ows``
    windows taken with ``nn.Unfold``), official order of operations. Shapes as in the public function."""
    b, h, w, c = q.shape
    ws, ows = window_size, overlap_window_size
    pad = (ows - ws) // 2

    qw = _split_heads(_to_windows(q, ws, 0), num_heads)
    kv = torch.cat((k.permute(0, 3, 1, 2), v.permute(0, 3, 1, 2)), dim=1)  # (B, 2C, H, W)
    cols = F.unfold(kv, kernel_size=(ows, ows), stride=ws, padding=pad)  # (B, 2C*ows*ows, nW)
    nw = cols.shape[-1]
    # 'b (kv c oy ox) nw -> kv (b nw) (oy ox) c'
    cols = cols.view(b, 2, c, ows * ows, nw).permute(1, 0, 4, 3, 2).reshape(2, b * nw, ows * ows, c)
    kw, vw = _split_heads(cols[0], num_heads), _split_heads(cols[1], num_heads)

    out = _attend(qw, kw, vw, _gather_bias(rpb_table, rp_index, q.dtype), None, scale, dropout_p)
    return _from_windows(out, ws, h, w, 0)


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
) -> torch.Tensor:
    """The official Swin block's attention path: roll, partition, ``qkv`` per window, attention, ``proj``,
    reverse, roll back. Shapes as in the public function."""
    _, h, w, _ = x.shape
    windows = _to_windows(x, window_size, shift_size)
    b, n, _ = windows.shape
    c = qkv_weight.shape[0] // 3
    qkv = F.linear(windows, qkv_weight, qkv_bias).reshape(b, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
    bias = _gather_bias(rpb_table, rp_index, x.dtype)
    mask = _shift_mask(h, w, window_size, shift_size, x.dtype, x.device) if shift_size > 0 else None
    out = F.linear(_attend(qkv[0], qkv[1], qkv[2], bias, mask, scale, dropout_p), proj_weight, proj_bias)
    return _from_windows(out, window_size, h, w, shift_size)


def overlapping_window_self_attention(
    x: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    proj_weight: torch.Tensor,
    proj_bias: torch.Tensor | None,
    **kwargs: object,
) -> torch.Tensor:
    """The official OCAB attention path: ``qkv`` over the whole map, overlapping cross-attention, ``proj``.
    Keyword arguments and shapes as in the public function."""
    q, k, v = F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
    return F.linear(overlapping_window_attention(q, k, v, **kwargs), proj_weight, proj_bias)
