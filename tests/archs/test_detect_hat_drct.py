"""HAT / DRCT ``detect``: state dict -> network_g -> identical keys and shapes, for manifests, fixtures, variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parity_helpers import PARITY_DIR, build_meta, detect_and_load, fixtures, manifests, shapes

from restore.archs import detect
from restore.archs.drct import detect as detect_drct
from restore.archs.hat import detect as detect_hat

MANIFESTS = manifests("HAT") + manifests("DRCT")
FIXTURES = fixtures("hat") + fixtures("drct")


def _roundtrip(network_g: dict) -> dict:
    """Build (meta), detect from its state dict, rebuild; assert identical layout; return the detected dict."""
    sd = build_meta(network_g).state_dict()
    found = detect(sd)
    assert found["type"] == network_g["type"]
    rebuilt = build_meta(found).state_dict()
    assert list(rebuilt) == list(sd)
    assert shapes(rebuilt) == shapes(sd)
    return found


def test_inventory() -> None:
    assert len(MANIFESTS) == 15 and len(FIXTURES) == 10


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_roundtrip_recovers_official_kwargs(path: Path) -> None:
    manifest = json.loads(path.read_text())
    found = _roundtrip({"type": manifest["arch"], **manifest["kwargs"]})
    for key, value in manifest["kwargs"].items():  # official configs: every kwarg comes back exactly
        assert found[key] == value, key


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_state_dict_roundtrip(path: Path) -> None:
    fx, found = detect_and_load(path, detect)
    determinable = ("upscale", "window_size", "embed_dim", "num_heads", "mlp_ratio", "upsampler", "in_chans")
    for key in determinable:
        assert found[key] == fx["kwargs"][key], key
    if fx["arch"] == "HAT":
        for key in ("depths", "compress_ratio", "squeeze_factor", "overlap_ratio"):
            assert found[key] == fx["kwargs"][key], key
    else:
        assert found["gc"] == fx["kwargs"]["gc"] and found["img_size"] == fx["kwargs"]["img_size"]
        assert len(found["depths"]) == len(fx["kwargs"]["depths"])


def test_families_do_not_claim_each_other() -> None:
    hat_sd = torch.load(PARITY_DIR / "hat_tiny_x4_arch.pt", weights_only=True)["state_dict"]
    drct_sd = torch.load(PARITY_DIR / "drct_tiny_x4_arch.pt", weights_only=True)["state_dict"]
    assert detect_hat(drct_sd) is None and detect_drct(hat_sd) is None
    assert detect_hat({"conv_first.weight": torch.zeros(8, 3, 3, 3)}) is None
    other = PARITY_DIR / "dlgsanet_tiny_x4_arch.pt"
    if other.exists():
        sd = torch.load(other, weights_only=True)["state_dict"]
        assert detect_hat(sd) is None and detect_drct(sd) is None


HAT_BASE = dict(type="HAT", img_size=16, window_size=8, embed_dim=12, depths=[2, 1], num_heads=[2, 3],
                squeeze_factor=4, compress_ratio=3, mlp_ratio=2, upscale=2, upsampler="pixelshuffle")  # fmt: skip
DRCT_BASE = dict(type="DRCT", img_size=32, window_size=8, embed_dim=12, depths=[6, 6], num_heads=[4, 2], gc=4,
                 mlp_ratio=2, upscale=2, upsampler="pixelshuffle")  # fmt: skip
VARIANTS = [
    {},
    {"upscale": 3},
    {"upscale": 8},
    {"upscale": 1},
    {"upsampler": ""},
    {"resi_connection": "identity"},
    {"patch_norm": False, "qkv_bias": False},
    {"in_chans": 1},
    {"mlp_ratio": 1.5},
    {"mlp_ratio": 4.0 / 3.0},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) or "base")
@pytest.mark.parametrize("base", [HAT_BASE, DRCT_BASE], ids=["HAT", "DRCT"])
def test_variant_roundtrip(base: dict, variant: dict) -> None:
    found = _roundtrip({**base, **variant})
    for key in ("in_chans", "embed_dim", "num_heads", "window_size", "patch_norm", "qkv_bias"):
        assert found[key] == {**base, **variant}.get(key, found[key]), key


@pytest.mark.parametrize(
    "variant",
    [{"overlap_ratio": 0.25}, {"overlap_ratio": 1.0}, {"ape": True}, {"img_size": 6}, {"compress_ratio": 4},
     {"squeeze_factor": 6}, {"depths": [0, 3]}],
    ids=str,
)  # fmt: skip
def test_hat_specific_roundtrip(variant: dict) -> None:
    found = _roundtrip({**HAT_BASE, **variant})
    for key, value in variant.items():
        if key == "compress_ratio":
            assert 12 // found[key] == 12 // value
        else:
            assert found[key] == value, key


@pytest.mark.parametrize(
    "variant", [{"img_size": 64}, {"img_size": 8}, {"img_size": 4}, {"ape": True, "img_size": 16}, {"gc": 8}], ids=str
)
def test_drct_specific_roundtrip(variant: dict) -> None:
    found = _roundtrip({**DRCT_BASE, **variant})
    if variant.get("img_size", 8) > 8:
        assert found["img_size"] == variant["img_size"]
    if "gc" in variant:
        assert found["gc"] == variant["gc"]
