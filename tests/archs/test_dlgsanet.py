"""DLGSANet against the official parity fixtures and manifests; TLC windows, batches, variants."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from parity_helpers import PARITY_DIR, bf16_forward, check_manifest_meta_load, load_fixture_network
from torch_threads import one_thread_fixture

from restore.archs.dlgsanet import PRESETS, TLC_KERNEL_BY_SCALE, DLGSANet
from restore.archs.layers.tlc import tlc_apply, tlc_apply_traced, tlc_origins

FIXTURES = sorted(PARITY_DIR.glob("dlgsanet_*.pt"))
MANIFESTS = sorted(PARITY_DIR.glob("manifests/*DLGSANet*.json"))


_one_thread = one_thread_fixture()


def _tiny(**overrides: object) -> DLGSANet:
    cfg = {
        "dim": 8, "groups": 1, "blocks": 1, "buildblock_type": "sparseedge", "window_size": 5,
        "idynamic_num_heads": 2, "restormer_num_heads": 2, "tlc_kernel": 8, "upscale": 2,
        "upsampler": "pixelshuffledirect", **overrides,
    }  # fmt: skip
    return DLGSANet(**cfg)


def test_fixtures_are_present(fixtures: Path) -> None:
    assert fixtures / "parity" == PARITY_DIR
    assert len(FIXTURES) == 4 and len(MANIFESTS) == 9


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_parity_fixture(path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_OPS", backend)
    fixture = torch.load(path, weights_only=True)
    net = load_fixture_network(fixture, {"type": "DLGSANet", **fixture["kwargs"]})
    assert net.scale == fixture["scale"]
    with torch.no_grad():
        out = net(fixture["input"])
    if fixture["mode"] == "pipeline":  # SRModel.test + tensor2img: plain forward, then clamp to [0, 1]
        out = out.clamp(0, 1)
    torch.testing.assert_close(out, fixture["output"], atol=fixture["atol"], rtol=fixture["rtol"])


def _manifest_id(path: Path) -> str:
    kwargs = json.loads(path.read_text())["kwargs"]
    return f"{kwargs['dim']}C{kwargs['groups']}G{kwargs['blocks']}B_x{kwargs['upscale']}"


@pytest.mark.parametrize("path", MANIFESTS, ids=_manifest_id)
def test_manifest_keys_order_shapes(path: Path) -> None:
    manifest = json.loads(path.read_text())
    check_manifest_meta_load(manifest, {"type": "DLGSANet", **manifest["kwargs"]})


def test_presets_equal_manifests() -> None:
    kwargs = [json.loads(p.read_text())["kwargs"] for p in MANIFESTS]
    assert len(PRESETS) == len(kwargs) == 9
    assert all(cfg in kwargs for cfg in PRESETS.values()) and all(k in PRESETS.values() for k in kwargs)
    assert {cfg["upscale"]: cfg["tlc_kernel"] for cfg in PRESETS.values()} == TLC_KERNEL_BY_SCALE


def _official_grid(size: int, kernel: int) -> list[int]:
    """Window origins by walking the axis as the TLC reference does (step, then snap the last one to the end)."""
    k = min(size, kernel)
    count = (size - 1) // k + 1
    step = k if count == 1 else math.ceil((size - k) / (count - 1) - 1e-8)
    origins, i = [], 0
    while i < size:
        if i + k >= size:
            origins.append(size - k)
            break
        origins.append(i)
        i += step
    return origins


def test_tlc_origins() -> None:
    # examples listed in the parity README (section 5)
    assert tlc_origins(64, 48) == [0, 16] and tlc_origins(72, 48) == [0, 24]
    assert tlc_origins(40, 16) == [0, 12, 24] and tlc_origins(39, 16) == [0, 12, 23]
    assert tlc_origins(70, 20) == [0, 17, 34, 50] and tlc_origins(30, 48) == [0]
    for size in range(1, 130):
        for kernel in (1, 2, 7, 16, 20, 48, 72, 96):
            assert tlc_origins(size, kernel) == _official_grid(size, kernel), (size, kernel)


def test_tlc_apply_averages_overlaps() -> None:
    x = torch.randn(2, 3, 11, 9)
    # a per-window function that is not translation invariant: add the window mean
    out = tlc_apply(lambda w: w + w.mean(dim=(2, 3), keepdim=True), x, kernel=6)
    total = torch.zeros_like(x)
    count = torch.zeros(1, 1, 11, 9)
    for i in tlc_origins(11, 6):
        for j in tlc_origins(9, 6):
            win = x[:, :, i : i + 6, j : j + 6]
            total[:, :, i : i + 6, j : j + 6] += win + win.mean(dim=(2, 3), keepdim=True)
            count[:, :, i : i + 6, j : j + 6] += 1
    torch.testing.assert_close(out, total / count)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 3), (6, 6), (11, 9), (13, 40), (41, 7), (70, 33)])
@pytest.mark.parametrize("kernel", [6, 12])
def test_traced_tlc_places_the_same_windows(height: int, width: int, kernel: int) -> None:
    """The variant for graphs with symbolic sizes: the same grid (checked against the official loop) and average."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, height, width)

    def fn(w: torch.Tensor) -> torch.Tensor:
        return torch.cat([w * w.mean(dim=(2, 3), keepdim=True), w.amax(dim=(2, 3), keepdim=True).expand_as(w)], 1)

    out = tlc_apply_traced(fn, x, kernel)
    assert out.shape == (2, 6, height, width)
    torch.testing.assert_close(out, _tlc_reference(fn, x, kernel), atol=1e-6, rtol=1e-6)


def _tlc_reference(fn, x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Windows of min(H, K) rows by min(W, K) columns at the official origins of each axis, averaged."""
    _, _, height, width = x.shape
    kh, kw = min(height, kernel), min(width, kernel)
    total, count = None, torch.zeros(1, 1, height, width)
    for i in _official_grid(height, kernel):
        for j in _official_grid(width, kernel):
            out = fn(x[:, :, i : i + kh, j : j + kw])
            total = torch.zeros(x.shape[0], out.shape[1], height, width) if total is None else total
            total[:, :, i : i + kh, j : j + kw] += out
            count[:, :, i : i + kh, j : j + kw] += 1
    assert count.min() >= 1
    return total / count


@pytest.mark.parametrize(("height", "width"), [(5, 19), (19, 5), (8, 17), (17, 8)], ids=["land", "port", "h=k", "w=k"])
def test_tlc_when_only_one_side_exceeds_the_kernel(height: int, width: int) -> None:
    """Landscape and portrait inputs whose short side is below ``tlc_kernel`` and long side above it."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, height, width)

    def fn(w: torch.Tensor) -> torch.Tensor:  # not translation invariant: depends on the window's statistics
        return w * w.std(dim=(2, 3), keepdim=True) + w.mean(dim=(2, 3), keepdim=True)

    out = tlc_apply(fn, x, kernel=8)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _tlc_reference(fn, x, 8))
    from restore.archs.layers.transposed_attention import WindowedTransposedAttention

    net = _tiny().eval()
    attn = next(m for m in net.modules() if isinstance(m, WindowedTransposedAttention))  # sparse block, kernel 8
    assert attn.tlc_kernel == 8 and not attn.training
    with torch.no_grad():
        features = torch.randn(1, 8, height, width)
        qkv = attn.qkv_dwconv(attn.qkv(features))
        expected = attn.project_out(_tlc_reference(lambda w: attn.attend(w, attn.mode), qkv, attn.tlc_kernel))
        torch.testing.assert_close(attn(features), expected, rtol=1e-5, atol=1e-6)


def test_engine_attributes() -> None:
    net = _tiny(upscale=3)
    assert (net.scale, net.pad_multiple, net.clamp_output) == (3, 1, True)
    assert _tiny(upsampler="").scale == 1
    assert net.supports_fp16 is True


def test_tlc_batch_equals_per_sample_and_keeps_no_state() -> None:
    torch.manual_seed(0)
    net = _tiny().eval()
    x = torch.rand(3, 3, 19, 13)  # windows of 8: 3 x 2 grid
    before = {name: set(vars(m)) for name, m in net.named_modules()}
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert {name: set(vars(m)) for name, m in net.named_modules()} == before


def test_tlc_only_in_eval_mode() -> None:
    torch.manual_seed(1)
    net = _tiny()
    x = torch.rand(1, 3, 19, 13)
    with torch.no_grad():
        windowed = net.eval()(x)
        global_ = net.train()(x)
        net_no_tlc = _tiny(tlc_flag=False)
        net_no_tlc.load_state_dict(net.state_dict())
        assert torch.equal(net_no_tlc.eval()(x), global_)
        small = net.eval()(x[..., :8, :8])  # one window covers everything: TLC = global attention
        torch.testing.assert_close(small, net.train()(x[..., :8, :8]), atol=0, rtol=0)
    assert not torch.allclose(windowed, global_)


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(2)
    net = _tiny(groups=2, blocks=1).train()
    net(torch.rand(2, 3, 10, 12)).square().mean().backward()
    assert not [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]


@pytest.mark.parametrize(
    "overrides",
    [
        {"buildblock_type": "edge", "upsampler": "pixelshuffle", "upscale": 4, "body_norm": True},
        {"buildblock_type": "idynamic", "upsampler": "", "idynamic": False, "idynamic_ffn_type": "BaseFFN"},
        {"buildblock_type": "restormer", "upsampler": "pixelshuffle", "upscale": 3, "in_chans": 1},
        {"activation": "gelu", "restormer_ffn_type": "BaseFFN", "input_resolution": (10, 12)},
        {"activation": "sigmoid"},
        {"activation": "none"},
    ],
    ids=["edge", "idynamic", "restormer", "gelu", "sigmoid", "identity"],
)
def test_variants_build_and_run(overrides: dict) -> None:
    net = _tiny(**overrides).eval()
    channels = overrides.get("in_chans", 3)
    with torch.no_grad():
        out = net(torch.rand(2, channels, 10, 12))
    assert out.shape == (2, channels, 10 * net.scale, 12 * net.scale) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("overrides", "modes"),
    [
        ({}, ["relu"]),
        ({"activation": "gelu"}, ["gelu"]),
        ({"activation": "sigmoid"}, ["sigmoid"]),
        ({"activation": "none"}, ["linear"]),
        ({"buildblock_type": "edge", "activation": "gelu"}, ["softmax"]),  # dense blocks: softmax, any activation
        ({"buildblock_type": "restormer", "blocks": 2}, ["softmax", "softmax"]),
    ],
    ids=["sparseedge-relu", "gelu", "sigmoid", "identity", "edge-dense", "restormer-dense"],
)
def test_variant_attention_is_the_documented_mode(overrides: dict, modes: list[str]) -> None:
    """Each global block's attention equals ``sparse_channel_attention(mode=...)`` on the block's own projections,
    and differs from the other modes (so swapping GELU for ReLU, or softmax for ReLU, is caught)."""
    from restore.archs.layers.transposed_attention import WindowedTransposedAttention
    from restore.ops.sparse_channel_attention import sparse_channel_attention

    torch.manual_seed(0)
    net = _tiny(**overrides)
    blocks = [m for m in net.modules() if isinstance(m, WindowedTransposedAttention)]
    assert [b.mode for b in blocks] == modes
    for attn in blocks:
        attn.train()  # whole-map attention (TLC windows are tested separately)
        with torch.no_grad():
            attn.temperature.uniform_(0.5, 2.0)
            x = torch.randn(2, 8, 6, 7)
            qkv = attn.qkv_dwconv(attn.qkv(x))
            q, k, v = qkv.reshape(2, 3, attn.num_heads, 8 // attn.num_heads, 42).unbind(1)

            def expected(mode: str, q=q, k=k, v=v, attn=attn) -> torch.Tensor:
                out = sparse_channel_attention(q, k, v, attn.temperature, mode=mode, backend="naive")
                return attn.project_out(out.reshape(2, 8, 6, 7))

            actual = attn(x)
            torch.testing.assert_close(actual, expected(attn.mode), rtol=1e-5, atol=1e-6)
            for other in {"relu", "gelu", "sigmoid", "linear", "softmax"} - {attn.mode}:
                assert (actual - expected(other)).abs().max() > 1e-3, f"{attn.mode} indistinguishable from {other}"


def test_bfloat16_forward_is_finite_and_close() -> None:
    torch.manual_seed(3)
    ref, low = bf16_forward(_tiny(), torch.rand(1, 3, 12, 10))
    assert (low.float() - ref).abs().mean() < 5e-2 * ref.abs().mean()


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="odd"):
        _tiny(window_size=4)
    with pytest.raises(ValueError, match="tap sets"):
        _tiny(dim=20, idynamic_num_heads=3)  # G = 20 // 3 = 6 tap sets cannot share 20 channels evenly
    with pytest.raises(ValueError, match="buildblock_type"):
        _tiny(buildblock_type="swin")
    with pytest.raises(ValueError, match="FFN type"):
        _tiny(idynamic_ffn_type="MLP")


@pytest.mark.parametrize("mode", ["relu", "softmax", "gelu"])
@pytest.mark.parametrize(("height", "width"), [(5, 7), (12, 12), (13, 40), (41, 9)])
def test_tlc_attention_by_window_sums_equals_window_batches(mode: str, height: int, width: int) -> None:
    """The formulation used in graphs of dynamic size (ONNX export) against ``tlc_apply`` of the attention."""
    from restore.archs.layers.transposed_attention import WindowedTransposedAttention

    torch.manual_seed(0)
    attn = WindowedTransposedAttention(24, 3, False, mode, True, 12).eval()
    with torch.no_grad():
        attn.temperature.uniform_(0.5, 2.0)
    qkv = torch.randn(2, 72, height, width)
    want = tlc_apply(lambda windows: attn.attend(windows, mode), qkv, 12)
    torch.testing.assert_close(attn.attend_windows_by_sums(qkv), want, atol=2e-6, rtol=1e-5)
