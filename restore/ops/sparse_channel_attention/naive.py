"""Reference channel ("transposed") attention, written as the published models compute it.

Every branch is evaluated separately and materialised: four ``topk`` + ``scatter`` masks, four softmaxes and four
products with ``v`` for the top-k mix. This is the oracle for the fast paths and the baseline of the benchmarks.

Shapes: q, k, v ``(B, h, C, L)`` with h heads, C channels per head and L = H*W tokens; the attention matrix
is ``(B, h, C, C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Fractions of C kept by the four top-k branches; each count is ``int(C * fraction)`` evaluated as a Python float.
TOPK_FRACTIONS = ((1, 2), (2, 3), (3, 4), (4, 5))


def topk_counts(channels: int) -> tuple[int, int, int, int]:
    """Entries kept per attention row by the four branches: ``int(C/2), int(2C/3), int(3C/4), int(4C/5)``.

    The products are formed as ``C * num / den`` in floating point and truncated, e.g. C = 48 -> (24, 32, 36, 38),
    C = 8 -> (4, 5, 6, 6).
    """
    return tuple(int(channels * num / den) for num, den in TOPK_FRACTIONS)  # type: ignore[return-value]


def channel_scores(q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """``normalize(q) @ normalize(k)^T * temperature``: (B, h, C, L) x2 -> (B, h, C, C)."""
    q = F.normalize(q, dim=-1)
    k = F.normalize(k, dim=-1)
    return (q @ k.transpose(-2, -1)) * temperature


def topk_mix(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor, topk_weights: torch.Tensor
) -> torch.Tensor:
    """Weighted sum of four masked-softmax attentions keeping the top ``topk_counts(C)`` scores of every row."""
    attn = channel_scores(q, k, temperature)
    batch, heads, channels, _ = attn.shape
    out = None
    for branch, kept in enumerate(topk_counts(channels)):
        mask = torch.zeros(batch, heads, channels, channels, device=attn.device, dtype=attn.dtype)
        index = torch.topk(attn, k=kept, dim=-1, largest=True)[1]
        mask.scatter_(-1, index, 1.0)
        masked = torch.where(mask > 0, attn, torch.full_like(attn, float("-inf")))
        term = (masked.softmax(dim=-1) @ v) * topk_weights[branch]
        out = term if out is None else out + term
    return out


def dense(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor, mode: str
) -> torch.Tensor:
    """Unmasked attention ``act(scores) @ v`` for the activation named by ``mode``."""
    attn = channel_scores(q, k, temperature)
    if mode == "softmax":
        attn = attn.softmax(dim=-1)
    elif mode == "relu":
        attn = F.relu(attn)
    elif mode == "gelu":
        attn = F.gelu(attn)
    elif mode == "sigmoid":
        attn = torch.sigmoid(attn)
    elif mode != "linear":
        raise ValueError(f"sparse_channel_attention: unknown mode {mode!r}")
    return attn @ v


def sparse_channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    *,
    mode: str,
    topk_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Naive backend of :func:`restore.ops.sparse_channel_attention`; arguments already validated."""
    if mode == "topk":
        return topk_mix(q, k, v, temperature, topk_weights)
    return dense(q, k, v, temperature, mode)
