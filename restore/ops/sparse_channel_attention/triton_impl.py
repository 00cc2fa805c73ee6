"""Triton kernels for channel attention (DRSformer top-k mix, DLGSANet ReLU, dense softmax).

Shapes: q, k, v ``(B, h, C, L)``; ``BH = B*h``; ``CP`` = C rounded up to a power of two (>= 16, masked).

Forward, three launches::

    _gram_kernel    split-K over L:  Gp[s] = q[:, chunk s] @ k[:, chunk s]^T,  qq[s] = sum q^2,  kk[s] = sum k^2
    _rows_kernel    per row i:       G = sum_s Gp[s];  cos = G / (max(|q_i|, eps) * max(|k_j|, eps));  A = cos * t_h
                                     topk:    rank_ij = #{j' : A_ij' > A_ij}              (rank counting, no sort)
                                              e_ij = exp(A_ij - max_j A_ij)
                                              M_ij = e_ij * sum_{b: rank_ij < k_b} w_b / sum_{j': rank_ij' < k_b} e_ij'
                                     relu:    M = max(A, 0);   softmax:  M = e / sum_j e
    _apply_kernel   out = M @ v                                      (ONE product with v for all four branches)

with ``k_b = topk_counts(C)`` and ``eps = 1e-12``. Entries tied with the k_b-th largest score are all kept
(``rank < k_b`` counts only strictly larger scores), the tie rule of :mod:`.torch_impl`. Every branch keeps the row
maximum (rank 0), so the shared shift by the row maximum is exact.

Backward (the L-long parts in Triton, the (C, C) algebra in torch from the saved ``cos`` and ``rank``)::

    dM = dout @ v^T                       (_gram_kernel)          dv = M^T @ dout                  (_apply_kernel)
    dcos, dt, dw = vjp of  M(cos * t, rank, w)                     (torch, (B, h, C, C) tensors)
    dG = dcos / (n_q n_k^T);  c_q = -sum_j dcos * cos / n_q^2  (0 where |q_i| <= eps), c_k likewise over i
    dq = dG @ k + c_q * q;    dk = dG^T @ q + c_k * k            (_apply_kernel with a diagonal term)

Products run in the input dtype with float32 accumulation; float32 products use IEEE fp32 unless
``torch.backends.cuda.matmul.allow_tf32`` is set (then TF32, like torch matmuls).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from restore.ops._backend import triton_interpreted
from restore.ops.sparse_channel_attention import torch_impl
from restore.ops.sparse_channel_attention.naive import topk_counts

_NORM_EPS = 1e-12
_MODE_IDS = {"topk": 0, "relu": 1, "softmax": 2}


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
def _gram_kernel(
    x_ptr, y_ptr, part_ptr, xsq_ptr, ysq_ptr,
    heads, channels, length, chunk,
    sxb, sxh, sxc, sxl, syb, syh, syc, syl,
    CP: tl.constexpr, BLOCK_L: tl.constexpr, WITH_NORMS: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (bh, s): partial ``x @ y^T`` over tokens ``[s*chunk, (s+1)*chunk)`` into ``part[s, bh]`` (CP, CP)
    fp32, and the partial row sums of squares of x and y into ``xsq[s, bh]``, ``ysq[s, bh]`` (CP,)."""
    bh = tl.program_id(0)
    split = tl.program_id(1)
    n_bh = tl.num_programs(0)
    b = (bh // heads).to(tl.int64)
    h = (bh % heads).to(tl.int64)
    rows = tl.arange(0, CP)
    row_ok = rows < channels
    toks = tl.arange(0, BLOCK_L)
    x_base = x_ptr + b * sxb + h * sxh + rows[:, None] * sxc
    y_base = y_ptr + b * syb + h * syh + rows[:, None] * syc
    acc = tl.zeros((CP, CP), dtype=tl.float32)
    xsq = tl.zeros((CP,), dtype=tl.float32)
    ysq = tl.zeros((CP,), dtype=tl.float32)
    start = split * chunk
    for offset in range(start, tl.minimum(start + chunk, length), BLOCK_L):
        tok = offset + toks
        ok = row_ok[:, None] & (tok < length)[None, :]
        xt = tl.load(x_base + tok[None, :].to(tl.int64) * sxl, mask=ok, other=0.0)
        yt = tl.load(y_base + tok[None, :].to(tl.int64) * syl, mask=ok, other=0.0)
        acc += _dot(xt, tl.trans(yt), PRECISION)
        if WITH_NORMS:
            xf = xt.to(tl.float32)
            yf = yt.to(tl.float32)
            xsq += tl.sum(xf * xf, axis=1)
            ysq += tl.sum(yf * yf, axis=1)
    slot = split * n_bh + bh
    tl.store(part_ptr + slot.to(tl.int64) * CP * CP + rows[:, None] * CP + rows[None, :], acc)
    if WITH_NORMS:
        tl.store(xsq_ptr + slot * CP + rows, xsq)
        tl.store(ysq_ptr + slot * CP + rows, ysq)


@triton.jit
def _add_branch(coef, rank, expo, col_ok, kept, weight):
    """Add one top-k branch to the per-entry coefficients: ``weight / (sum of kept exps)`` where ``rank < kept``."""
    keep = (rank < kept) & col_ok[None, :]
    total = tl.sum(tl.where(keep, expo, 0.0), axis=1)
    return coef + tl.where(keep, (weight / total)[:, None], 0.0)


@triton.jit
def _rows_kernel(
    part_ptr, xsq_ptr, ysq_ptr, temp_ptr, w_ptr, cos_ptr, rank_ptr, m_ptr,
    n_bh, heads, channels, splits, eps,
    K1, K2, K3, K4,
    MODE: tl.constexpr, CP: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """Program (bh, row block): reduce the split-K partials of BLOCK_R rows, normalise, scale by the temperature
    and build the rows of M (module docstring). Writes cos, rank (top-k only) and M, each (BH, C, C)."""
    bh = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, CP)
    row_ok = rows < channels
    col_ok = cols < channels
    gram = tl.zeros((BLOCK_R, CP), dtype=tl.float32)
    xsq = tl.zeros((BLOCK_R,), dtype=tl.float32)
    ysq = tl.zeros((CP,), dtype=tl.float32)
    for s in range(splits):
        slot = (s * n_bh + bh).to(tl.int64)
        gram += tl.load(part_ptr + slot * CP * CP + rows[:, None] * CP + cols[None, :], mask=row_ok[:, None],
                        other=0.0)
        xsq += tl.load(xsq_ptr + slot * CP + rows, mask=row_ok, other=0.0)
        ysq += tl.load(ysq_ptr + slot * CP + cols)
    x_norm = tl.maximum(tl.sqrt(xsq), eps)
    y_norm = tl.maximum(tl.sqrt(ysq), eps)
    cos = gram / (x_norm[:, None] * y_norm[None, :])
    temp = tl.load(temp_ptr + bh % heads).to(tl.float32)
    score = cos * temp
    ok = row_ok[:, None] & col_ok[None, :]
    out_offs = bh.to(tl.int64) * channels * channels + rows[:, None] * channels + cols[None, :]
    tl.store(cos_ptr + out_offs, cos, mask=ok)
    if MODE == 1:
        mat = tl.maximum(score, 0.0)
    else:
        score = tl.where(col_ok[None, :], score, float("-inf"))
        row_max = tl.max(score, axis=1)
        expo = tl.exp(score - row_max[:, None])  # 0 in the padded columns
        if MODE == 2:
            mat = expo / tl.sum(expo, axis=1)[:, None]
        else:
            # rank_ij = number of entries of row i strictly larger than A_ij (padded columns are -inf: never larger)
            larger = score[:, None, :] > score[:, :, None]  # (BLOCK_R, CP [j], CP [j'])
            rank = tl.sum(larger.to(tl.int32), axis=2)
            tl.store(rank_ptr + out_offs, rank, mask=ok)
            coef = tl.zeros((BLOCK_R, CP), dtype=tl.float32)
            coef = _add_branch(coef, rank, expo, col_ok, K1, tl.load(w_ptr + 0).to(tl.float32))
            coef = _add_branch(coef, rank, expo, col_ok, K2, tl.load(w_ptr + 1).to(tl.float32))
            coef = _add_branch(coef, rank, expo, col_ok, K3, tl.load(w_ptr + 2).to(tl.float32))
            coef = _add_branch(coef, rank, expo, col_ok, K4, tl.load(w_ptr + 3).to(tl.float32))
            mat = expo * coef
    tl.store(m_ptr + out_offs, mat, mask=ok)


@triton.jit
def _apply_kernel(
    m_ptr, x_ptr, out_ptr, y_ptr, diag_ptr,
    heads, channels, length,
    smbh, smr, smc,
    sxb, sxh, sxc, sxl, syb, syh, syc, syl,
    CP: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_L: tl.constexpr, HAS_DIAG: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Program (token block, bh): ``out = M @ x (+ diag[:, None] * y)`` for one (C, BLOCK_L) tile, summing over
    channel chunks of BLOCK_K. M is fp32 (BH, C, C) read through strides (a transpose is a stride swap); out is
    contiguous (B, h, C, L). Token blocks run along grid axis 0, the only one allowed more than 65535 programs."""
    bh = tl.program_id(1)
    tok = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    b = (bh // heads).to(tl.int64)
    h = (bh % heads).to(tl.int64)
    rows = tl.arange(0, CP)
    row_ok = rows < channels
    tok_ok = tok < length
    m_base = m_ptr + bh.to(tl.int64) * smbh + rows[:, None] * smr
    x_base = x_ptr + b * sxb + h * sxh + tok[None, :].to(tl.int64) * sxl
    acc = tl.zeros((CP, BLOCK_L), dtype=tl.float32)
    for k0 in range(0, CP, BLOCK_K):
        inner = k0 + tl.arange(0, BLOCK_K)
        inner_ok = inner < channels
        mat = tl.load(m_base + inner[None, :] * smc, mask=row_ok[:, None] & inner_ok[None, :], other=0.0)
        xt = tl.load(x_base + inner[:, None] * sxc, mask=inner_ok[:, None] & tok_ok[None, :], other=0.0)
        acc += _dot(mat.to(xt.dtype), xt, PRECISION)
    ok = row_ok[:, None] & tok_ok[None, :]
    if HAS_DIAG:
        yt = tl.load(y_ptr + b * syb + h * syh + rows[:, None] * syc + tok[None, :].to(tl.int64) * syl, mask=ok,
                     other=0.0)
        diag = tl.load(diag_ptr + bh.to(tl.int64) * channels + rows, mask=row_ok, other=0.0)
        acc += diag[:, None] * yt.to(tl.float32)
    tl.store(out_ptr + bh.to(tl.int64) * channels * length + rows[:, None].to(tl.int64) * length + tok[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=ok)


def _precision(dtype: torch.dtype) -> str:
    """``tl.dot`` mode: IEEE fp32 unless torch matmuls may use TF32; half inputs take the tensor-core path,
    except bfloat16 under the interpreter, which is multiplied as (exact) float32."""
    if dtype == torch.bfloat16 and triton_interpreted():
        return "fp32"
    return "ieee" if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32 else "tf32"


def _padded_channels(channels: int) -> int:
    return max(16, triton.next_power_of_2(channels))


def _gram_config(cp: int, dtype: torch.dtype) -> tuple[int, int]:
    """(tokens per step, warps) of ``_gram_kernel``, whose reduction runs over tokens. The (CP, CP) accumulator
    takes 8 warps; IEEE float32 products run on FMA units with whole operand rows per thread, so their steps stay
    at 16. Chosen to compile without register spills for sm_80 / sm_90 (checked with ptxas)."""
    if _precision(dtype) == "ieee" or cp > 64:
        return 16, 8
    return 32, 8


def _apply_config(cp: int, dtype: torch.dtype) -> tuple[int, int, int]:
    """(tokens per program, channel chunk of the reduction, warps) of ``_apply_kernel``; see ``_gram_config``."""
    if _precision(dtype) == "ieee":
        return 32, 16, 4
    return (64, min(cp, 64), 4) if cp <= 64 else (32, 64, 8)


def _splits(n_bh: int, length: int, block_l: int, device: torch.device) -> tuple[int, int]:
    """(number of L splits, tokens per split): about four programs per SM, but at least 1024 tokens per split so
    that writing a (CP, CP) partial stays cheap next to reading the split's tokens."""
    blocks = triton.cdiv(length, block_l)
    if device.type == "cuda":
        target = 4 * torch.cuda.get_device_properties(device).multi_processor_count
        wanted = max(1, min(blocks, triton.cdiv(target, n_bh), triton.cdiv(length, 1024)))
    else:
        wanted = blocks  # interpreter: exercise the split-K reduction
    chunk = triton.cdiv(blocks, wanted) * block_l
    return triton.cdiv(length, chunk), chunk


def _gram(x: torch.Tensor, y: torch.Tensor, with_norms: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split-K partials of ``x @ y^T`` over L: ``(S, BH, CP, CP)`` and, if asked, row sums of squares
    ``(S, BH, CP)`` of x and y (float32)."""
    batch, heads, channels, length = x.shape
    cp = _padded_channels(channels)
    block_l, warps = _gram_config(cp, x.dtype)
    splits, chunk = _splits(batch * heads, length, block_l, x.device)
    part = torch.empty(splits, batch * heads, cp, cp, device=x.device, dtype=torch.float32)
    shape_sq = (splits, batch * heads, cp) if with_norms else (1,)
    xsq = torch.empty(shape_sq, device=x.device, dtype=torch.float32)
    ysq = torch.empty(shape_sq, device=x.device, dtype=torch.float32)
    _gram_kernel[(batch * heads, splits)](
        x, y, part, xsq, ysq, heads, channels, length, chunk, *x.stride(), *y.stride(),
        CP=cp, BLOCK_L=block_l, WITH_NORMS=with_norms, PRECISION=_precision(x.dtype), num_warps=warps,
    )
    return part, xsq, ysq


def _apply(
    mat: torch.Tensor,
    x: torch.Tensor,
    *,
    transpose: bool = False,
    diag: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """``M @ x`` (or ``M^T @ x``) plus ``diag[..., None] * y``: M float32 ``(B, h, C, C)`` contiguous,
    x/y ``(B, h, C, L)``, diag float32 ``(B, h, C)`` contiguous; result contiguous in x's dtype."""
    batch, heads, channels, length = x.shape
    cp = _padded_channels(channels)
    block_l, block_k, warps = _apply_config(cp, x.dtype)
    out = torch.empty(batch, heads, channels, length, device=x.device, dtype=x.dtype)
    smr, smc = (1, channels) if transpose else (channels, 1)
    has_diag = diag is not None
    y = y if has_diag else x
    _apply_kernel[(triton.cdiv(length, block_l), batch * heads)](
        mat, x, out, y, diag if has_diag else mat, heads, channels, length,
        channels * channels, smr, smc, *x.stride(), *y.stride(),
        CP=cp, BLOCK_K=block_k, BLOCK_L=block_l, HAS_DIAG=has_diag, PRECISION=_precision(x.dtype), num_warps=warps,
    )
    return out


def _combine(scores: torch.Tensor, mode: str, rank: torch.Tensor | None, weights: torch.Tensor | None) -> torch.Tensor:
    """Torch form of the rows kernel's M (used for the backward): scores float32 ``(B, h, C, C)``."""
    if mode == "relu":
        return torch.relu(scores)
    expo = torch.exp(scores - scores.detach().amax(dim=-1, keepdim=True))
    if mode == "softmax":
        return expo / expo.sum(dim=-1, keepdim=True)
    coef = None
    for branch, kept in enumerate(topk_counts(scores.shape[-1])):
        keep = (rank < kept).to(scores.dtype)
        term = keep * (weights[branch] / (expo * keep).sum(dim=-1, keepdim=True))
        coef = term if coef is None else coef + term
    return expo * coef


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor, mode: str) -> None:
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"sparse_channel_attention.triton_impl: q, k, v must share one (B, h, C, L) shape, got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"sparse_channel_attention.triton_impl: q, k, v must share a float32/float16/bfloat16 "
                         f"dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if temperature.numel() != q.shape[1]:
        raise ValueError(f"sparse_channel_attention.triton_impl: temperature must hold h={q.shape[1]} values, got "
                         f"{temperature.numel()}")
    if mode not in _MODE_IDS:
        raise ValueError(f"sparse_channel_attention.triton_impl: mode must be one of {', '.join(_MODE_IDS)}, got "
                         f"{mode!r}")


def channel_attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor, mode: str,
    weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward launchers. Returns ``(out, cos, rank, M, n_q, n_k)``: out ``(B, h, C, L)`` in v's dtype; cos and M
    float32 ``(B, h, C, C)``; rank int32 ``(B, h, C, C)`` (top-k only, else None); the clamped norms float32
    ``(B, h, C)``."""
    batch, heads, channels, _ = q.shape
    cp = _padded_channels(channels)
    part, qsq, ksq = _gram(q, k, with_norms=True)
    cos = torch.empty(batch, heads, channels, channels, device=q.device, dtype=torch.float32)
    mat = torch.empty_like(cos)
    rank = torch.empty(cos.shape, device=q.device, dtype=torch.int32) if mode == "topk" else None
    temp = temperature.reshape(-1).contiguous()
    wvec = weights.reshape(-1).contiguous() if mode == "topk" else temp
    counts = topk_counts(channels) if mode == "topk" else (0, 0, 0, 0)
    block_r = max(1, min(16, triton.next_power_of_2(channels), 16384 // (cp * cp)))
    _rows_kernel[(batch * heads, triton.cdiv(channels, block_r))](
        part, qsq, ksq, temp, wvec, cos, rank if rank is not None else cos, mat,
        batch * heads, heads, channels, part.shape[0], _NORM_EPS, *counts,
        MODE=_MODE_IDS[mode], CP=cp, BLOCK_R=block_r, num_warps=4,
    )
    out = _apply(mat, v)
    q_norm = qsq.sum(0)[:, :channels].sqrt().clamp_min(_NORM_EPS).view(batch, heads, channels)
    k_norm = ksq.sum(0)[:, :channels].sqrt().clamp_min(_NORM_EPS).view(batch, heads, channels)
    return out, cos, rank, mat, q_norm, k_norm


class _ChannelAttentionFn(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v and the small (C, C) tensors; no (C, L) intermediates."""

    @staticmethod
    def forward(ctx, q, k, v, temperature, weights, mode):
        out, cos, rank, mat, q_norm, k_norm = channel_attention_forward(q, k, v, temperature, mode, weights)
        ctx.mode = mode
        ctx.save_for_backward(q, k, v, temperature, weights, cos, rank, mat, q_norm, k_norm)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, temperature, weights, cos, rank, mat, q_norm, k_norm = ctx.saved_tensors
        need_q, need_k, need_v, need_t, need_w, _ = ctx.needs_input_grad
        grad_out = grad_out.to(v.dtype)
        grad_q = grad_k = grad_v = grad_t = grad_w = None
        if need_v:
            grad_v = _apply(mat, grad_out, transpose=True)
        if not (need_q or need_k or need_t or need_w):
            return grad_q, grad_k, grad_v, grad_t, grad_w, None
        channels = q.shape[2]
        part, _, _ = _gram(grad_out, v, with_norms=False)
        grad_mat = part.sum(0)[:, :channels, :channels].view_as(cos)
        with torch.enable_grad():
            cos_leaf = cos.detach().requires_grad_(need_q or need_k)
            temp_leaf = temperature.detach().float().view(1, -1, 1, 1).requires_grad_(need_t)
            w_leaf = weights.detach().float().requires_grad_(need_w) if weights is not None else None
            leaves = [t for t in (cos_leaf, temp_leaf, w_leaf) if t is not None and t.requires_grad]
            mat_again = _combine(cos_leaf * temp_leaf, ctx.mode, rank, w_leaf)
            grads = iter(torch.autograd.grad(mat_again, leaves, grad_mat))
        grad_cos = next(grads) if cos_leaf.requires_grad else None
        if need_t:
            grad_t = next(grads).view_as(temperature).to(temperature.dtype)
        if need_w:
            grad_w = next(grads).view_as(weights).to(weights.dtype)
        if grad_cos is not None:
            grad_gram = (grad_cos / (q_norm[..., :, None] * k_norm[..., None, :])).contiguous()
            weighted = grad_cos * cos
            q_active = q_norm > _NORM_EPS
            k_active = k_norm > _NORM_EPS
            q_diag = torch.where(q_active, -weighted.sum(-1) / q_norm.square(), 0.0).contiguous()
            k_diag = torch.where(k_active, -weighted.sum(-2) / k_norm.square(), 0.0).contiguous()
            if need_q:
                grad_q = _apply(grad_gram, k, diag=q_diag, y=q)
            if need_k:
                grad_k = _apply(grad_gram, q, transpose=True, diag=k_diag, y=k)
        return grad_q, grad_k, grad_v, grad_t, grad_w, None


def sparse_channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    *,
    mode: str,
    topk_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triton backend of :func:`restore.ops.sparse_channel_attention` (modes ``topk``, ``relu``, ``softmax``).

    Args:
        q, k, v: ``(B, h, C, L)``, one dtype of float32 / float16 / bfloat16, CUDA (or CPU under
            ``TRITON_INTERPRET=1``); any strides.
        temperature: ``h`` values (e.g. ``(h, 1, 1)``).
        mode: ``"topk"``, ``"relu"`` or ``"softmax"``.
        topk_weights: ``(4,)`` branch weights for ``"topk"``.

    Returns:
        ``(B, h, C, L)`` in v's dtype; differentiable with respect to q, k, v, temperature and topk_weights.
        Float64 inputs run on the torch backend (the kernels cover float32 / float16 / bfloat16).
    """
    if q.dtype == torch.float64:
        return torch_impl.sparse_channel_attention(q, k, v, temperature, mode=mode, topk_weights=topk_weights)
    _check(q, k, v, temperature, mode)
    if mode == "topk" and (topk_weights is None or topk_weights.numel() != 4):
        raise ValueError("sparse_channel_attention.triton_impl: mode='topk' needs a (4,) topk_weights tensor")
    weights = topk_weights.reshape(4) if mode == "topk" else None
    return _ChannelAttentionFn.apply(q, k, v, temperature, weights, mode)
