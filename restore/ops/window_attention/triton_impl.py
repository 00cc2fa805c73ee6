"""Triton kernels for (shifted) window attention and HAT's overlapping cross-attention, flash-style.

Notation: B batch, H x W tokens, C = h*d channels, ws window side, N = ws*ws queries per window, NK keys per
window (N, or ows*ows for overlapping attention), nW windows per image. One program owns one (window, head)
pair and a block of BLOCK_M queries; the window's keys stream through in blocks of BLOCK_N.

Geometry is index arithmetic on the ``(B, H, W, C)`` maps (no roll, partition, unfold or reverse copies):

* window (b, wy, wx), query i = (r, c) = divmod(i, ws) reads and writes pixel
  ``((wy*ws + r + shift) mod H, (wx*ws + c + shift) mod W)`` (the roll by -shift, undone on the way out);
* self-attention key j: the same map as queries; overlapping key j = (r, c) = divmod(j, ows) reads pixel
  ``(wy*ws - p + r, wx*ws - p + c)``, p = (ows - ws) / 2, a zero vector outside the image that still takes part
  in the softmax with score ``0 + bias``;
* shift mask (shift > 0): the region label of rolled coordinate t along an axis of length L is
  ``[t >= L - ws] + [t >= L - shift]``; pairs whose (row, column) labels differ get -100, as in Swin.

Forward (per program, log2 domain, online softmax, float32 state)::

    s_ij = (scale * q_i . k_j + table[rp_index[i, j], head] + mask_ij) * log2(e)     (-inf for j >= NK)
    m_i, l_i = running max, running sum of exp2(s_ij - m_i);  acc_i = sum_j exp2(s_ij - m_i) v_j
    out_i = acc_i / l_i;  lse_i = m_i + log2(l_i)                                    (lse saved, base 2)

Backward recomputes ``p_ij = exp2(s_ij - lse_i)`` tile by tile (the N x NK probabilities are never stored), with
``delta_i = sum_c dout_ic out_ic``::

    dv_j = sum_i p_ij dout_i;  dp_ij = dout_i . v_j;  ds_ij = p_ij (dp_ij - delta_i)
    dk_j = scale sum_i ds_ij q_i     (_bwd_kv_kernel, one program per key block)
    dq_i = scale sum_j ds_ij k_j     (_bwd_q_kernel,  one program per query block)
    dbias[head, i, j] = sum over windows of ds_ij;  dtable = scatter-add of dbias by rp_index   (_bwd_bias_kernel)

Overlapping key windows share pixels, so their dk / dv go through float32 atomic adds; everything else is
written exactly once. Head dims that are not powers of two (24, 30, 46, 53, 77, 122, ...) are padded to the next
power of two (>= 16) inside the kernels with masked loads; callers pass the real tensors. Products run in the
input dtype with float32 accumulation; float32 products are IEEE unless
``torch.backends.cuda.matmul.allow_tf32`` is set (then TF32, like torch matmuls).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from restore.ops._backend import triton_interpreted
from restore.ops.window_attention import torch_impl

_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    """``a @ b`` with float32 accumulation. PRECISION ``"ieee"`` / ``"tf32"`` is passed to ``tl.dot``; ``"fp32"``
    first converts (half) operands to float32, exactly, for the Triton interpreter, whose ``tl.dot`` cannot
    multiply bfloat16."""
    if PRECISION == "fp32":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _window_coords(win, n_win, n_win_x):
    """(batch, window row, window column) of window ``win`` (windows batch-major, then row-major)."""
    w_in = win % n_win
    return win // n_win, w_in // n_win_x, w_in % n_win_x


@triton.jit
def _region(t, length, WS: tl.constexpr, SHIFT: tl.constexpr):
    """Shift-mask region label (0, 1, 2) of rolled coordinate ``t`` along an axis of ``length`` tokens."""
    return (t >= length - WS).to(tl.int32) + (t >= length - SHIFT).to(tl.int32)


@triton.jit
def _query_pixels(idx, wy, wx, height, width, WS: tl.constexpr, SHIFT: tl.constexpr):
    """Image row / column (int64, so that row * row-stride cannot overflow) of window tokens ``idx`` (roll folded
    in) and their shift-region label."""
    yr = wy * WS + idx // WS
    xr = wx * WS + idx % WS
    label = _region(yr, height, WS, SHIFT) * 3 + _region(xr, width, WS, SHIFT)
    return ((yr + SHIFT) % height).to(tl.int64), ((xr + SHIFT) % width).to(tl.int64), label


@triton.jit
def _key_pixels(
    idx, idx_ok, wy, wx, height, width,
    WS: tl.constexpr, KWS: tl.constexpr, SHIFT: tl.constexpr, OVERLAP: tl.constexpr,
):
    """Image row / column (int64), shift-region label and in-image flag of key tokens ``idx`` of a window."""
    if OVERLAP:
        y = (wy * WS - (KWS - WS) // 2 + idx // KWS).to(tl.int64)
        x = (wx * WS - (KWS - WS) // 2 + idx % KWS).to(tl.int64)
        inside = idx_ok & (y >= 0) & (y < height) & (x >= 0) & (x < width)
        label = idx * 0
    else:
        y, x, label = _query_pixels(idx, wy, wx, height, width, WS, SHIFT)
        inside = idx_ok
    return y, x, label, inside


@triton.jit
def _scores_log2(
    q, k, rows, cols, rows_ok, cols_ok, label_q, label_k, rpi_ptr, table_ptr, st_row, st_head, head, scale,
    NK: tl.constexpr, SHIFT: tl.constexpr, PRECISION: tl.constexpr,
):
    """``(scale q k^T + bias + mask) * log2(e)`` for one (BLOCK_M, BLOCK_N) tile; -inf in padded key columns."""
    s = _dot(q, tl.trans(k), PRECISION) * scale
    idx = tl.load(rpi_ptr + rows[:, None] * NK + cols[None, :], mask=rows_ok[:, None] & cols_ok[None, :], other=0)
    s += tl.load(table_ptr + idx * st_row + head * st_head).to(tl.float32)
    if SHIFT > 0:
        s += tl.where(label_q[:, None] != label_k[None, :], -100.0, 0.0)
    return tl.where(cols_ok[None, :], s * 1.4426950408889634, float("-inf"))


@triton.jit
def _fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, table_ptr, rpi_ptr,
    s_b, s_y, s_x, s_c, o_b, o_y, o_x,
    height, width, heads, head_dim, n_win, n_win_x, st_row, st_head, scale,
    WS: tl.constexpr, KWS: tl.constexpr, SHIFT: tl.constexpr, OVERLAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (window-head, query block): output rows and base-2 logsumexp of BLOCK_M queries."""
    NQ: tl.constexpr = WS * WS
    NK: tl.constexpr = KWS * KWS
    head = tl.program_id(0) % heads  # programs: heads fastest, then windows
    b, wy, wx = _window_coords(tl.program_id(0) // heads, n_win, n_win_x)
    b = b.to(tl.int64)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    rows_ok = rows < NQ
    dims = tl.arange(0, BLOCK_D)
    dims_ok = dims < head_dim
    chan = (head * head_dim + dims) * s_c
    yq, xq, label_q = _query_pixels(rows, wy, wx, height, width, WS, SHIFT)
    q = tl.load(q_ptr + b * s_b + (yq * s_y + xq * s_x)[:, None] + chan[None, :],
                mask=rows_ok[:, None] & dims_ok[None, :], other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start in range(0, NK, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        cols_ok = cols < NK
        yk, xk, label_k, inside = _key_pixels(cols, cols_ok, wy, wx, height, width, WS, KWS, SHIFT, OVERLAP)
        kv_offs = b * s_b + (yk * s_y + xk * s_x)[:, None] + chan[None, :]
        kv_mask = inside[:, None] & dims_ok[None, :]
        k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0)
        s = _scores_log2(q, k, rows, cols, rows_ok, cols_ok, label_q, label_k, rpi_ptr, table_ptr, st_row,
                         st_head, head, scale, NK, SHIFT, PRECISION)
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(o_ptr + b * o_b + (yq * o_y + xq * o_x)[:, None] + (head * head_dim + dims)[None, :],
             out.to(o_ptr.dtype.element_ty), mask=rows_ok[:, None] & dims_ok[None, :])
    pix = (b * height + yq) * width + xq
    tl.store(lse_ptr + pix * heads + head, m_i + tl.log2(l_i), mask=rows_ok)


@triton.jit
def _load_query_side(
    q_ptr, do_ptr, lse_ptr, delta_ptr, b, yq, xq, rows_ok, chan_in, chan_out, dims_ok,
    s_b, s_y, s_x, o_b, o_y, o_x, height, width, heads, head,
):
    """q, dout (BLOCK_M, BLOCK_D) and lse, delta (BLOCK_M,) of a query block."""
    mask = rows_ok[:, None] & dims_ok[None, :]
    q = tl.load(q_ptr + b * s_b + (yq * s_y + xq * s_x)[:, None] + chan_in[None, :], mask=mask, other=0.0)
    do = tl.load(do_ptr + b * o_b + (yq * o_y + xq * o_x)[:, None] + chan_out[None, :], mask=mask, other=0.0)
    stat = ((b * height + yq) * width + xq) * heads + head
    lse = tl.load(lse_ptr + stat, mask=rows_ok, other=0.0)
    delta = tl.load(delta_ptr + stat, mask=rows_ok, other=0.0)
    return q, do, lse, delta


@triton.jit
def _bwd_kv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, table_ptr, rpi_ptr,
    s_b, s_y, s_x, s_c, o_b, o_y, o_x,
    height, width, heads, head_dim, n_win, n_win_x, st_row, st_head, scale,
    WS: tl.constexpr, KWS: tl.constexpr, SHIFT: tl.constexpr, OVERLAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (window-head, key block): dk, dv of BLOCK_N keys, looping over all queries of the window.
    dk/dv use the output strides; with OVERLAP they are float32 buffers updated atomically."""
    NQ: tl.constexpr = WS * WS
    NK: tl.constexpr = KWS * KWS
    head = tl.program_id(0) % heads  # programs: heads fastest, then windows
    b, wy, wx = _window_coords(tl.program_id(0) // heads, n_win, n_win_x)
    b = b.to(tl.int64)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols_ok = cols < NK
    dims = tl.arange(0, BLOCK_D)
    dims_ok = dims < head_dim
    chan_in = (head * head_dim + dims) * s_c
    chan_out = head * head_dim + dims
    yk, xk, label_k, inside = _key_pixels(cols, cols_ok, wy, wx, height, width, WS, KWS, SHIFT, OVERLAP)
    kv_mask = inside[:, None] & dims_ok[None, :]
    kv_offs = b * s_b + (yk * s_y + xk * s_x)[:, None] + chan_in[None, :]
    k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0)
    v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0)
    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    for start in range(0, NQ, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        rows_ok = rows < NQ
        yq, xq, label_q = _query_pixels(rows, wy, wx, height, width, WS, SHIFT)
        q, do, lse, delta = _load_query_side(q_ptr, do_ptr, lse_ptr, delta_ptr, b, yq, xq, rows_ok, chan_in,
                                             chan_out, dims_ok, s_b, s_y, s_x, o_b, o_y, o_x, height, width,
                                             heads, head)
        s = _scores_log2(q, k, rows, cols, rows_ok, cols_ok, label_q, label_k, rpi_ptr, table_ptr, st_row,
                         st_head, head, scale, NK, SHIFT, PRECISION)
        p = tl.where(rows_ok[:, None], tl.exp2(s - lse[:, None]), 0.0)
        dv += _dot(tl.trans(p.to(do.dtype)), do, PRECISION)
        dp = _dot(do, tl.trans(v), PRECISION)
        ds = p * (dp - delta[:, None])
        dk += _dot(tl.trans(ds.to(q.dtype)), q, PRECISION)
    dk = dk * scale
    out_offs = b * o_b + (yk * o_y + xk * o_x)[:, None] + chan_out[None, :]
    if OVERLAP:
        tl.atomic_add(dk_ptr + out_offs, dk, mask=kv_mask)
        tl.atomic_add(dv_ptr + out_offs, dv, mask=kv_mask)
    else:
        tl.store(dk_ptr + out_offs, dk.to(dk_ptr.dtype.element_ty), mask=kv_mask)
        tl.store(dv_ptr + out_offs, dv.to(dv_ptr.dtype.element_ty), mask=kv_mask)


@triton.jit
def _bwd_q_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr, table_ptr, rpi_ptr,
    s_b, s_y, s_x, s_c, o_b, o_y, o_x,
    height, width, heads, head_dim, n_win, n_win_x, st_row, st_head, scale,
    WS: tl.constexpr, KWS: tl.constexpr, SHIFT: tl.constexpr, OVERLAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (window-head, query block): dq of BLOCK_M queries, looping over the window's keys."""
    NQ: tl.constexpr = WS * WS
    NK: tl.constexpr = KWS * KWS
    head = tl.program_id(0) % heads  # programs: heads fastest, then windows
    b, wy, wx = _window_coords(tl.program_id(0) // heads, n_win, n_win_x)
    b = b.to(tl.int64)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    rows_ok = rows < NQ
    dims = tl.arange(0, BLOCK_D)
    dims_ok = dims < head_dim
    chan_in = (head * head_dim + dims) * s_c
    chan_out = head * head_dim + dims
    yq, xq, label_q = _query_pixels(rows, wy, wx, height, width, WS, SHIFT)
    q, do, lse, delta = _load_query_side(q_ptr, do_ptr, lse_ptr, delta_ptr, b, yq, xq, rows_ok, chan_in, chan_out,
                                         dims_ok, s_b, s_y, s_x, o_b, o_y, o_x, height, width, heads, head)
    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start in range(0, NK, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        cols_ok = cols < NK
        yk, xk, label_k, inside = _key_pixels(cols, cols_ok, wy, wx, height, width, WS, KWS, SHIFT, OVERLAP)
        kv_offs = b * s_b + (yk * s_y + xk * s_x)[:, None] + chan_in[None, :]
        kv_mask = inside[:, None] & dims_ok[None, :]
        k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0)
        s = _scores_log2(q, k, rows, cols, rows_ok, cols_ok, label_q, label_k, rpi_ptr, table_ptr, st_row,
                         st_head, head, scale, NK, SHIFT, PRECISION)
        p = tl.where(rows_ok[:, None], tl.exp2(s - lse[:, None]), 0.0)
        dp = _dot(do, tl.trans(v), PRECISION)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, PRECISION)
    dq = dq * scale
    tl.store(dq_ptr + b * o_b + (yq * o_y + xq * o_x)[:, None] + chan_out[None, :], dq.to(dq_ptr.dtype.element_ty),
             mask=rows_ok[:, None] & dims_ok[None, :])


@triton.jit
def _bwd_bias_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dbias_ptr, table_ptr, rpi_ptr,
    s_b, s_y, s_x, s_c, o_b, o_y, o_x,
    height, width, heads, head_dim, n_win, n_win_x, st_row, st_head, scale, n_windows, windows_per_split,
    WS: tl.constexpr, KWS: tl.constexpr, SHIFT: tl.constexpr, OVERLAP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (score tile, head, window split): sum of ds over the split's windows for one (BLOCK_M, BLOCK_N)
    tile, written to ``dbias[split, head]`` (float32, (NQ, NK)); no atomics."""
    NQ: tl.constexpr = WS * WS
    NK: tl.constexpr = KWS * KWS
    tiles_n = tl.cdiv(NK, BLOCK_N)
    rows = (tl.program_id(0) // tiles_n) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = (tl.program_id(0) % tiles_n) * BLOCK_N + tl.arange(0, BLOCK_N)
    head = tl.program_id(1)
    split = tl.program_id(2)
    rows_ok = rows < NQ
    cols_ok = cols < NK
    dims = tl.arange(0, BLOCK_D)
    dims_ok = dims < head_dim
    chan_in = (head * head_dim + dims) * s_c
    chan_out = head * head_dim + dims
    first = split * windows_per_split
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for win in range(first, tl.minimum(first + windows_per_split, n_windows)):
        b, wy, wx = _window_coords(win, n_win, n_win_x)
        b = b.to(tl.int64)
        yq, xq, label_q = _query_pixels(rows, wy, wx, height, width, WS, SHIFT)
        q, do, lse, delta = _load_query_side(q_ptr, do_ptr, lse_ptr, delta_ptr, b, yq, xq, rows_ok,
                                             chan_in, chan_out, dims_ok, s_b, s_y, s_x, o_b, o_y, o_x, height,
                                             width, heads, head)
        yk, xk, label_k, inside = _key_pixels(cols, cols_ok, wy, wx, height, width, WS, KWS, SHIFT, OVERLAP)
        kv_offs = b * s_b + (yk * s_y + xk * s_x)[:, None] + chan_in[None, :]
        kv_mask = inside[:, None] & dims_ok[None, :]
        k = tl.load(k_ptr + kv_offs, mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + kv_offs, mask=kv_mask, other=0.0)
        s = _scores_log2(q, k, rows, cols, rows_ok, cols_ok, label_q, label_k, rpi_ptr, table_ptr, st_row,
                         st_head, head, scale, NK, SHIFT, PRECISION)
        p = tl.where((rows_ok)[:, None], tl.exp2(s - lse[:, None]), 0.0)
        dp = _dot(do, tl.trans(v), PRECISION)
        acc += p * (dp - delta[:, None])
    slot = (split * heads + head).to(tl.int64) * NQ * NK
    tl.store(dbias_ptr + slot + rows[:, None] * NK + cols[None, :], acc, mask=rows_ok[:, None] & cols_ok[None, :])


# ----------------------------------------------------------------------------------------------------- launchers


def _precision(dtype: torch.dtype) -> str:
    """``tl.dot`` mode: IEEE fp32 unless torch matmuls may use TF32; half inputs take the tensor-core path,
    except bfloat16 under the interpreter, which is multiplied as (exact) float32."""
    if dtype == torch.bfloat16 and triton_interpreted():
        return "fp32"
    return "ieee" if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32 else "tf32"


class _Geometry:
    """Static description of one attention call (becomes kernel constexprs)."""

    def __init__(self, num_heads: int, window_size: int, key_window: int, shift: int, overlap: bool, scale: float):
        self.num_heads = num_heads
        self.window_size = window_size
        self.key_window = key_window
        self.shift = shift
        self.overlap = overlap
        self.scale = float(scale)

    def blocks(self, head_dim: int, dtype: torch.dtype, key_major: bool = False) -> dict[str, int]:
        """Tile sizes and warps, chosen so that the kernels compile without register spills for sm_80 / sm_90
        at ws 16 (checked with ptxas): query x key tiles of 64 x 32 on 8 warps, except 64 x 64 on 4 warps for
        half-precision head dims <= 32. ``key_major`` (the dk / dv kernel, which keeps two key-block accumulators):
        32 x 32 tiles, 16 x 32 for head dims >= 64 (16 x 16 for float32 at 128). Tiles shrink to the
        window (>= 16, the ``tl.dot`` minimum)."""
        block_d = max(16, triton.next_power_of_2(head_dim))
        half = dtype in (torch.float16, torch.bfloat16)
        if key_major:
            block_m, block_n, warps = (32, 32, 8) if block_d <= 32 else (16, 32, 8)
            if not half and block_d >= 128:
                block_n = 16
        elif half and block_d <= 32:
            block_m, block_n, warps = 64, 64, 4
        else:
            block_m, block_n, warps = 64, 32, 8
        n_q, n_k = self.window_size**2, self.key_window**2
        block_m = min(block_m, max(16, triton.next_power_of_2(n_q)))
        block_n = min(block_n, max(16, triton.next_power_of_2(n_k)))
        return {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d, "num_warps": warps}

    def constexprs(self, dtype: torch.dtype) -> dict[str, object]:
        return {"WS": self.window_size, "KWS": self.key_window, "SHIFT": self.shift, "OVERLAP": self.overlap,
                "PRECISION": _precision(dtype)}


def _check(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor,
           rp_index: torch.Tensor, geo: _Geometry) -> None:
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"{name}: q, k, v must share one (B, H, W, C) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _KERNEL_DTYPES:
        raise ValueError(f"{name}: q, k, v must share a float32/float16/bfloat16 dtype, got {q.dtype}, {k.dtype}, "
                         f"{v.dtype}")
    _, height, width, channels = q.shape
    ws = geo.window_size
    if channels % geo.num_heads or height % ws or width % ws:
        raise ValueError(f"{name}: need C % num_heads == 0 and H, W multiples of window_size={ws}, got "
                         f"(H, W, C) = {(height, width, channels)}, num_heads={geo.num_heads}")
    if tuple(rp_index.shape) != (ws * ws, geo.key_window**2):
        raise ValueError(f"{name}: rp_index shape expected {(ws * ws, geo.key_window**2)}, got "
                         f"{tuple(rp_index.shape)}")
    if table.dim() != 2 or table.shape[1] != geo.num_heads:
        raise ValueError(f"{name}: rpb_table expected (rows, {geo.num_heads}), got {tuple(table.shape)}")


def _same_strides(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """q, k, v as given when they share strides (e.g. chunks of one qkv tensor: the kernels take one set of
    strides for the three), else contiguous copies."""
    if q.stride() == k.stride() == v.stride():
        return q, k, v
    return q.contiguous(), k.contiguous(), v.contiguous()


def _common_args(q: torch.Tensor, out_like: torch.Tensor, table: torch.Tensor, geo: _Geometry) -> tuple:
    _, height, width, channels = q.shape
    n_win_x = width // geo.window_size
    n_win = (height // geo.window_size) * n_win_x
    return (*q.stride(), *out_like.stride()[:3], height, width, geo.num_heads, channels // geo.num_heads,
            n_win, n_win_x, *table.stride(), geo.scale)


def attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, rpi: torch.Tensor, geo: _Geometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launcher. q, k, v ``(B, H, W, C)`` sharing strides; rpi int32 contiguous ``(N, NK)``.
    Returns ``out`` contiguous ``(B, H, W, C)`` in q's dtype and ``lse`` float32 ``(B, H, W, h)`` (base 2)."""
    batch, height, width, channels = q.shape
    out = torch.empty(batch, height, width, channels, device=q.device, dtype=q.dtype)
    lse = torch.empty(batch, height, width, geo.num_heads, device=q.device, dtype=torch.float32)
    blocks = geo.blocks(channels // geo.num_heads, q.dtype)
    n_windows = batch * (height // geo.window_size) * (width // geo.window_size)
    grid = (n_windows * geo.num_heads, triton.cdiv(geo.window_size**2, blocks["BLOCK_M"]))
    _fwd_kernel[grid](q, k, v, out, lse, table, rpi, *_common_args(q, out, table, geo), **geo.constexprs(q.dtype),
                      **blocks)
    return out, lse


def _bias_splits(n_windows: int, tiles: int, heads: int, device: torch.device) -> int:
    if device.type == "cuda":
        target = 4 * torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(n_windows, triton.cdiv(target, tiles * heads)))
    return min(n_windows, 2)  # interpreter: exercise the split reduction


def attention_backward(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
    table: torch.Tensor, rpi: torch.Tensor, geo: _Geometry, needs: tuple[bool, bool, bool, bool],
) -> tuple[torch.Tensor | None, ...]:
    """Backward launchers: ``(dq, dk, dv, dtable)`` for the entries of ``needs`` that are True."""
    need_q, need_k, need_v, need_table = needs
    batch, height, width, channels = q.shape
    heads, head_dim = geo.num_heads, channels // geo.num_heads
    grad_out = grad_out.contiguous()
    delta = (grad_out.float() * out.float()).view(batch, height, width, heads, head_dim).sum(-1).contiguous()
    blocks = geo.blocks(head_dim, q.dtype)
    const = geo.constexprs(q.dtype)
    args = _common_args(q, grad_out, table, geo)
    n_windows = batch * (height // geo.window_size) * (width // geo.window_size)
    n_q, n_k = geo.window_size**2, geo.key_window**2
    dq = dk = dv = dtable = None
    if need_q:
        dq = torch.empty_like(grad_out)
        grid = (n_windows * heads, triton.cdiv(n_q, blocks["BLOCK_M"]))
        _bwd_q_kernel[grid](q, k, v, grad_out, lse, delta, dq, table, rpi, *args, **const, **blocks)
    if need_k or need_v:
        if geo.overlap:  # key windows overlap: accumulate in float32
            dk = torch.zeros(grad_out.shape, device=q.device, dtype=torch.float32)
            dv = torch.zeros_like(dk)
        else:
            dk, dv = torch.empty_like(grad_out), torch.empty_like(grad_out)
        kv_blocks = geo.blocks(head_dim, q.dtype, key_major=True)
        grid = (n_windows * heads, triton.cdiv(n_k, kv_blocks["BLOCK_N"]))
        _bwd_kv_kernel[grid](q, k, v, grad_out, lse, delta, dk, dv, table, rpi, *args, **const, **kv_blocks)
        dk, dv = dk.to(q.dtype), dv.to(q.dtype)
    if need_table:
        tiles = triton.cdiv(n_q, blocks["BLOCK_M"]) * triton.cdiv(n_k, blocks["BLOCK_N"])
        splits = _bias_splits(n_windows, tiles, heads, q.device)
        per_split = triton.cdiv(n_windows, splits)
        splits = triton.cdiv(n_windows, per_split)
        partial = torch.empty(splits, heads, n_q, n_k, device=q.device, dtype=torch.float32)
        _bwd_bias_kernel[(tiles, heads, splits)](q, k, v, grad_out, lse, delta, partial, table, rpi, *args,
                                                 n_windows, per_split, **const, **blocks)
        dbias = partial.sum(0).permute(1, 2, 0).reshape(n_q * n_k, heads)
        dtable = torch.zeros(table.shape, device=q.device, dtype=torch.float32)
        dtable.index_add_(0, rpi.reshape(-1).long(), dbias)
        dtable = dtable.to(table.dtype)
    return dq, dk if need_k else None, dv if need_v else None, dtable


class _WindowAttentionFn(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v, out and the per-query logsumexp; backward recomputes the scores."""

    @staticmethod
    def forward(ctx, q, k, v, table, rp_index, geo):
        q, k, v = _same_strides(q, k, v)
        rpi = rp_index.to(device=q.device)
        # Negative entries index from the end, as in torch indexing (HAT's official OCA index has some).
        rpi = torch.where(rpi < 0, rpi + table.shape[0], rpi).to(torch.int32).contiguous()
        out, lse = attention_forward(q, k, v, table, rpi, geo)
        ctx.geo = geo
        ctx.save_for_backward(q, k, v, out, lse, table, rpi)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, out, lse, table, rpi = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[:4])
        dq, dk, dv, dtable = attention_backward(grad_out, q, k, v, out, lse, table, rpi, ctx.geo, needs)
        return dq, dk, dv, dtable, None, None


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
    """Triton backend of :func:`restore.ops.window_attention.window_attention` (same arguments and result).

    q, k, v: ``(B, H, W, C)`` float32 / float16 / bfloat16 on CUDA (or CPU under ``TRITON_INTERPRET=1``), any
    strides; differentiable with respect to q, k, v and ``rpb_table``. Attention dropout (``dropout_p > 0``,
    unused by the published configurations) and float64 run on the torch backend.
    """
    if dropout_p > 0.0 or q.dtype not in _KERNEL_DTYPES:
        return torch_impl.window_attention(q, k, v, num_heads=num_heads, window_size=window_size,
                                           shift_size=shift_size, rpb_table=rpb_table, rp_index=rp_index,
                                           scale=scale, dropout_p=dropout_p)
    if not 0 <= shift_size < window_size:
        raise ValueError(f"window_attention.triton_impl: shift_size must be in [0, {window_size}), got {shift_size}")
    geo = _Geometry(num_heads, window_size, window_size, shift_size, False, scale)
    _check("window_attention.triton_impl", q, k, v, rpb_table, rp_index, geo)
    return _WindowAttentionFn.apply(q, k, v, rpb_table, rp_index, geo)


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
    """Triton backend of :func:`restore.ops.window_attention.overlapping_window_attention` (same arguments and
    result); keys outside the image are zero vectors that keep their ``exp(bias)`` share of the softmax.
    Dropout and float64 run on the torch backend, as in :func:`window_attention`."""
    if dropout_p > 0.0 or q.dtype not in _KERNEL_DTYPES:
        return torch_impl.overlapping_window_attention(q, k, v, num_heads=num_heads, window_size=window_size,
                                                       overlap_window_size=overlap_window_size,
                                                       rpb_table=rpb_table, rp_index=rp_index, scale=scale,
                                                       dropout_p=dropout_p)
    ows = overlap_window_size
    if ows < window_size or (ows - window_size) % 2:
        raise ValueError(f"overlapping_window_attention.triton_impl: overlap_window_size - window_size must be even "
                         f"and >= 0, got {ows} - {window_size}")
    geo = _Geometry(num_heads, window_size, ows, 0, True, scale)
    _check("overlapping_window_attention.triton_impl", q, k, v, rpb_table, rp_index, geo)
    return _WindowAttentionFn.apply(q, k, v, rpb_table, rp_index, geo)
