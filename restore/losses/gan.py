"""Adversarial loss with BasicSR's ``GANLoss`` names, arguments and return values."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from restore.utils.registry import LOSS_REGISTRY

GAN_TYPES = ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")


@LOSS_REGISTRY.register()
class GANLoss(nn.Module):
    """Loss on discriminator outputs ``pred`` (logits, any shape), for the real or the fake target.

    ============== ===================================== ===========================================
    gan_type       discriminator (``is_disc=True``)       generator
    ============== ===================================== ===========================================
    vanilla        BCE-with-logits vs. the label          same, times ``loss_weight``
    lsgan          MSE vs. the label                      same, times ``loss_weight``
    wgan           ``-mean(pred)`` real, ``mean`` fake    same, times ``loss_weight``
    wgan_softplus  ``mean softplus(-pred)`` / ``(pred)``  same, times ``loss_weight``
    hinge          ``mean relu(1 - pred)`` / ``(1+pred)`` ``-mean(pred)`` (any target), times weight
    ============== ===================================== ===========================================

    The label is ``real_label_val`` or ``fake_label_val``; ``loss_weight`` only scales the generator's loss.

    Args:
        gan_type: one of ``vanilla``, ``lsgan``, ``wgan``, ``wgan_softplus``, ``hinge``.
        real_label_val: target for real samples (vanilla, lsgan). Default: 1.
        fake_label_val: target for fake samples (vanilla, lsgan). Default: 0.
        loss_weight: multiplier of the generator loss. Default: 1.
    """

    def __init__(
        self, gan_type: str, real_label_val: float = 1.0, fake_label_val: float = 0.0, loss_weight: float = 1.0
    ) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(f"GANLoss: gan_type must be one of {', '.join(GAN_TYPES)}, got {gan_type!r}")
        self.gan_type = gan_type
        self.real_label_val, self.fake_label_val = float(real_label_val), float(fake_label_val)
        self.loss_weight = float(loss_weight)

    def forward(self, input: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        """Args: input: discriminator logits; target_is_real: real or fake target; is_disc: loss for the
        discriminator (not weighted) or for the generator. Returns a scalar."""
        pred = input
        if self.gan_type in ("vanilla", "lsgan"):
            label = torch.full_like(pred, self.real_label_val if target_is_real else self.fake_label_val)
            fn = F.binary_cross_entropy_with_logits if self.gan_type == "vanilla" else F.mse_loss
            loss = fn(pred, label)
        elif self.gan_type == "wgan":
            loss = -pred.mean() if target_is_real else pred.mean()
        elif self.gan_type == "wgan_softplus":
            loss = F.softplus(-pred).mean() if target_is_real else F.softplus(pred).mean()
        elif is_disc:  # hinge
            loss = F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()
        else:
            loss = -pred.mean()
        return loss if is_disc else loss * self.loss_weight
