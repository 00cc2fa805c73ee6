"""Architectures: ``build_network`` turns an official ``network_g`` dict into a module; ``detect`` goes back.

Every family lives in its own sub-package (``arch.py`` declares and registers the network, ``detect.py``
reads its hyper-parameters back from a state dict). They are imported explicitly below, so one broken
file fails loudly instead of silently vanishing from the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from restore.archs import dlgsanet, drct, drsformer, hat
from restore.archs.discriminator import UNetDiscriminatorSN
from restore.archs.vgg import VGGFeatureExtractor
from restore.utils.registry import ARCH_REGISTRY

__all__ = [
    "ARCH_REGISTRY",
    "UNetDiscriminatorSN",
    "VGGFeatureExtractor",
    "build_network",
    "check_network_kwargs",
    "detect",
]

#: Family name -> ``detect(state_dict) -> network_g | None``; tried in this order (most specific first).
DETECTORS: dict[str, Callable[[Mapping[str, torch.Tensor]], dict[str, Any] | None]] = {
    "HAT": hat.detect,
    "DRCT": drct.detect,
    "DLGSANet": dlgsanet.detect,
    "DRSformer": drsformer.detect,
}


def check_network_kwargs(opt: Mapping[str, Any], where: str = "network_g") -> type[nn.Module]:
    """Validate a ``network_g`` dict against the registered constructor and return the class.

    Raises:
        KeyError: ``type`` missing or not registered (the message lists registered names).
        TypeError: a key that the constructor does not take (named with the closest valid key).
    """
    import difflib

    if "type" not in opt:
        raise KeyError(f"{where}: missing 'type' (one of: {', '.join(ARCH_REGISTRY.keys())})")
    cls = ARCH_REGISTRY.get(opt["type"])
    params = inspect.signature(cls.__init__).parameters
    valid = [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for key in opt:
        if key != "type" and key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{where}.{key}: {opt['type']} takes no argument {key!r}{hint}")
    return cls


def build_network(opt: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Build a network from an official ``network_g`` dict (``type`` plus the official kwargs).

    Args:
        opt: e.g. ``{"type": "HAT", "upscale": 4, "window_size": 16, ...}``; not modified.
        state_dict: the weights that will be loaded, if known. Kwargs that the architecture lists in
            ``checkpoint_kwargs`` are then read from the weights (e.g. DRSformer's ``mefc``: the official
            Rain200L/SPA models come from a second file with the same class name and the same YAML).

    Returns:
        The constructed module (parameters freshly initialised, in train mode).
    """
    cls = check_network_kwargs(opt)
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    decided_by_weights = getattr(cls, "checkpoint_kwargs", ())
    if state_dict is not None and decided_by_weights:
        found = DETECTORS[opt["type"]](state_dict) if opt["type"] in DETECTORS else None
        if found is not None:
            kwargs.update({k: found[k] for k in decided_by_weights if k in found})
    return cls(**kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Infer the ``network_g`` dict (with ``type``) that produced ``state_dict``.

    ``build_network(detect(sd))`` has exactly the keys and shapes of ``sd``.

    Raises:
        ValueError: no family recognises the keys; the message names every family tried.
    """
    for detector in DETECTORS.values():
        found = detector(state_dict)
        if found is not None:
            return found
    sample = ", ".join(list(state_dict)[:4])
    raise ValueError(f"unrecognised checkpoint: tried {', '.join(DETECTORS)}; none matches keys like [{sample}, ...]")
