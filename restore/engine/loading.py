"""From a weights file (and optionally an option file) to a ready network, for the command-line tools."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "check_device",
    "default_device",
    "load_model",
    "network_options_from_yaml",
    "task_of",
]


class ModelLoadError(ValueError):
    """The weights or the network options cannot be used; the message is one line."""


@dataclass
class LoadedModel:
    """A network with its weights loaded (eval mode, CPU) and the ``network_g`` it was built from."""

    net: nn.Module
    network_g: dict[str, Any]
    detected: bool  # True when ``network_g`` was inferred from the state dict

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


def task_of(net: nn.Module) -> str:
    """What the network does: its ``task`` attribute, else ``"sr"`` when it upscales and ``"restore"`` otherwise."""
    task = getattr(net, "task", None)
    if task:
        return str(task)
    return "sr" if int(getattr(net, "scale", 1)) > 1 else "restore"


def network_options_from_yaml(path: str | Path) -> dict[str, Any]:
    """``network_g`` of an option file (a full BasicSR option file or one holding only ``network_g``)."""
    path = Path(path)
    try:
        opt = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: option file not found") from None
    except (OSError, yaml.YAMLError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelLoadError(f"{path}: cannot read the option file ({reason})") from None
    network = opt.get("network_g") if isinstance(opt, Mapping) else None
    if not isinstance(network, Mapping):
        raise ModelLoadError(f"{path}: no 'network_g' section (a mapping with 'type' and the network's arguments)")
    from restore.archs import check_network_kwargs

    try:  # names and types of the arguments, reported against this file
        check_network_kwargs(network, where=f"{path}: network_g")
    except (KeyError, TypeError) as err:
        raise ModelLoadError(str(err.args[0] if err.args else err)) from None
    return dict(network)


def load_model(
    weights: str | Path,
    network_g: Mapping[str, Any] | None = None,
    param_key: str | None = "params_ema",
    *,
    require_key: bool = False,
) -> LoadedModel:
    """Build the network (from ``network_g`` or detected from the weights) and load the weights strictly.

    Args:
        param_key: the checkpoint entry to load; ``params_ema`` falls back to ``params`` (BasicSR).
        require_key: the caller named ``param_key`` explicitly: a checkpoint without it is an error, not a fallback.

    Raises:
        ModelLoadError: unreadable weights, unknown architecture, bad ``network_g`` or keys/shapes that do not fit.
    """
    from restore.archs import build_network, detect
    from restore.checkpoint import canonicalize, load_network, read_checkpoint

    try:
        raw = read_checkpoint(weights)
        if require_key and param_key and not (isinstance(raw, Mapping) and isinstance(raw.get(param_key), Mapping)):
            held = [str(k) for k, v in raw.items() if isinstance(v, Mapping)] if isinstance(raw, Mapping) else []
            what = f"its entries are {', '.join(held)}" if held else "it holds a bare state dict"
            raise ModelLoadError(f"{weights}: no {param_key!r} entry ({what}); check --param-key")
        state = canonicalize(raw, param_key, source=str(weights))
    except ModelLoadError:
        raise
    except ValueError as err:  # CheckpointError: already "<file>: <reason>"
        raise ModelLoadError(str(err)) from None
    detected = network_g is None
    try:
        opt = dict(detect(state)) if detected else dict(network_g)
    except ValueError as err:
        raise ModelLoadError(f"{weights}: {err}") from None
    try:
        net = build_network(opt, state_dict=state)
    except (KeyError, TypeError, ValueError) as err:
        message = str(err.args[0] if err.args else err)
        raise ModelLoadError(message if message.startswith("network_g") else f"network_g: {message}") from None
    try:
        load_network(net, state, strict=True, param_key=param_key)
    except (ValueError, RuntimeError) as err:
        message = str(err).splitlines()[0].removeprefix("state dict: ")
        raise ModelLoadError(f"{weights}: {message}") from None
    net.eval()
    return LoadedModel(net=net, network_g=opt, detected=detected)


def check_device(requested: str | None) -> torch.device:
    """The device named on the command line (default: CUDA when available, else CPU), checked before any loading.

    Raises:
        ValueError: one line naming ``--device``: not a device name, or a device this machine does not have.
    """
    if requested is None:
        return default_device()
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {requested!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"--device {requested}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {requested}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise ValueError(f"--device {requested!r}: expected cpu, cuda or cuda:N")
    return device


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
