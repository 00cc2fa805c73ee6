"""HAT against the official parity fixtures and manifests; variants, training, dtypes."""

from __future__ import annotations

from pathlib import Path

import parity_helpers as parity
import pytest
import torch
from torch_threads import one_thread_fixture

from restore.archs import build_network
from restore.archs.hat import HAT, PRESETS
from restore.ops.window_attention import overlapping_relative_position_index, relative_position_index

ARCH_FIXTURES = parity.fixtures("hat", "arch")
PIPELINE_FIXTURES = parity.fixtures("hat", "pipeline")
MANIFESTS = parity.manifests("HAT")


_one_thread = one_thread_fixture()


def _tiny(**overrides: object) -> HAT:
    cfg = dict(
        img_size=16, window_size=8, embed_dim=12, depths=[2], num_heads=[2], compress_ratio=3, squeeze_factor=4,
        mlp_ratio=2, upscale=2, upsampler="pixelshuffle",
    )  # fmt: skip
    cfg.update(overrides)
    return HAT(**cfg)


def test_fixture_inventory(fixtures: Path) -> None:
    assert (fixtures / "parity").resolve() == ARCH_FIXTURES[0].parent.resolve()
    assert [p.stem for p in ARCH_FIXTURES] == ["hat_tiny_x2_arch", "hat_tiny_x4_arch"]
    assert [p.stem for p in PIPELINE_FIXTURES] == ["hat_tiny_x3_pipeline"]
    assert len(MANIFESTS) == 9


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("path", ARCH_FIXTURES, ids=lambda p: p.stem)
def test_arch_fixture(path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_OPS", backend)
    parity.check_window_arch_fixture(path, "HAT")


@pytest.mark.parametrize("path", PIPELINE_FIXTURES, ids=lambda p: p.stem)
def test_model_class_pipeline_fixture(path: Path) -> None:
    parity.check_model_class_pipeline_fixture(path, "HAT")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_state_dict_layout(path: Path) -> None:
    parity.check_window_manifest_layout(path, "HAT")


def test_presets_are_the_manifests() -> None:
    parity.check_presets_are_manifests(PRESETS, MANIFESTS[0].parent, "HAT-L")


@pytest.mark.parametrize("path", ARCH_FIXTURES + PIPELINE_FIXTURES, ids=lambda p: p.stem)
def test_freshly_built_buffers_equal_the_official_ones(path: Path) -> None:
    names = parity.check_fresh_buffers_match_fixture(path, "HAT")
    assert {"relative_position_index_SA", "relative_position_index_OCA"} <= set(names)


def test_buffer_layout() -> None:
    net = _tiny(window_size=8, overlap_ratio=0.5)
    assert torch.equal(net.relative_position_index_SA, relative_position_index(8))
    assert torch.equal(net.relative_position_index_OCA, overlapping_relative_position_index(8, 12))
    assert list(net.state_dict())[:2] == ["relative_position_index_SA", "relative_position_index_OCA"]
    assert "mean" not in net.state_dict()


def test_engine_attributes_and_strict_load_roundtrip() -> None:
    net = _tiny(upscale=3)
    assert (net.scale, net.pad_multiple, net.clamp_output, net.supports_fp16) == (3, 8, False, False)
    other = _tiny(upscale=3)
    other.load_state_dict(net.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 24)
    net.eval()
    other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x), net(x))
        assert net(x).shape == (1, 3, 48, 72)


def test_unknown_kwarg_is_rejected() -> None:
    with pytest.raises(TypeError, match="window_sizes"):
        build_network({"type": "HAT", "window_sizes": 8})


def test_batch_matches_single_images() -> None:
    net = _tiny().eval()
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        both = net(x)
        torch.testing.assert_close(both[1:], net(x[1:]), atol=1e-5, rtol=1e-5)


def test_bf16_forward_is_finite_and_close() -> None:
    torch.manual_seed(0)
    ref, out = parity.bf16_forward(_tiny(), torch.rand(1, 3, 16, 16))
    assert (out.float() - ref).abs().max() < 0.05


@pytest.mark.parametrize("use_checkpoint", [False, True])
def test_backward_reaches_every_parameter(use_checkpoint: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    parity.check_swin_backward(_tiny, use_checkpoint, monkeypatch, checkpointed_blocks=3)  # 2 HABs + 1 OCAB


def test_no_checkpoint_in_eval() -> None:
    net = _tiny(use_checkpoint=True).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_img_size_equal_to_window_disables_shift() -> None:
    net = _tiny(img_size=8, window_size=8)
    shifts = [b.shift_size for layer in net.layers for b in layer.residual_group.blocks]
    assert shifts == [0, 0]
    assert [b.shift_size for b in _tiny().layers[0].residual_group.blocks] == [0, 4]
    with torch.no_grad():
        assert torch.isfinite(net.eval()(torch.rand(1, 3, 16, 16))).all()


def test_img_size_below_window_builds_like_official_but_cannot_run() -> None:
    net = _tiny(img_size=6, window_size=8)
    table = net.state_dict()["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"]
    assert table.shape == (11 * 11, 2)  # blocks shrink to a 6x6 window, the shared index stays 8x8
    with pytest.raises(ValueError, match="smaller than window_size"):
        net(torch.rand(1, 3, 8, 8))


def test_input_size_is_checked() -> None:
    with pytest.raises(ValueError, match="multiples of pad_multiple=8"):
        _tiny()(torch.rand(1, 3, 12, 16))


def test_variants_key_layouts() -> None:
    sd = _tiny(upsampler="", resi_connection="identity").state_dict()
    assert not any(k.startswith(("conv_before_upsample", "upsample", "conv_last", "conv_after_body")) for k in sd)
    assert "layers.0.conv.weight" not in sd
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(_tiny(upsampler="").eval()(x), x)  # no reconstruction: identity up to rounding
    sd = _tiny(upscale=1).state_dict()
    assert "conv_last.weight" in sd and not any(k.startswith("upsample.") for k in sd)
    sd = _tiny(upscale=8).state_dict()
    assert [k for k in sd if k.startswith("upsample.") and k.endswith("weight")] == [
        "upsample.0.weight", "upsample.2.weight", "upsample.4.weight"
    ]  # fmt: skip
    sd = _tiny(ape=True, patch_norm=False, qkv_bias=False, in_chans=1).state_dict()
    assert next(iter(sd)) == "absolute_pos_embed" and sd["absolute_pos_embed"].shape == (1, 256, 12)
    assert "patch_embed.norm.weight" not in sd and "layers.0.residual_group.blocks.0.attn.qkv.bias" not in sd
    net = _tiny(ape=True, in_chans=1).eval()
    assert net(torch.rand(1, 1, 16, 16)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="ape=True"):
        net(torch.rand(1, 1, 8, 16))


def test_invalid_configurations_raise() -> None:
    with pytest.raises(ValueError, match="resi_connection"):
        _tiny(resi_connection="3conv")
    with pytest.raises(ValueError, match="upscale"):
        _tiny(upscale=5)
    with pytest.raises(ValueError, match="even"):
        _tiny(overlap_ratio=0.375)  # int(8 * 0.375) = 3
    with pytest.raises(ValueError, match="divisible"):
        _tiny(num_heads=[5])


def test_qk_scale_follows_official_or() -> None:
    assert _tiny(qk_scale=None).layers[0].residual_group.blocks[0].attn.scale == pytest.approx(6**-0.5)
    assert _tiny(qk_scale=0).layers[0].residual_group.overlap_attn.scale == pytest.approx(6**-0.5)
    assert _tiny(qk_scale=0.25).layers[0].residual_group.blocks[1].attn.scale == 0.25


def test_cab_in_the_exported_layout_equals_the_scaled_block() -> None:
    """``CAB.scaled_channels_last`` (the order exported graphs trace) is ``scale * CAB`` in the token layout."""
    from restore.archs.layers.channel_attention import CAB

    torch.manual_seed(0)
    cab = CAB(24, compress_ratio=3, squeeze_factor=6).double().eval()
    x = torch.randn(2, 9, 7, 24, dtype=torch.float64)
    want = cab(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) * 0.01
    torch.testing.assert_close(cab.scaled_channels_last(x, 0.01), want, atol=1e-14, rtol=1e-12)
