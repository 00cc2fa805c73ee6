"""Shared helpers of the HAT / DRCT architecture tests: fixture lists, the official test-time padding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from restore.archs import build_network

SHARED_PARITY = Path(__file__).resolve().parents[2].parent / "shared" / "parity"


def fixtures(prefix: str, mode: str | None = None) -> list[Path]:
    """Parity fixtures ``<prefix>_*.pt``; with ``mode``, only those whose file name says so."""
    paths = sorted(SHARED_PARITY.glob(f"{prefix}_*.pt"))
    if mode == "arch":
        return [p for p in paths if p.stem.endswith("_arch")]
    if mode == "pipeline":
        return [p for p in paths if p.stem.endswith("_pipeline")]
    return paths


def manifests(arch: str) -> list[Path]:
    """Manifest files of one architecture (``HAT`` or ``DRCT``)."""
    out = []
    for path in sorted((SHARED_PARITY / "manifests").glob("*.json")):
        if path.name.startswith("index_"):
            continue
        if json.loads(path.read_text())["arch"] == arch:
            out.append(path)
    return out


def build_meta(network_g: dict[str, Any]) -> nn.Module:
    """Build on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        return build_network(network_g)


def model_class_forward(net: nn.Module, lq: torch.Tensor, window_size: int) -> torch.Tensor:
    """The official HATModel / DRCTModel test path without tiles: reflect-pad bottom/right, forward, crop."""
    h, w = lq.shape[-2:]
    pad_h = (window_size - h % window_size) % window_size
    pad_w = (window_size - w % window_size) % window_size
    out = net(F.pad(lq, (0, pad_w, 0, pad_h), mode="reflect"))
    s = net.scale
    return out[..., : h * s, : w * s]


def shapes(state_dict: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state_dict.items()}
