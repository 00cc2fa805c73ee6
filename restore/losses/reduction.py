"""Element-wise loss reduction with optional per-pixel weights (BasicSR's ``reduction``/``weight`` semantics)."""

from __future__ import annotations

import torch

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, owner: str) -> str:
    """Return ``reduction`` if it is one of ``none``/``mean``/``sum``; raise a one-line ``ValueError`` otherwise."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{owner}: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    return reduction


def reduce_loss(loss: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Apply an optional element-wise ``weight`` to ``loss`` and reduce it.

    Args:
        loss: element-wise loss, (B, C, H, W) or any shape.
        weight: broadcastable weights of the same rank, with 1 or ``C`` channels; ``None`` for uniform.
        reduction: ``none`` (return the weighted map), ``sum``, or ``mean``. With weights, ``mean`` divides the
            weighted sum by the total weight (counted per channel when ``weight`` has one channel), i.e. the mean
            over the weighted region.

    Returns:
        A scalar tensor, or the (weighted) loss map for ``none``.
    """
    if weight is not None:
        if weight.dim() != loss.dim() or weight.size(1) not in (1, loss.size(1)):
            raise ValueError(
                f"loss weight: expected shape with {loss.dim()} dims and 1 or {loss.size(1)} channels, "
                f"got {tuple(weight.shape)}"
            )
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean()
    total = weight.sum() if weight.size(1) > 1 else weight.sum() * loss.size(1)
    return loss.sum() / total
