"""Optimizers from ``train.optim_g`` (``type`` names a ``torch.optim`` class; the other keys are its kwargs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

#: Supported ``optim_g.type`` values (BasicSR's most used ones).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "SGD": torch.optim.SGD,
}


def build_optimizer(
    params: Iterable[torch.nn.Parameter], opt: Mapping[str, Any], where: str = "train.optim_g"
) -> torch.optim.Optimizer:
    """Build the optimizer described by ``{'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99], ...}``.

    Raises:
        KeyError: unsupported ``type`` (lists the supported ones) or missing ``lr``.
        TypeError: a keyword that the optimizer does not take.
    """
    name = opt.get("type")
    if name not in OPTIMIZERS:
        raise KeyError(f"{where}.type: unsupported optimizer {name!r}; supported: {', '.join(OPTIMIZERS)}")
    if opt.get("lr") is None:
        raise KeyError(f"{where}.lr: missing learning rate")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in opt.items() if k != "type"}
    try:
        return OPTIMIZERS[name](list(params), **kwargs)
    except TypeError as err:
        raise TypeError(f"{where}: {name}: {err}") from None
