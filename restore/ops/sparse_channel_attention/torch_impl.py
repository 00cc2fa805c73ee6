"""Fast exact PyTorch path for channel attention (any device, autograd through plain tensor ops).

Differences from :mod:`.naive`, all exact up to float rounding:

* ``normalize(q) @ normalize(k)^T`` is computed as ``(q @ k^T) / (|q| |k|^T)``: no normalised copies of the
  (B, h, C, L) tensors, only the (B, h, C, 1) norms (clamped at 1e-12 like ``F.normalize``).
* The top-k mix is linear in the four masked softmaxes, so it is folded into ONE (C, C) matrix
  ``M = sum_i w_i * softmax_i`` and ONE product ``M @ v`` (instead of four). The four row thresholds come from
  one descending sort per row; the masks are ``score >= threshold``. Every softmax is taken relative to the row
  maximum, which every branch keeps.
* For float16 / bfloat16 inputs the (C, C) part (norms, scaling, thresholds, exponentials) runs in float32 and
  only the two large products run in the input dtype; float16 inputs are normalised before ``q @ k^T`` (raw dot
  products over many tokens can exceed the float16 range).

Tie rule (top-k): an entry is kept by the branch keeping ``kk`` entries when its score is ``>=`` the kk-th largest
score of its row, so entries tied with the kk-th largest are all kept (the branch then keeps more than kk entries).
``torch.topk`` in the reference picks among tied entries arbitrarily; both agree whenever the kk-th and (kk+1)-th
largest scores differ.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from restore.ops.sparse_channel_attention.naive import topk_counts

_NORM_EPS = 1e-12  # F.normalize's default


def channel_scores(q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Scaled cosine similarities between the channels of q and k.

    Args:
        q, k: ``(B, h, C, L)``, any float dtype.
        temperature: ``(h, 1, 1)``.

    Returns:
        ``(B, h, C, C)`` float32 for half inputs, otherwise in the input dtype.
    """
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    q_norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True, dtype=work).clamp_min(_NORM_EPS)
    k_norm = torch.linalg.vector_norm(k, dim=-1, keepdim=True, dtype=work).clamp_min(_NORM_EPS)
    if q.dtype == torch.float16:  # raw dot products may exceed the float16 range: normalise first
        q_unit = q * q_norm.reciprocal().to(q.dtype)
        k_unit = k * k_norm.reciprocal().to(k.dtype)
        return (q_unit @ k_unit.transpose(-2, -1)).to(work) * temperature.to(work)
    scores = (q @ k.transpose(-2, -1)).to(work)
    return scores / (q_norm * k_norm.transpose(-2, -1)) * temperature.to(work)


#: ``select(scores, kept, threshold, mask) -> mask``: replaces the boolean mask of the branch keeping ``kept``
#: entries per row (``mask = scores >= threshold``); used to replay another runtime's selections.
TopkSelect = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor], torch.Tensor]


def topk_mix_matrix(
    scores: torch.Tensor, topk_weights: torch.Tensor, select: TopkSelect | None = None
) -> torch.Tensor:
    """Fold the four masked softmaxes of the top-k mix into one matrix.

    Args:
        scores: ``(B, h, C, C)`` scaled scores (C >= 2).
        topk_weights: ``(4,)`` weights of the branches keeping ``topk_counts(C)`` entries per row.
        select: optional override of each branch's selection mask (:data:`TopkSelect`); ``None`` keeps every
            entry at least the branch's k-th largest score of its row.

    Returns:
        ``M`` with ``M @ v == sum_i topk_weights[i] * softmax(scores masked to the top-k_i of each row) @ v``,
        same shape and dtype as ``scores``.
    """
    counts = topk_counts(scores.shape[-1])
    ranked = scores.detach().sort(dim=-1, descending=True).values  # one sort per row gives all four thresholds
    expo = torch.exp(scores - ranked[..., :1])  # relative to the row maximum, which every branch keeps
    weights = topk_weights.to(scores.dtype)
    coeff = None
    for branch, kept in enumerate(counts):
        threshold = ranked[..., kept - 1 : kept]
        mask = scores >= threshold
        if select is not None:
            mask = select(scores, kept, threshold, mask)
        mask = mask.to(scores.dtype)
        total = (expo * mask).sum(dim=-1, keepdim=True)
        term = mask * (weights[branch] / total)
        coeff = term if coeff is None else coeff + term
    return expo * coeff


def attention_matrix(scores: torch.Tensor, mode: str, topk_weights: torch.Tensor | None) -> torch.Tensor:
    """The (B, h, C, C) matrix that multiplies v for ``mode``."""
    if mode == "topk":
        return topk_mix_matrix(scores, topk_weights)
    if mode == "relu":
        return F.relu(scores)
    if mode == "softmax":
        return scores.softmax(dim=-1)
    if mode == "gelu":
        return F.gelu(scores)
    if mode == "sigmoid":
        return torch.sigmoid(scores)
    if mode == "linear":
        return scores
    raise ValueError(f"sparse_channel_attention: unknown mode {mode!r}")


def sparse_channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    *,
    mode: str,
    topk_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Torch backend of :func:`restore.ops.sparse_channel_attention`; arguments already validated."""
    matrix = attention_matrix(channel_scores(q, k, temperature), mode, topk_weights)
    return matrix.to(v.dtype) @ v
