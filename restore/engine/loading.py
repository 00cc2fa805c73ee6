"""From a weights file (and optionally an option file) to a ready network, for the command-line tools."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

__all__ = ["LoadedModel", "ModelLoadError", "default_device", "load_model", "network_options_from_yaml", "task_of"]


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
    return dict(network)


def load_model(
    weights: str | Path, network_g: Mapping[str, Any] | None = None, param_key: str | None = "params_ema"
) -> LoadedModel:
    """Build the network (from ``network_g`` or detected from the weights) and load the weights strictly.

    Raises:
        ModelLoadError: unreadable weights, unknown architecture, bad ``network_g`` or keys/shapes that do not fit.
    """
    from restore.archs import build_network, detect
    from restore.checkpoint import load_network, load_state_dict

    try:
        state = load_state_dict(weights, param_key)
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
        message = err.args[0] if err.args else str(err)
        raise ModelLoadError(f"network_g: {message}") from None
    try:
        load_network(net, state, strict=True, param_key=param_key)
    except (ValueError, RuntimeError) as err:
        message = str(err).splitlines()[0].removeprefix("state dict: ")
        raise ModelLoadError(f"{weights}: {message}") from None
    net.eval()
    return LoadedModel(net=net, network_g=opt, detected=detected)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
