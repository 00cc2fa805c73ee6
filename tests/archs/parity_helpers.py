"""Shared checks of the architecture tests: fixture and manifest lists, meta-device builds, the official test-time
padding, and the parity / layout / dtype / gradient checks that every family runs the same way."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restore.archs import build_network

PARITY_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def fixtures(prefix: str, mode: str | None = None) -> list[Path]:
    """Parity fixtures ``<prefix>_*.pt``; with ``mode``, only those whose file name says so."""
    paths = sorted(PARITY_DIR.glob(f"{prefix}_*.pt"))
    if mode == "arch":
        return [p for p in paths if p.stem.endswith("_arch")]
    if mode == "pipeline":
        return [p for p in paths if p.stem.endswith("_pipeline")]
    return paths


def manifests(arch: str) -> list[Path]:
    """Manifest files of one architecture (``HAT`` or ``DRCT``)."""
    out = []
    for path in sorted((PARITY_DIR / "manifests").glob("*.json")):
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


def load_fixture_network(fixture: dict[str, Any], network_g: dict[str, Any]) -> nn.Module:
    """Build ``network_g``, check its key order against the fixture's state dict, load it strictly, eval mode."""
    net = build_network(network_g)
    assert list(net.state_dict()) == list(fixture["state_dict"])
    net.load_state_dict(fixture["state_dict"], strict=True)
    return net.eval()


def check_window_arch_fixture(path: Path, arch: str) -> None:
    """HAT / DRCT ``*_arch`` fixture: plain forward of the official weights equals the official output."""
    fx = torch.load(path, weights_only=True)
    assert fx["arch"] == arch and fx["mode"] == "arch"
    net = load_fixture_network(fx, {"type": arch, **fx["kwargs"]})
    assert net.scale == fx["scale"] and net.pad_multiple == fx["window_size"]
    with torch.no_grad():
        out = net(fx["input"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


def check_model_class_pipeline_fixture(path: Path, arch: str) -> None:
    """HAT / DRCT ``*_pipeline`` fixture: the official model-class test path (pad, forward, crop) without tiles."""
    fx = torch.load(path, weights_only=True)
    assert fx["pipeline_variant"] == "model_class" and "tile" not in fx
    net = build_network({"type": arch, **fx["kwargs"]})
    net.load_state_dict(fx["state_dict"], strict=True)
    net.eval()
    with torch.no_grad():
        out = model_class_forward(net, fx["input"], fx["window_size"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


def check_window_manifest_layout(path: Path, arch: str) -> None:
    """HAT / DRCT manifest: keys in order, shapes, buffer dtypes, parameter count and engine attributes."""
    manifest = json.loads(path.read_text())
    net = build_meta({"type": arch, **manifest["kwargs"]})
    sd = net.state_dict()
    assert list(sd) == list(manifest["state_dict"])  # keys and their order
    assert shapes(sd) == manifest["state_dict"]
    params = dict(net.named_parameters())
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items() if k not in params} == manifest["buffers"]
    assert sum(p.numel() for p in params.values()) == manifest["params"]
    assert net.scale == manifest["kwargs"]["upscale"] and net.pad_multiple == manifest["kwargs"]["window_size"]


def check_presets_are_manifests(presets: Mapping[str, dict], manifest_dir: Path, imagenet_preset: str) -> None:
    """Each preset at x2 / x3 / x4 equals the manifest kwargs (``imagenet_preset`` names its ImageNet manifests)."""
    for name, preset in presets.items():
        for scale in (2, 3, 4):
            stem = f"{name}_SRx{scale}" + ("_ImageNet-pretrain" if name == imagenet_preset else "")
            manifest = json.loads((manifest_dir / f"{stem}.json").read_text())
            assert {**preset, "upscale": scale} == manifest["kwargs"]


def check_manifest_meta_load(manifest: dict[str, Any], network_g: dict[str, Any]) -> None:
    """``network_g`` built on meta: (key, shape) pairs in manifest order, parameter count, strict assign-load."""
    with torch.device("meta"):
        net = build_network(network_g)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(manifest["state_dict"].items())
    assert sum(p.numel() for p in net.parameters()) == manifest["params"]
    state = {k: torch.zeros(v, device="meta") for k, v in manifest["state_dict"].items()}
    report = net.load_state_dict(state, strict=True, assign=True)
    assert not report.missing_keys and not report.unexpected_keys


def detect_and_load(path: Path, detect: Callable[[dict], dict]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fixture at ``path`` -> ``detect`` on its state dict -> build and load strictly; returns (fixture, found)."""
    fixture = torch.load(path, weights_only=True)
    found = detect(fixture["state_dict"])
    assert found["type"] == fixture["arch"]
    net = build_network(found)
    net.load_state_dict(fixture["state_dict"], strict=True)
    return fixture, found


def bf16_forward(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 reference and bfloat16 output of ``net`` (eval, no grad) on ``x``; the bf16 output is finite."""
    net.eval()
    with torch.no_grad():
        ref = net(x)
        low = net.to(torch.bfloat16)(x.bfloat16())
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    return ref, low


def check_swin_backward(
    make: Callable[..., nn.Module], use_checkpoint: bool, monkeypatch: pytest.MonkeyPatch, checkpointed_blocks: int
) -> None:
    """Gradients reach every parameter and match a net without checkpointing; ``checkpointed_blocks`` blocks go
    through ``torch.utils.checkpoint`` when ``use_checkpoint`` is set (and none otherwise)."""
    import restore.archs.layers.swin_block as swin_block

    calls = []
    original = swin_block.checkpoint
    monkeypatch.setattr(swin_block, "checkpoint", lambda *a, **k: calls.append(1) or original(*a, **k))
    torch.manual_seed(0)
    net = make(use_checkpoint=use_checkpoint, drop_path_rate=0.0).train()
    reference = make(drop_path_rate=0.0).train()
    reference.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, 16, 16)
    net(x).square().mean().backward()
    reference(x).square().mean().backward()
    assert len(calls) == (checkpointed_blocks if use_checkpoint else 0)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4)


def check_fresh_buffers_match_fixture(path: Path, arch: str) -> list[str]:
    """Build the network from the fixture's kwargs WITHOUT loading it and compare every persistent buffer
    (relative-position indices, shift masks) with the fixture's state dict, which holds the official code's values.
    A strict load would overwrite these buffers, so this is the check of our own index/mask construction.
    Returns the names of the compared buffers."""
    fx = torch.load(path, weights_only=True)
    net = build_network({"type": arch, **fx["kwargs"]})
    params = {name for name, _ in net.named_parameters()}
    buffers = [k for k in net.state_dict() if k not in params]
    assert buffers, f"{path.name}: no persistent buffers"
    for key in buffers:
        ours, official = net.state_dict()[key], fx["state_dict"][key]
        assert ours.dtype == official.dtype and ours.shape == official.shape, key
        assert torch.equal(ours, official), f"{path.name}: {key} differs from the official buffer"
    return buffers
