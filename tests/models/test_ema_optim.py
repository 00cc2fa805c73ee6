"""EMA arithmetic and optimizer construction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restore.models.ema import bare_module, make_ema, update_ema
from restore.models.optim import build_optimizer


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net[1].running_mean.uniform_()
    return net


def test_ema_update_formula_and_buffer_copy() -> None:
    net = _net(0)
    ema = make_ema(net)
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
    start = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
        net[1].running_mean.add_(1.0)
    decay = 0.9
    update_ema(ema, net, decay)
    for name, param in net.named_parameters():
        want = decay * start[name] + (1 - decay) * param.detach()
        torch.testing.assert_close(ema.state_dict()[name], want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ema[1].running_mean, net[1].running_mean, rtol=0, atol=0)
    update_ema(ema, net, 0.0)  # decay 0 copies
    for name, param in net.named_parameters():
        torch.testing.assert_close(ema.state_dict()[name], param.detach(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="ema_decay"):
        update_ema(ema, net, 1.0)


def test_ema_reads_through_wrappers() -> None:
    net = _net(1)

    class Wrapper(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    wrapped = Wrapper(net)
    assert bare_module(wrapped) is net
    ema = make_ema(wrapped)
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    update_ema(ema, wrapped, 0.5)
    assert set(ema.state_dict()) == set(net.state_dict())


def test_build_optimizer() -> None:
    params = list(_net(2).parameters())
    opt = build_optimizer(params, {"type": "AdamW", "lr": 3e-4, "weight_decay": 1e-4, "betas": [0.9, 0.999]})
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(KeyError, match="supported: Adam, AdamW"):
        build_optimizer(params, {"type": "Lion", "lr": 1e-4})
    with pytest.raises(KeyError, match="lr"):
        build_optimizer(params, {"type": "Adam"})
