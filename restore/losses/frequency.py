"""Frequency-domain loss: L1 distance between the 2-D Fourier transforms of prediction and target."""

from __future__ import annotations

import torch
from torch import nn

from restore.losses.reduction import check_reduction, reduce_loss
from restore.utils.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class FFTLoss(nn.Module):
    """``loss_weight * reduce(|Re F(pred) - Re F(target)|, |Im F(pred) - Im F(target)|)``.

    ``F`` is the unnormalised 2-D DFT over (H, W) (``torch.fft.fft2``), computed in float32 even under autocast.
    With ``reduction='mean'`` the mean runs over the (B, C, H, W, 2) stack of real and imaginary differences.

    Args:
        loss_weight: multiplier of the reduced loss. Default: 1.
        reduction: ``none`` (returns the (B, C, H, W, 2) map) | ``mean`` | ``sum``. Default: ``mean``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.reduction = check_reduction(reduction, "FFTLoss")

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target (B, C, H, W) float. Returns a scalar (or the map for ``reduction='none'``)."""
        if pred.shape != target.shape:
            raise ValueError(f"FFTLoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        diff = torch.fft.fft2(pred.float() - target.float(), dim=(-2, -1))  # F is linear: F(p) - F(t) = F(p - t)
        elementwise = torch.stack([diff.real.abs(), diff.imag.abs()], dim=-1)
        return self.loss_weight * reduce_loss(elementwise, None, self.reduction)
