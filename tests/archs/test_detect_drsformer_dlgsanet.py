"""detect() for DRSformer and DLGSANet: manifests, fixtures and variants round-trip; other families are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parity_helpers import PARITY_DIR, detect_and_load

from restore.archs import build_network, detect
from restore.archs import dlgsanet as dlgsanet_family
from restore.archs import drsformer as drsformer_family

OURS = sorted(p for p in PARITY_DIR.glob("manifests/*.json") if "DRSformer" in p.name or "DLGSANet" in p.name)
OTHERS = sorted(p for p in PARITY_DIR.glob("manifests/*.json") if p not in OURS and "index" not in p.name)


def _meta_state(shapes: dict) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def _shapes(net: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in net.state_dict().items()]


def test_manifests_are_present(fixtures: Path) -> None:
    assert fixtures / "parity" == PARITY_DIR
    assert len(OURS) == 11 and OTHERS


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.stem[:60])
def test_manifest_round_trip(path: Path) -> None:
    manifest = json.loads(path.read_text())
    found = detect(_meta_state(manifest["state_dict"]))
    expected = dict(manifest["kwargs"])
    if manifest["arch"] == "DRSformer":
        expected["mefc"] = manifest["variant"] == "mefc"
    assert found == {"type": manifest["arch"], **expected}
    with torch.device("meta"):
        net = build_network(found)
    assert _shapes(net) == list(manifest["state_dict"].items())


@pytest.mark.parametrize("path", sorted(PARITY_DIR.glob("d[rl][sg]*_*.pt")), ids=lambda p: p.stem)
def test_fixture_state_dicts_round_trip(path: Path) -> None:
    fixture, found = detect_and_load(path, detect)
    if fixture["arch"] == "DRSformer":
        assert found["mefc"] == (fixture["variant"] == "mefc")
        assert {k: found[k] for k in fixture["kwargs"]} == fixture["kwargs"]
    else:  # the TLC window is not stored in weights: the official value for the scale is used
        differing = {k for k in fixture["kwargs"] if found[k] != fixture["kwargs"][k]}
        assert differing <= {"tlc_kernel"}


VARIANTS = [
    {"type": "DRSformer", "dim": 8, "num_blocks": [1, 2, 1, 3], "heads": [1, 2, 2, 4], "ffn_expansion_factor": 2.0,
     "bias": True, "LayerNorm_type": "BiasFree", "mefc": False},
    {"type": "DRSformer", "inp_channels": 1, "out_channels": 1, "dim": 12, "num_blocks": [2, 1, 1, 1],
     "heads": [2, 2, 4, 4], "ffn_expansion_factor": 1.7},
    {"type": "DLGSANet", "dim": 16, "groups": 2, "blocks": 2, "buildblock_type": "sparseedge", "window_size": 5,
     "idynamic_num_heads": 4, "restormer_num_heads": 4, "upsampler": "pixelshuffle", "upscale": 3},
    {"type": "DLGSANet", "dim": 16, "groups": 1, "blocks": 1, "buildblock_type": "edge", "upsampler": "pixelshuffle",
     "upscale": 4, "body_norm": True, "restormer_num_heads": 2},
    {"type": "DLGSANet", "dim": 12, "groups": 2, "blocks": 3, "buildblock_type": "idynamic", "idynamic": False,
     "window_size": 3, "idynamic_ffn_type": "BaseFFN", "idynamic_ffn_expansion_factor": 3.0, "upsampler": ""},
    {"type": "DLGSANet", "dim": 8, "groups": 1, "blocks": 2, "buildblock_type": "restormer", "in_chans": 1,
     "restormer_num_heads": 2, "restormer_ffn_type": "BaseFFN", "restormer_ffn_expansion_factor": 1.5,
     "upsampler": "pixelshuffledirect", "upscale": 2},
]  # fmt: skip


@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: f"{c['type']}-{c.get('buildblock_type', c['dim'])}")
def test_variant_round_trip(config: dict) -> None:
    with torch.device("meta"):
        net = build_network(config)
        rebuilt = build_network(detect(net.state_dict()))
    assert _shapes(rebuilt) == _shapes(net)
    found = detect(net.state_dict())
    if config.get("buildblock_type") == "edge":  # same keys as the official "sparseedge", which detect reports
        config = {**config, "buildblock_type": "sparseedge"}
    for key in ("dim", "upscale", "groups", "blocks", "num_blocks", "heads", "bias", "LayerNorm_type", "mefc",
                "buildblock_type", "upsampler", "body_norm", "in_chans", "inp_channels", "idynamic",
                "ffn_expansion_factor", "idynamic_ffn_type", "restormer_ffn_type"):  # fmt: skip
        if key in config:
            assert found[key] == config[key], key


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: p.stem)
def test_other_families_are_not_claimed(path: Path) -> None:
    state = _meta_state(json.loads(path.read_text())["state_dict"])
    assert drsformer_family.detect(state) is None
    assert dlgsanet_family.detect(state) is None


def test_unrelated_dicts_are_not_claimed() -> None:
    for state in ({}, {"conv.weight": torch.zeros(1)}, {"patch_embed.proj.weight": torch.zeros(8, 3, 3, 3)}):
        assert drsformer_family.detect(state) is None
        assert dlgsanet_family.detect(state) is None
