"""The weighted sum of the training losses named in ``train.pixel_opt``, ``perceptual_opt`` and ``fft_opt``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from restore.losses import build_loss

#: ``train`` option key -> name under which the term is logged (BasicSR's ``l_pix``/``l_percep``).
TERMS = {"pixel_opt": "l_pix", "perceptual_opt": "l_percep", "fft_opt": "l_fft"}


class Criteria(nn.Module):
    """``total = sum of the configured losses`` (each already scaled by its own ``loss_weight``).

    A loss returning a ``(perceptual, style)`` pair (BasicSR's perceptual loss convention) contributes both,
    logged as ``l_percep`` and ``l_style``; ``None`` parts are skipped.
    """

    def __init__(self, train_opt: Mapping[str, Any]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict()
        for key, name in TERMS.items():
            if train_opt.get(key):
                self.terms[name] = build_loss(train_opt[key], where=f"train.{key}")
        if not self.terms:
            raise ValueError(f"train: no loss configured; set at least one of {', '.join(TERMS)}")

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: output, target (B, C, H, W) float32. Returns ``(total, {name: term})`` (scalars)."""
        parts: dict[str, torch.Tensor] = {}
        for name, loss in self.terms.items():
            value = loss(output, target)
            if isinstance(value, tuple):
                for part_name, part in zip((name, "l_style"), value):
                    if part is not None:
                        parts[part_name] = part
            else:
                parts[name] = value
        total = torch.stack(list(parts.values())).sum()
        return total, parts
