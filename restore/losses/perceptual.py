"""Perceptual loss through LPIPS (Zhang et al., 2018), available when the optional ``lpips`` package is installed.

``lpips`` builds on torchvision backbones, which ``restore`` does not depend on; without the package the loss
raises a one-line ``ImportError`` saying how to install it when it is built (before training starts).
"""

from __future__ import annotations

import torch
from torch import nn

from restore.losses.reduction import check_reduction
from restore.metrics.perceptual import import_lpips
from restore.utils.registry import LOSS_REGISTRY

BACKBONES = ("alex", "vgg", "squeeze")


@LOSS_REGISTRY.register()
class LPIPSLoss(nn.Module):
    """``loss_weight * reduce(LPIPS(pred, target))`` on images in [0, 1] (rescaled to [-1, 1] for LPIPS).

    The LPIPS network is frozen (no gradients to its weights, always in eval mode); gradients flow to ``pred``.

    Args:
        loss_weight: multiplier of the reduced loss. Default: 1.
        net: LPIPS backbone, ``alex`` | ``vgg`` | ``squeeze``. Default: ``alex``.
        reduction: ``none`` (per-image (B,) distances) | ``mean`` | ``sum`` over the batch. Default: ``mean``.
        pnet_rand: random backbone weights instead of torchvision's pretrained ones (no download; for tests).
    """

    def __init__(
        self, loss_weight: float = 1.0, net: str = "alex", reduction: str = "mean", pnet_rand: bool = False
    ) -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"LPIPSLoss: net must be one of {', '.join(BACKBONES)}, got {net!r}")
        self.loss_weight = float(loss_weight)
        self.reduction = check_reduction(reduction, "LPIPSLoss")
        try:
            lpips = import_lpips()
        except ImportError as err:
            raise ImportError(f"LPIPSLoss: {err} (or remove train.perceptual_opt)") from None
        extra = {"pnet_rand": True} if pnet_rand else {}
        self.metric = lpips.LPIPS(net=net, verbose=False, **extra)
        self.metric.eval()
        for param in self.metric.parameters():
            param.requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSLoss:
        super().train(mode)
        self.metric.eval()  # the LPIPS network never leaves eval mode
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target (B, 3, H, W) RGB float in [0, 1]. Returns a scalar (or (B,) for ``none``)."""
        if pred.shape != target.shape:
            raise ValueError(f"LPIPSLoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        dist = self.metric(pred.float() * 2 - 1, target.float() * 2 - 1).reshape(pred.shape[0])
        if self.reduction == "mean":
            dist = dist.mean()
        elif self.reduction == "sum":
            dist = dist.sum()
        return self.loss_weight * dist
