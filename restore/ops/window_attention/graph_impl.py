"""Window self-attention as traced for an exported graph (``torch.compiler.is_exporting()``, ``torch`` backend).

Same arithmetic as :mod:`.torch_impl` (the token order, relative-position bias and shift-mask groups are built by
the same functions), laid out for graph runtimes such as ONNX Runtime, which copy at every slice and transpose
and fuse a bias into a product only when the product is 2-D:

* the ``C_in``-wide input tokens are gathered into window order before the ``qkv`` projection (the projection
  acts per token, so it commutes with the gather; three times less data than gathering ``q, k, v``), one gather
  per window group straight from the image-order tokens (no slice copies of a gathered whole);
* ``qkv`` and ``proj`` are 2-D products with their bias (one ``Gemm`` each), per window group;
* attention is one :func:`packed_attention` call per group on the ``(windows, n, C)`` token rows: an op of its
  own, which ``restore.export`` writes as one ``Attention`` operator taking the heads packed in the channels
  (opset 23: no transposes around it; earlier opsets: the same products, softmax and transposes spelled out);
* ``proj`` runs in window order, and one gather brings its output back to image order.

ONNX Runtime's ``Attention`` kernel rejects an empty batch, and the interior / bottom / right groups of a shifted
layer are empty on images one window high or wide. Each group therefore attends over at least one window: an
empty group borrows the next window (a later group always has one: the corner group holds one window per image)
and drops its output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restore.ops.window_attention.torch_impl import _bias, _build_shift_patterns, _build_window_order

__all__ = ["overlapping_window_self_attention", "packed_attention", "window_self_attention"]


@torch.library.custom_op("restore::packed_attention", mutates_args=())
def packed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, num_heads: int, scale: float
) -> torch.Tensor:
    """Multi-head attention on tokens with the heads packed in the channels.

    Args:
        q: ``(B, Nq, h*d)``; k: ``(B, Nk, h*d)``; v: ``(B, Nk, h*dv)``.
        mask: additive, broadcastable to ``(B, h, Nq, Nk)``.
        num_heads: ``h``.
        scale: factor on ``q @ k^T`` before the mask is added.

    Returns:
        ``(B, Nq, h*dv)``: ``softmax(scale * q k^T + mask) v`` per head, heads packed as in ``q``.
    """
    b, nq, _ = q.shape

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, t.shape[1], num_heads, t.shape[2] // num_heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask, scale=scale)
    return out.transpose(1, 2).reshape(b, nq, v.shape[2])


@packed_attention.register_fake
def _packed_attention_shape(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, num_heads: int, scale: float
) -> torch.Tensor:
    return q.new_empty(q.shape[0], q.shape[1], v.shape[2])


def _refuse_dropout(name: str, dropout_p: float) -> None:
    if dropout_p:
        raise ValueError(f"{name}: exported graphs run without attention dropout (dropout_p=0)")


def _attend(
    tokens: torch.Tensor,
    windows: int,
    n: int,
    num_heads: int,
    qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor | None,
    mask: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """``(windows*n, C_in)`` tokens of ``windows`` windows -> ``(windows*n, C)`` attention output (before proj)."""
    c = qkv_weight.shape[0] // 3
    q, k, v = (
        F.linear(tokens, qkv_weight[i * c : (i + 1) * c], None if qkv_bias is None else qkv_bias[i * c : (i + 1) * c])
        .view(windows, n, c)
        for i in range(3)
    )  # three products rather than one and a split: the split would copy
    out = packed_attention(q, k, v, mask, num_heads, scale)
    return out.view(windows * n, c)


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
    """``proj(window_attention(*qkv(x).chunk(3, -1)))``: ``(B, H, W, C_in)`` -> ``(B, H, W, C_out)``.

    Arguments as in :func:`restore.ops.window_attention.window_self_attention`; ``dropout_p`` must be 0 (graphs
    are exported for inference).
    """
    _refuse_dropout("window_self_attention", dropout_p)
    b, h, w, c_in = x.shape
    n = window_size * window_size
    gather, scatter, sizes = _build_window_order(b, h, w, window_size, shift_size, x.device)
    flat = x.reshape(b * h * w, c_in)
    bias = _bias(rpb_table, rp_index, x.dtype)
    patterns = _build_shift_patterns(window_size, shift_size, x.dtype, x.device) if shift_size > 0 else (None,)
    parts = []
    start = 0
    for size, pattern in zip(sizes, patterns):
        mask = bias if pattern is None else bias + pattern
        if isinstance(size, int):  # static shapes: empty groups are left out
            if size:
                rows = flat.index_select(0, gather[start * n : (start + size) * n])  # the group, roll folded in
                parts.append(_attend(rows, size, n, num_heads, qkv_weight, qkv_bias, mask, scale))
        else:
            padded = torch.sym_max(size, 1)  # at least one window (see the module docstring)
            rows = flat.index_select(0, gather[start * n : (start + padded) * n])
            parts.append(_attend(rows, padded, n, num_heads, qkv_weight, qkv_bias, mask, scale)[: size * n])
        start += size
    out = F.linear(torch.cat(parts) if len(parts) > 1 else parts[0], proj_weight, proj_bias)
    return out.index_select(0, scatter).view(b, h, w, out.shape[-1])


def _overlapping_rows(blocks: int, window_size: int, overlap_window_size: int) -> torch.Tensor:
    """``(blocks * ows,)`` int64: rows (or columns) of the padded map that each block's key window covers."""
    starts = torch.arange(blocks, device="cpu").view(-1, 1) * window_size
    return (starts + torch.arange(overlap_window_size, device="cpu").view(1, -1)).flatten()


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
) -> torch.Tensor:
    """HAT's OCA sub-layer: ``(B, H, W, C_in)`` -> ``(B, H, W, C_out)``.

    ``qkv`` is one 2-D product in image order; queries are gathered into window order; each key/value window
    (``ows x ows``, zero outside the image) is cut from the zero-padded ``k | v`` map by one gather of rows and one
    of columns, then one transpose that moves whole ``2C``-wide rows. Arguments as in
    :func:`restore.ops.window_attention.overlapping_window_self_attention`; ``dropout_p`` must be 0.
    """
    _refuse_dropout("overlapping_window_self_attention", dropout_p)
    b, h, w, c_in = x.shape
    ws, ows = window_size, overlap_window_size
    pad = (ows - ws) // 2
    c = qkv_weight.shape[0] // 3
    rows, cols = h // ws, w // ws
    windows = b * rows * cols
    qkv = F.linear(x.reshape(b * h * w, c_in), qkv_weight, qkv_bias)  # (B*H*W, 3C), image order
    gather, scatter, _ = _build_window_order(b, h, w, ws, 0, x.device)
    q = qkv[:, :c].index_select(0, gather).view(windows, ws * ws, c)
    kv = F.pad(qkv[:, c:].reshape(b, h, w, 2 * c), (0, 0, pad, pad, pad, pad))  # (B, H+2p, W+2p, 2C)
    kv = kv.index_select(1, _overlapping_rows(rows, ws, ows).to(x.device))  # (B, rows*ows, W+2p, 2C)
    kv = kv.index_select(2, _overlapping_rows(cols, ws, ows).to(x.device))  # (B, rows*ows, cols*ows, 2C)
    kv = kv.view(b, rows, ows, cols, ows, 2 * c).permute(0, 1, 3, 2, 4, 5).reshape(windows, ows * ows, 2 * c)
    bias = _bias(rpb_table, rp_index, x.dtype)
    out = packed_attention(q, kv[..., :c], kv[..., c:], bias, num_heads, scale)  # (windows, ws*ws, C)
    out = F.linear(out.reshape(windows * ws * ws, c), proj_weight, proj_bias)
    return out.index_select(0, scatter).view(b, h, w, out.shape[-1])
