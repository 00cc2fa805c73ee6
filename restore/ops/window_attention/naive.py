"""Reference backend: the official HAT / DRCT arithmetic step by step (oracle for tests, baseline for benches).

Scores are materialised, the relative-position bias and the -100 shift mask are added, softmax, then ``@ V``,
exactly as the official ``WindowAttention`` / ``OCAB`` forward passes do. The only change is that masks are
built in the compute dtype, so bf16 inputs stay bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restore.ops.window_attention.geometry import shift_mask, window_partition, window_reverse


def _split_heads(windows: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(b, n, C)`` -> ``(b, h, n, d)``."""
    b, n, c = windows.shape
    return windows.reshape(b, n, num_heads, c // num_heads).permute(0, 2, 1, 3)


def _gather_bias(rpb_table: torch.Tensor, rp_index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Table rows picked by ``rp_index`` -> ``(h, Nq, Nk)``."""
    nq, nk = rp_index.shape
    bias = rpb_table[rp_index.reshape(-1)].view(nq, nk, -1)
    return bias.permute(2, 0, 1).contiguous().to(dtype)


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
    _, h, w, c = q.shape
    ws = window_size
    n = ws * ws

    def to_windows(x: torch.Tensor) -> torch.Tensor:
        if shift_size > 0:
            x = torch.roll(x, shifts=(-shift_size, -shift_size), dims=(1, 2))
        return _split_heads(window_partition(x, ws).view(-1, n, c), num_heads)

    qw, kw, vw = to_windows(q), to_windows(k), to_windows(v)  # (B*nW, h, N, d)
    qw = qw * scale
    attn = qw @ kw.transpose(-2, -1)
    attn = attn + _gather_bias(rpb_table, rp_index, attn.dtype).unsqueeze(0)
    if shift_size > 0:
        mask = shift_mask(h, w, ws, shift_size, dtype=attn.dtype, device=attn.device)
        nw = mask.shape[0]
        attn = attn.view(-1, nw, num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, n, n)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    out = (attn @ vw).transpose(1, 2).reshape(-1, n, c)
    out = window_reverse(out.view(-1, ws, ws, c), ws, h, w)
    if shift_size > 0:
        out = torch.roll(out, shifts=(shift_size, shift_size), dims=(1, 2))
    return out


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

    qw = _split_heads(window_partition(q, ws).view(-1, ws * ws, c), num_heads)
    kv = torch.cat((k.permute(0, 3, 1, 2), v.permute(0, 3, 1, 2)), dim=1)  # (B, 2C, H, W)
    cols = F.unfold(kv, kernel_size=(ows, ows), stride=ws, padding=pad)  # (B, 2C*ows*ows, nW)
    nw = cols.shape[-1]
    # 'b (kv c oy ox) nw -> kv (b nw) (oy ox) c'
    cols = cols.view(b, 2, c, ows * ows, nw).permute(1, 0, 4, 3, 2).reshape(2, b * nw, ows * ows, c)
    kw, vw = _split_heads(cols[0], num_heads), _split_heads(cols[1], num_heads)

    qw = qw * scale
    attn = qw @ kw.transpose(-2, -1)
    attn = attn + _gather_bias(rpb_table, rp_index, attn.dtype).unsqueeze(0)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    out = (attn @ vw).transpose(1, 2).reshape(-1, ws * ws, c)
    return window_reverse(out.view(-1, ws, ws, c), ws, h, w)
