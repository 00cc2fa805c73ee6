"""DRCT against the official parity fixtures and manifests; dense blocks, stored masks, training, dtypes."""

from __future__ import annotations

from pathlib import Path

import parity_helpers as parity
import pytest
import torch
from torch_threads import one_thread_fixture

from restore.archs import build_network
from restore.archs.drct import DRCT, PRESETS
from restore.archs.drct.arch import dense_block_dims
from restore.ops.window_attention import relative_position_index

ARCH_FIXTURES = parity.fixtures("drct", "arch")
PIPELINE_FIXTURES = parity.fixtures("drct", "pipeline")
MANIFESTS = parity.manifests("DRCT")


_one_thread = one_thread_fixture()


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
    parity.check_window_arch_fixture(path, "DRCT")


@pytest.mark.parametrize("path", PIPELINE_FIXTURES, ids=lambda p: p.stem)
def test_model_class_pipeline_fixture(path: Path) -> None:
    parity.check_model_class_pipeline_fixture(path, "DRCT")


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
            assert torch.equal(value, fx["state_dict"][key])  # built fresh, not loaded: the official values


@pytest.mark.parametrize("path", ARCH_FIXTURES + PIPELINE_FIXTURES, ids=lambda p: p.stem)
def test_freshly_built_buffers_equal_the_official_ones(path: Path) -> None:
    names = parity.check_fresh_buffers_match_fixture(path, "DRCT")
    assert any(n.endswith("relative_position_index") for n in names)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_state_dict_layout(path: Path) -> None:
    parity.check_window_manifest_layout(path, "DRCT")


def test_presets_are_the_manifests() -> None:
    parity.check_presets_are_manifests(PRESETS, MANIFESTS[0].parent, "DRCT-L")


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
    ref, out = parity.bf16_forward(_tiny(), torch.rand(1, 3, 16, 16))
    assert (out.float() - ref).abs().max() < 0.05


@pytest.mark.parametrize("use_checkpoint", [False, True])
def test_backward_reaches_every_parameter(use_checkpoint: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    parity.check_swin_backward(_tiny, use_checkpoint, monkeypatch, checkpointed_blocks=5)


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
