"""VGG perceptual and style loss with BasicSR's ``PerceptualLoss`` names, arguments and return values.

Needs torchvision-format VGG weights on disk (see ``restore.archs.vgg``); a missing file is reported when the loss
is built, i.e. before training starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from restore.archs.vgg import VGGFeatureExtractor
from restore.utils.registry import LOSS_REGISTRY

CRITERIA = ("l1", "l2", "fro")


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrices ``F F^T / (C H W)``, in float32 at least."""
    b, c, h, w = feat.shape
    flat = feat.reshape(b, c, h * w)
    flat = flat if flat.dtype == torch.float64 else flat.float()
    return flat @ flat.transpose(1, 2) / (c * h * w)


@LOSS_REGISTRY.register()
class PerceptualLoss(nn.Module):
    """Weighted distances between VGG features (perceptual) and their Gram matrices (style).

    ``percep = perceptual_weight * sum_l w_l * crit(F_l(x), F_l(gt))`` and
    ``style = style_weight * sum_l w_l * crit(G(F_l(x)), G(F_l(gt)))``, where ``crit`` is the mean absolute
    (``l1``) or squared (``l2``) error, or the Frobenius norm of the whole difference (``fro``).

    Args:
        layer_weights: ``{layer name: weight}``, e.g. ``{'conv5_4': 1.0}`` (features before ``relu5_4``).
        vgg_type: VGG variant. Default: ``vgg19``.
        use_input_norm: ImageNet mean/std normalisation of [0, 1] input. Default: True.
        range_norm: map [-1, 1] input to [0, 1] first. Default: False.
        perceptual_weight: weight of the perceptual term; <= 0 disables it (returned as None). Default: 1.
        style_weight: weight of the style term; <= 0 disables it (returned as None). Default: 0.
        criterion: ``l1``, ``l2`` or ``fro``. Default: ``l1``.
        vgg_weights: VGG weights file (else ``$RESTORE_VGG_WEIGHTS``, else
            ``experiments/pretrained_models/vgg19-dcbb9e9d.pth``).
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float],
        vgg_type: str = "vgg19",
        use_input_norm: bool = True,
        range_norm: bool = False,
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: str = "l1",
        vgg_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if criterion not in CRITERIA:
            raise ValueError(f"PerceptualLoss: criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
        self.layer_weights = {str(k): float(v) for k, v in dict(layer_weights).items()}
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        self.criterion_type = criterion
        self.vgg = VGGFeatureExtractor(
            layer_name_list=list(self.layer_weights),
            vgg_type=vgg_type,
            use_input_norm=use_input_norm,
            range_norm=range_norm,
            vgg_weights=vgg_weights,
        )

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dtype in (torch.float16, torch.bfloat16):  # features from an autocast region: compare in float32
            a, b = a.float(), b.float()
        if self.criterion_type == "fro":
            return torch.linalg.vector_norm(a - b)
        return F.l1_loss(a, b) if self.criterion_type == "l1" else F.mse_loss(a, b)

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Args: x (B, 3, H, W) prediction (gradients flow to it); gt (B, 3, H, W) target (never differentiated).

        Returns:
            ``(percep, style)`` scalars (float32 at least, also under autocast), each None when its weight is 0.
        """
        x_feats = self.vgg(x)
        with torch.no_grad():
            gt_feats = self.vgg(gt.detach())
        percep = style = None
        if self.perceptual_weight > 0:
            terms = [self._distance(x_feats[k], gt_feats[k]) * w for k, w in self.layer_weights.items()]
            percep = sum(terms) * self.perceptual_weight
        if self.style_weight > 0:
            terms = [
                self._distance(gram_matrix(x_feats[k]), gram_matrix(gt_feats[k])) * w
                for k, w in self.layer_weights.items()
            ]
            style = sum(terms) * self.style_weight
        return percep, style
