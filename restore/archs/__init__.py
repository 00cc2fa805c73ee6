"""Architectures: ``build_network`` turns an official ``network_g`` dict into a module; ``detect`` goes back.

Every family lives in its own sub-package (``arch.py`` declares and registers the network, ``detect.py``
reads its hyper-parameters back from a state dict). They are imported explicitly below, so one broken
file fails loudly instead of silently vanishing from the registry.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
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
    "network_kwargs_problems",
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
        TypeError: a key that the constructor does not take (named with the closest valid key), or a value
            whose type does not fit the constructor's annotation (``network_g.dim: expected int, got str 'abc'``);
            the first such problem (:func:`network_kwargs_problems` lists them all).
    """
    cls, problems = _network_class_and_problems(opt, where)
    if problems:
        raise TypeError(problems[0])
    return cls


def network_kwargs_problems(opt: Mapping[str, Any], where: str = "network_g") -> list[str]:
    """Every key of ``opt`` that the registered constructor does not take, and every value whose type does not fit
    its annotation, one line each (as :func:`check_network_kwargs` words them).

    Raises:
        KeyError: ``type`` missing or not registered.
    """
    return _network_class_and_problems(opt, where)[1]


def _network_class_and_problems(opt: Mapping[str, Any], where: str) -> tuple[type[nn.Module], list[str]]:
    import difflib

    if "type" not in opt:
        raise KeyError(f"{where}: missing 'type' (one of: {', '.join(ARCH_REGISTRY.keys())})")
    cls = ARCH_REGISTRY.get(opt["type"])
    params = inspect.signature(cls.__init__).parameters
    valid = [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    problems = []
    for key in opt:
        if key != "type" and key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{where}.{key}: {opt['type']} takes no argument {key!r}{hint}")
    hints = _annotations(cls)
    for key, value in opt.items():
        if key != "type" and key in hints and not _fits(value, hints[key]):
            problems.append(f"{where}.{key}: expected {_describe(hints[key])}, got {type(value).__name__} {value!r}")
    return cls, problems


def _annotations(cls: type) -> dict[str, Any]:
    """The constructor's resolved annotations ({} when they cannot be resolved: nothing is checked then)."""
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation naming something unimportable must not block building the network
        return {}


def _fits(value: Any, hint: Any) -> bool:
    """Whether an option value (as read from YAML) suits an annotation; unknown annotations accept anything."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (collections.abc.Sequence, list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is tuple and len(args) > 1 and Ellipsis not in typing.get_args(hint):
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    return True


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (collections.abc.Sequence, list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_describe(args[0])}" if args else "a list"
    return getattr(hint, "__name__", str(hint))


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
