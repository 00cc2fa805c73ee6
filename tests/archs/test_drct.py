"""DRCT against the official parity fixtures and manifests; dense blocks, stored masks, training, dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hat_drct_helpers import build_meta, fixtures, manifests, model_class_forward, shapes

from restore.archs import build_network
from restore.archs.drct import DRCT, PRESETS
from restore.archs.drct.arch import dense_block_dims
from restore.ops.window_attention import relative_position_index

ARCH_FIXTURES = fixtures("drct", "arch")
PIPELINE_FIXTURES = fixtures("drct", "pipeline")
MANIFESTS = manifests("DRCT")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(**overrides: object) -> DRCT:
    cfg = dict(
        img_size=16, window_size=8, embed_dim=12, depths=[2], num_heads=[4], gc=4, mlp_ratio=2, upscale=2,
        upsampler="pixelshuffle",
    )  # fmt: skip
    cfg.update(overrides)
    return DRCT(**cfg)


def _official_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Slice-labelled shift mask, written out as in the official ``calculate_mask``."""
    img = torch.zeros(1, h, w, 1)
    label = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = label
            label += 1
    win = img.view(1, h // ws, ws, w // ws, ws, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def test_fixture_inventory() -> None:
    assert [p.stem for p in ARCH_FIXTURES] == ["drct_tiny_x2_arch", "drct_tiny_x4_arch"]
    assert [p.stem for p in PIPELINE_FIXTURES] == ["drct_tiny_x2_pipeline"]
    assert len(MANIFESTS) == 6


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("path", ARCH_FIXTURES, ids=lambda p: p.stem)
def test_arch_fixture(path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_OPS", backend)
    fx = torch.load(path, weights_only=True)
    assert fx["arch"] == "DRCT" and fx["mode"] == "arch"
    net = build_network({"type": "DRCT", **fx["kwargs"]})
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
    net = build_network({"type": "DRCT", **fx["kwargs"]})
    net.load_state_dict(fx["state_dict"], strict=True)
    net.eval()
    with torch.no_grad():
        out = model_class_forward(net, fx["input"], fx["window_size"])
    torch.testing.assert_close(out, fx["output"], atol=fx["atol"], rtol=fx["rtol"])


@pytest.mark.parametrize("path", ARCH_FIXTURES, ids=lambda p: p.stem)
def test_stored_masks_equal_official_masks(path: Path) -> None:
    fx = torch.load(path, weights_only=True)
    kw = fx["kwargs"]
    ws, size = kw["window_size"], kw["img_size"]
    net = build_network({"type": "DRCT", **kw})
    for key, value in net.state_dict().items():
        if key.endswith("attn_mask"):
            assert key.split(".")[-2] in ("swin2", "swin4")
            assert torch.equal(value, _official_mask(size, size, ws, ws // 2))
            assert torch.equal(value, fx["state_dict"][key])
        if key.endswith("relative_position_index"):
            assert torch.equal(value, relative_position_index(ws))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_state_dict_layout(path: Path) -> None:
    manifest = json.loads(path.read_text())
    net = build_meta({"type": "DRCT", **manifest["kwargs"]})
    sd = net.state_dict()
    assert list(sd) == list(manifest["state_dict"])
    assert shapes(sd) == manifest["state_dict"]
    params = dict(net.named_parameters())
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items() if k not in params} == manifest["buffers"]
    assert sum(p.numel() for p in params.values()) == manifest["params"]
    assert net.scale == manifest["kwargs"]["upscale"] and net.pad_multiple == manifest["kwargs"]["window_size"]


def test_presets_are_the_manifests() -> None:
    for name, preset in PRESETS.items():
        for scale in (2, 3, 4):
            stem = f"{name}_SRx{scale}" + ("_ImageNet-pretrain" if name == "DRCT-L" else "")
            manifest = json.loads((MANIFESTS[0].parent / f"{stem}.json").read_text())
            assert {**preset, "upscale": scale} == manifest["kwargs"]


def test_official_dense_block_dims_and_odd_head_dims() -> None:
    dims = dense_block_dims(180, 32, 6)
    assert dims == [(180, 6), (212, 4), (244, 2), (276, 6), (308, 4)]
    assert [c // h for c, h in dims] == [30, 53, 122, 46, 77]


def test_dense_blocks_structure() -> None:
    group = _tiny().layers[0]
    assert [getattr(group, f"swin{k}").shift_size for k in range(1, 6)] == [0, 4, 0, 4, 0]
    assert [getattr(group, f"swin{k}").mlp.fc1.out_features for k in range(1, 6)] == [24, 32, 40, 24, 28]
    sd = _tiny().state_dict()
    assert "layers.0.swin1.attn_mask" not in sd and sd["layers.0.swin4.attn_mask"].shape == (4, 64, 64)


def test_non_divisible_heads_raise() -> None:
    with pytest.raises(ValueError, match="swin2"):
        _tiny(embed_dim=12, gc=5, num_heads=[4])  # 17 channels, 4 - 17 % 4 = 3 heads


def test_batch_and_other_sizes_use_computed_masks() -> None:
    net = _tiny().eval()
    x = torch.rand(2, 3, 24, 16)  # not the training size: masks are built for 24 x 16
    with torch.no_grad():
        both = net(x)
        torch.testing.assert_close(both[:1], net(x[:1]), atol=1e-5, rtol=1e-5)
    assert both.shape == (2, 3, 48, 32)


def test_img_size_within_one_window() -> None:
    net = _tiny(img_size=8, window_size=8)
    assert all(getattr(net.layers[0], f"swin{k}").shift_size == 0 for k in range(1, 6))
    assert not any(k.endswith("attn_mask") for k in net.state_dict())
    small = _tiny(img_size=4, window_size=8)  # official: blocks silently shrink to 4x4 windows
    assert small.pad_multiple == 4
    assert small.state_dict()["layers.0.swin1.attn.relative_position_index"].shape == (16, 16)
    with torch.no_grad():
        assert small.eval()(torch.rand(1, 3, 12, 8)).shape == (1, 3, 24, 16)


def test_img_size_must_fit_windows_when_shifting() -> None:
    with pytest.raises(ValueError, match="multiple of window_size"):
        _tiny(img_size=20)


def test_engine_attributes() -> None:
    net = _tiny(upscale=4)
    assert (net.scale, net.pad_multiple, net.clamp_output, net.supports_fp16) == (4, 8, False, False)
    assert _tiny(upsampler="").scale == 1


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
    assert len(calls) == (5 if use_checkpoint else 0)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4)


def test_training_regularisers_are_active_only_in_train_mode() -> None:
    torch.manual_seed(0)
    net = _tiny(drop_rate=0.3, attn_drop_rate=0.3, drop_path_rate=0.5, depths=[2, 2], num_heads=[4, 4])
    x = torch.rand(1, 3, 16, 16)
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x)
        torch.testing.assert_close(a, b)
        net.train()
        assert not torch.allclose(net(x), a)
