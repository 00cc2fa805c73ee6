"""Fast PyTorch backend: gathers instead of roll + partition, fused attention (SDPA), grouped shift masks.

* Roll and window partition are one ``index_select`` over the flattened token map (index cached per size; one
  gather for q, k and v together when they are slices of one projection); ``index_copy_`` with the same index
  writes each result group straight back to image order, undoing the roll.
* Attention is ``F.scaled_dot_product_attention`` with the relative-position bias as an additive mask, so
  the ``(B*nW, h, N, N)`` score tensor is never materialised.
* A shift mask is non-zero only in the last window row and column, and there it takes just three patterns
  (bottom row, right column, corner). Windows are ordered by pattern group (interior, bottom, right, corner),
  and each group is one SDPA call whose mask is ``bias + pattern``, shape ``(1, h, N, N)``, whatever the
  image size. Nothing is cached that depends on learnable tensors, so training never sees a stale bias.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from restore.ops.window_attention.geometry import MASK_VALUE


def _tracing() -> bool:
    """True under ``torch.compile`` / ``torch.export``: sizes may be symbolic and tensors fake, so nothing built
    there may enter (or come from) the per-size caches; the index tensors are then built from the shapes."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _window_order(
    batch: int, height: int, width: int, window_size: int, shift_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """``_build_window_order``, cached per size in eager mode."""
    if _tracing():
        return _build_window_order(batch, height, width, window_size, shift_size, device)
    return _cached_window_order(batch, height, width, window_size, shift_size, device)


def _build_window_order(
    batch: int, height: int, width: int, window_size: int, shift_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Token gather order for (rolled) window attention (built on the CPU, whatever the default device).

    Returns:
        gather: int64 ``(B*H*W,)``; entry ``i`` is the flat image position (``b*H*W + y*W + x``) of the
            ``i``-th token in window order. Windows come grouped (all batches of group 0, then group 1, ...),
            row-major inside a group; tokens row-major inside a window. The roll by ``-shift`` is folded in.
        scatter: the inverse permutation (window order -> image order), which also undoes the roll.
        group_sizes: windows per group summed over the batch (one group when ``shift_size == 0``).
    """
    ws = window_size
    rows, cols = height // ws, width // ws
    win_r = torch.arange(rows, device="cpu").view(rows, 1).expand(rows, cols).flatten()
    win_c = torch.arange(cols, device="cpu").view(1, cols).expand(rows, cols).flatten()
    if shift_size > 0:
        # Window numbers (row-major) of each group, built from the grid shape alone (no data-dependent nonzero).
        inner_r = torch.arange(rows - 1, device="cpu") * cols
        inner_c = torch.arange(cols - 1, device="cpu")
        groups = [
            (inner_r.view(-1, 1) + inner_c.view(1, -1)).flatten(),  # interior
            inner_c + (rows - 1) * cols,  # bottom row
            inner_r + (cols - 1),  # right column
            torch.full((1,), rows * cols - 1, dtype=torch.int64, device="cpu"),  # corner
        ]
    else:
        groups = [torch.arange(rows * cols, device="cpu")]
    ty = torch.arange(ws, device="cpu").view(ws, 1).expand(ws, ws).flatten()
    tx = torch.arange(ws, device="cpu").view(1, ws).expand(ws, ws).flatten()
    pieces, sizes = [], []
    for windows in groups:
        y = win_r[windows].view(-1, 1) * ws + ty + shift_size  # (n_g, N), in [0, 2 * height)
        x = win_c[windows].view(-1, 1) * ws + tx + shift_size
        y = torch.where(y >= height, y - height, y)  # the roll's wrap-around (no modulo by a traced size)
        x = torch.where(x >= width, x - width, x)
        flat = y * width + x
        per_batch = flat.view(1, -1) + torch.arange(batch, device="cpu").view(-1, 1) * (height * width)  # (B, n_g*N)
        pieces.append(per_batch.flatten())
        sizes.append(batch * windows.numel())
    gather = torch.cat(pieces)
    scatter = torch.empty_like(gather)
    scatter[gather] = torch.arange(gather.numel(), device="cpu")
    return gather.to(device), scatter.to(device), tuple(sizes)


_cached_window_order = functools.lru_cache(maxsize=64)(_build_window_order)


def _shift_patterns(
    window_size: int, shift_size: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor | None, ...]:
    """``_build_shift_patterns``, cached per size in eager mode."""
    if _tracing():
        return _build_shift_patterns(window_size, shift_size, dtype, device)
    return _cached_shift_patterns(window_size, shift_size, dtype, device)


def _build_shift_patterns(
    window_size: int, shift_size: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor | None, ...]:
    """Shift-mask pattern per window group: ``None`` (interior) or ``(1, 1, N, N)`` of 0 / -100 in ``dtype``."""
    ws = window_size
    # Region of each token along one axis inside a last-row/last-column window: 0 before ws-shift, 1 after.
    band = (torch.arange(ws, device="cpu") >= ws - shift_size).long()
    ty = band.view(ws, 1).expand(ws, ws).flatten()
    tx = band.view(1, ws).expand(ws, ws).flatten()
    zeros = torch.zeros_like(ty)

    def pattern(label: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(label.numel(), label.numel(), dtype=dtype, device="cpu")
        mask.masked_fill_(label[None, :] != label[:, None], MASK_VALUE)
        return mask.view(1, 1, ws * ws, ws * ws).to(device)

    return None, pattern(ty * 2 + zeros), pattern(zeros + tx), pattern(ty * 2 + tx)


_cached_shift_patterns = functools.lru_cache(maxsize=64)(_build_shift_patterns)


def _bias(rpb_table: torch.Tensor, rp_index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(1, h, Nq, Nk)`` contiguous relative-position bias in ``dtype`` (differentiable w.r.t. the table).

    The small table is transposed first so the gather writes the head-major result in one pass; ``index_select``
    on the flattened index is several times faster than advanced indexing. Negative entries count from the end of
    the table, as in the official code (HAT's OCA index holds negative values), hence the remainder.
    """
    table = rpb_table.to(dtype).t().contiguous()  # (h, rows)
    flat = rp_index.remainder(table.shape[1]).flatten()
    return table.index_select(1, flat).view(1, table.shape[0], *rp_index.shape)


def _to_heads(tokens: torch.Tensor, windows: int, n: int, num_heads: int) -> torch.Tensor:
    """``(windows*n, C)`` -> ``(windows, h, n, d)`` view (d spelled out: ``windows`` may be 0, e.g. the interior
    group of a shifted layer one window high, where ``-1`` would divide by zero in an exported graph)."""
    return tokens.view(windows, n, num_heads, tokens.shape[-1] // num_heads).transpose(1, 2)


def _from_heads(out: torch.Tensor) -> torch.Tensor:
    """``(windows, h, n, d)`` -> ``(windows*n, C)`` (a view for SDPA's usual output layout)."""
    w, h, n, d = out.shape
    if _tracing():  # the exporter's SDPA decomposition may change the output strides: copy explicitly
        return out.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(w * n, h * d)
    return out.transpose(1, 2).reshape(w * n, h * d)


def _packed_tokens(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor | None:
    """``(B*H*W, R)`` view of the tensor whose rows hold ``q, k, v`` as consecutive channel thirds, ``R >= 3C``
    (the usual ``qkv(x).chunk(3, dim=-1)`` of a contiguous projection, ``R = 3C``, or one whose output features
    were padded, ``R > 3C``), so one gather moves all three; ``None`` otherwise or when autograd is recording
    (the view would reach outside each input)."""
    if _tracing() or (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        return None
    b, h, w, c = q.shape
    row = q.stride(2)
    packed = (h * w * row, w * row, row, 1)
    if row < 3 * c or not (q.stride() == k.stride() == v.stride() == packed):
        return None
    storages = {t.untyped_storage().data_ptr() for t in (q, k, v)}
    if len(storages) != 1:
        return None
    step = c * q.element_size()
    if k.data_ptr() - q.data_ptr() != step or v.data_ptr() - k.data_ptr() != step:
        return None
    if q.storage_offset() + b * h * w * row > q.untyped_storage().nbytes() // q.element_size():
        return None  # full rows from q's first channel would run past the storage end
    return q.as_strided((b * h * w, row), (row, 1))


def _gather_tokens(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gather: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of ``q, k, v`` (flattened to ``(B*H*W, C)``) in window order: three ``(B*H*W, C)`` matrices."""
    c = q.shape[-1]
    packed = _packed_tokens(q, k, v)
    if packed is not None:
        rows = packed.index_select(0, gather)
        return rows[:, :c], rows[:, c : 2 * c], rows[:, 2 * c : 3 * c]
    q2, k2, v2 = (t.reshape(-1, c).index_select(0, gather) for t in (q, k, v))
    return q2, k2, v2


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
    """Shifted-window self-attention via SDPA. Shapes as in the public function."""
    b, h, w, c = q.shape
    n = window_size * window_size
    gather, _, sizes = _window_order(b, h, w, window_size, shift_size, q.device)
    qf, kf, vf = _gather_tokens(q, k, v, gather)
    bias = _bias(rpb_table, rp_index, q.dtype)
    patterns = _shift_patterns(window_size, shift_size, q.dtype, q.device) if shift_size > 0 else (None,)
    out = q.new_empty(b * h * w, c)
    start = 0
    for size, pattern in zip(sizes, patterns):
        if size == 0:
            continue
        rows = slice(start * n, (start + size) * n)
        start += size
        group = F.scaled_dot_product_attention(
            _to_heads(qf[rows], size, n, num_heads),
            _to_heads(kf[rows], size, n, num_heads),
            _to_heads(vf[rows], size, n, num_heads),
            attn_mask=bias if pattern is None else bias + pattern,
            dropout_p=dropout_p,
            scale=scale,
        )
        out.index_copy_(0, gather[rows], _from_heads(group))  # back to image order, roll undone
    return out.view(b, h, w, c)


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
    """Overlapping cross-attention via SDPA; keys/values cut from the zero-padded map with strided views."""
    b, h, w, c = q.shape
    ws, ows = window_size, overlap_window_size
    pad = (ows - ws) // 2
    nw = b * (h // ws) * (w // ws)
    gather, scatter, _ = _window_order(b, h, w, ws, 0, q.device)
    qw = _to_heads(q.reshape(b * h * w, c).index_select(0, gather), nw, ws * ws, num_heads)

    def key_windows(x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (0, 0, pad, pad, pad, pad))  # (B, H+2p, W+2p, C), zeros outside the image
        patches = padded.unfold(1, ows, ws).unfold(2, ows, ws)  # (B, H/ws, W/ws, C, ows, ows) view
        tokens = patches.permute(0, 1, 2, 4, 5, 3).reshape(nw * ows * ows, c)
        return _to_heads(tokens, nw, ows * ows, num_heads)

    out = F.scaled_dot_product_attention(
        qw,
        key_windows(k),
        key_windows(v),
        attn_mask=_bias(rpb_table, rp_index, q.dtype),
        dropout_p=dropout_p,
        scale=scale,
    )
    return _from_heads(out).index_select(0, scatter).view(b, h, w, c)
