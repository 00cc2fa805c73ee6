"""Pixel-space losses with BasicSR's names, arguments and reduction semantics.

Every loss maps ``(pred, target[, weight])`` with shapes (B, C, H, W) to ``loss_weight * reduce(elementwise)``.
"""

from __future__ import annotations

import torch
from torch import nn

from restore.losses.reduction import check_reduction, reduce_loss
from restore.utils.registry import LOSS_REGISTRY


class _ElementwiseLoss(nn.Module):
    """Shared constructor and ``forward`` of the element-wise losses; subclasses define ``elementwise``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.reduction = check_reduction(reduction, type(self).__name__)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Args: pred, target (B, C, H, W) float; weight (B, 1 or C, H, W) or None. Returns a scalar (or a map)."""
        if pred.shape != target.shape:
            raise ValueError(f"{type(self).__name__}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        return self.loss_weight * reduce_loss(self.elementwise(pred, target), weight, self.reduction)


@LOSS_REGISTRY.register()
class L1Loss(_ElementwiseLoss):
    """Mean absolute error ``|pred - target|``."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


@LOSS_REGISTRY.register()
class MSELoss(_ElementwiseLoss):
    """Mean squared error ``(pred - target)^2``."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).square()


@LOSS_REGISTRY.register()
class CharbonnierLoss(_ElementwiseLoss):
    """Charbonnier (smooth L1) loss ``sqrt((pred - target)^2 + eps)``, as in BasicSR (note: ``eps``, not ``eps^2``).

    Args:
        loss_weight: multiplier of the reduced loss. Default: 1.
        reduction: ``none`` | ``mean`` | ``sum``. Default: ``mean``.
        eps: added under the square root. Default: 1e-12.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = float(eps)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target).square() + self.eps)
