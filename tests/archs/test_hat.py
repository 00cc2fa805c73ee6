"""HAT against the official parity fixtures and manifests; variants, training, dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hat_drct_helpers import build_meta, fixtures, manifests, model_class_forward, shapes

from restore.archs import build_network
from restore.archs.hat import HAT, PRESETS
from restore.ops.window_attention import overlapping_relative_position_index, relative_position_index

ARCH_FIXTURES = fixtures("hat", "arch")
PIPELINE_FIXTURES = fixtures("hat", "pipeline")
MANIFESTS = manifests("HAT")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(**overrides: object) -> HAT:
    cfg = dict(
        img_size=16, window_size=8, embed_dim=12, depths=[2], num_heads=[2], compress_ratio=3, squeeze_factor=4,
        mlp_ratio=2, upscale=2, upsampler="pixelshuffle",
    )  # fmt: skip
    cfg.update(overrides)
    return HAT(**cfg)


def test_fixture_inventory(shared: Path) -> None:
    assert (shared / "parity").resolve() == ARCH_FIXTURES[0].parent.resolve()
    assert [p.stem for p in ARCH_FIXTURES] == ["hat_tiny_x2_arch", "hat_tiny_x4_arch"]
    assert [p.stem for p in PIPELINE_FIXTURES] == ["hat_tiny_x3_pipeline"]
    assert len(MANIFESTS) == 9


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("path", ARCH_FIXTURES, ids=lambda p: p.stem)
def test_arch_fixture(path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_OPS", backend)
    fx = torch.load(path, weights_only=True)
    assert fx["arch"] == "HAT" and fx["mode"] == "arch"
    net = build_network({"type": "HAT", **fx["kwargs"]})
    assert list(net.state_dict()) == list(fx["state_dict"])
    net.load_state_dict(fx["state_dict"], strict=True)
    net.eval()
    assert net.scale == fx["scale"] and net.pad_multiple == fx["window_size"]
    with torch.no_grad():
        out = net(fx["input"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


@pytest.mark.parametrize("path", PIPELINE_FIXTURES, ids=lambda p: p.stem)
def test_model_class_pipeline_fixture(path: Path) -> None:
    fx = torch.load(path, weights_only=True)
    assert fx["pipeline_variant"] == "model_class" and "tile" not in fx
    net = build_network({"type": "HAT", **fx["kwargs"]})
    net.load_state_dict(fx["state_dict"], strict=True)
    net.eval()
    with torch.no_grad():
        out = model_class_forward(net, fx["input"], fx["window_size"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_state_dict_layout(path: Path) -> None:
    manifest = json.loads(path.read_text())
    net = build_meta({"type": "HAT", **manifest["kwargs"]})
    sd = net.state_dict()
    assert list(sd) == list(manifest["state_dict"])  # keys and their order
    assert shapes(sd) == manifest["state_dict"]
    params = dict(net.named_parameters())
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items() if k not in params} == manifest["buffers"]
    assert sum(p.numel() for p in params.values()) == manifest["params"]
    assert net.scale == manifest["kwargs"]["upscale"] and net.pad_multiple == manifest["kwargs"]["window_size"]


def test_presets_are_the_manifests() -> None:
    for name, preset in PRESETS.items():
        for scale in (2, 3, 4):
            stem = f"{name}_SRx{scale}" + ("_ImageNet-pretrain" if name == "HAT-L" else "")
            manifest = json.loads((MANIFESTS[0].parent / f"{stem}.json").read_text())
            assert {**preset, "upscale": scale} == manifest["kwargs"]


def test_buffers_have_official_values() -> None:
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
    net = _tiny().eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = net(x)
        out = net.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.05


@pytest.mark.parametrize("use_checkpoint", [False, True])
def test_backward_reaches_every_parameter(use_checkpoint: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import restore.archs.layers.swin_block as swin_block

    calls = []
    original = swin_block.checkpoint
    monkeypatch.setattr(swin_block, "checkpoint", lambda *a, **k: calls.append(1) or original(*a, **k))
    torch.manual_seed(0)
    net = _tiny(use_checkpoint=use_checkpoint, drop_path_rate=0.0).train()
    reference = _tiny(drop_path_rate=0.0).train()
    reference.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, 16, 16)
    net(x).square().mean().backward()
    reference(x).square().mean().backward()
    assert len(calls) == (3 if use_checkpoint else 0)  # 2 HABs + 1 OCAB
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4)


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
