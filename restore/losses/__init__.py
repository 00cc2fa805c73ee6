"""Training losses, registered in ``LOSS_REGISTRY`` under BasicSR's names; ``build_loss`` builds one from options.

Registered: ``L1Loss``, ``MSELoss``, ``CharbonnierLoss`` (pixel), ``FFTLoss`` (frequency), ``LPIPSLoss``
(perceptual, needs the optional ``lpips`` package), ``PerceptualLoss`` (VGG features, needs the VGG weights file),
``GANLoss`` (adversarial).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from restore.losses.frequency import FFTLoss
from restore.losses.gan import GANLoss
from restore.losses.perceptual import LPIPSLoss
from restore.losses.perceptual_vgg import PerceptualLoss
from restore.losses.pixel import CharbonnierLoss, L1Loss, MSELoss
from restore.utils.registry import LOSS_REGISTRY

__all__ = [
    "LOSS_REGISTRY",
    "CharbonnierLoss",
    "FFTLoss",
    "GANLoss",
    "L1Loss",
    "LPIPSLoss",
    "MSELoss",
    "PerceptualLoss",
    "build_loss",
]

#: Official loss names that ``restore`` deliberately does not provide, with what to use instead.
UNSUPPORTED = {
    "MultiScaleGANLoss": "only single-scale discriminators are provided; use type GANLoss",
}


def build_loss(opt: Mapping[str, Any], where: str = "loss") -> nn.Module:
    """Build a loss from ``{'type': name, **kwargs}`` (e.g. ``train.pixel_opt``); ``opt`` is not modified.

    Raises:
        KeyError: unknown ``type`` (lists the registered losses) or a known-unsupported official one (says why).
        TypeError: a keyword the loss does not take (names it).
    """
    if "type" not in opt:
        raise KeyError(f"{where}: missing 'type' (one of: {', '.join(LOSS_REGISTRY.keys())})")
    name = opt["type"]
    if name in UNSUPPORTED and name not in LOSS_REGISTRY:
        raise KeyError(f"{where}.type: {name} is not supported: {UNSUPPORTED[name]}")
    cls = LOSS_REGISTRY.get(name)
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise TypeError(f"{where}: {name}: {err}") from None
