"""Exponential moving average of a network's weights (BasicSR's ``net_g_ema``, saved as ``params_ema``)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def bare_module(net: nn.Module) -> nn.Module:
    """Unwrap DistributedDataParallel/DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(getattr(net, "_orig_mod", None), nn.Module):
            net = net._orig_mod
        elif isinstance(getattr(net, "module", None), nn.Module):
            net = net.module
        else:
            return net


def make_ema(net: nn.Module) -> nn.Module:
    """A frozen deep copy of ``bare_module(net)`` in eval mode, on the same device."""
    ema = copy.deepcopy(bare_module(net))
    ema.eval()
    for param in ema.parameters():
        param.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """``ema_p <- decay * ema_p + (1 - decay) * p`` for every parameter; buffers are copied from ``net``.

    ``decay = 0`` copies the weights. Parameters are matched by name, so ``net`` may be wrapped (DDP, compile).
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"train.ema_decay: expected 0 <= decay < 1, got {decay}")
    source = bare_module(net)
    src_params = dict(source.named_parameters())
    ema_params, new_params = [], []
    for name, param in ema.named_parameters():
        ema_params.append(param)
        new_params.append(src_params[name].detach())
    torch._foreach_mul_(ema_params, decay)
    torch._foreach_add_(ema_params, new_params, alpha=1.0 - decay)
    src_buffers = dict(source.named_buffers())
    for name, buffer in ema.named_buffers():
        buffer.copy_(src_buffers[name])
