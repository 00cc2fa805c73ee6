"""Architectures on ordinary mistakes: unsupported upsamplers refused at construction; nearly matching checkpoints
reported by the key they miss."""

from __future__ import annotations

import pytest
import torch

from restore.archs import build_network, detect
from restore.checkpoint import save_checkpoint
from restore.engine.loading import ModelLoadError, load_model

TINY = {
    "HAT": {"type": "HAT", "upscale": 2, "img_size": 16, "window_size": 4, "compress_ratio": 2, "squeeze_factor": 4,
            "depths": [1], "embed_dim": 8, "num_heads": [2], "mlp_ratio": 2, "upsampler": "pixelshuffle"},
    "DRCT": {"type": "DRCT", "upscale": 2, "img_size": 16, "window_size": 4, "depths": [1, 1], "embed_dim": 8,
             "num_heads": [2, 2], "gc": 4, "mlp_ratio": 2, "upsampler": "pixelshuffle"},
}  # fmt: skip


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return {name: build_network(opt).state_dict() for name, opt in TINY.items()}


@pytest.mark.parametrize("family", ["HAT", "DRCT"])
@pytest.mark.parametrize("upsampler", ["pixelshuffledirect", "nearest+conv", "PixelShuffle"])
def test_unimplemented_upsampler_is_refused_at_construction(family, upsampler):
    with pytest.raises(ValueError) as err:
        build_network({**TINY[family], "upsampler": upsampler})
    assert str(err.value) == (
        f"{family}: upsampler must be 'pixelshuffle' (or '' for no reconstruction tail), got {upsampler!r}"
    )


@pytest.mark.parametrize("family", ["HAT", "DRCT"])
def test_implemented_upsamplers_still_build(family):
    assert build_network(TINY[family]).scale == 2
    assert build_network({**TINY[family], "upsampler": ""}).scale == 1


@pytest.mark.parametrize("family", ["HAT", "DRCT"])
def test_missing_conv_last_is_named(states, family):
    sd = {k: v for k, v in states[family].items() if k != "conv_last.weight"}
    with pytest.raises(ValueError) as err:
        detect(sd)
    assert str(err.value) == (
        f"{family} checkpoint: missing key 'conv_last.weight' (the other reconstruction-tail weights are there)"
    )


def test_missing_drct_shift_mask_is_named(states):
    sd = states["DRCT"]
    masks = [k for k in sd if k.endswith("attn_mask")]
    assert masks == ["layers.0.swin2.attn_mask", "layers.0.swin4.attn_mask",
                     "layers.1.swin2.attn_mask", "layers.1.swin4.attn_mask"]  # fmt: skip
    for gone in ("layers.0.swin4.attn_mask", "layers.0.swin2.attn_mask"):
        with pytest.raises(ValueError) as err:
            detect({k: v for k, v in sd.items() if k != gone})
        assert str(err.value) == (
            f"DRCT checkpoint: missing key {gone!r} (every shifted block stores its shift mask; 3 of 4 do)"
        )


def test_the_missing_key_reaches_the_command_line_message(states, tmp_path):
    sd = {k: v for k, v in states["HAT"].items() if k != "conv_last.weight"}
    path = save_checkpoint(tmp_path / "broken.pth", sd)
    with pytest.raises(ModelLoadError, match=r"broken\.pth: HAT checkpoint: missing key 'conv_last\.weight'"):
        load_model(path)
