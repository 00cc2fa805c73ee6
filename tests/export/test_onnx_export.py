"""ONNX export of every family, verified in ONNX Runtime against PyTorch, and the exported models run through the
tiled engine (``restore infer --onnx``). Exports trace the whole network and take 5-60 s each: slow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import yaml

from restore.archs import build_network
from restore.cli import main as cli_main
from restore.engine import infer
from restore.export import ExportError, OnnxNetwork, VerificationError, read_metadata, to_onnx
from restore.export import onnx as onnx_export

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY: dict[str, dict[str, Any]] = {
    "HAT": {"type": "HAT", "img_size": 16, "window_size": 8, "embed_dim": 12, "depths": [2], "num_heads": [2],
            "compress_ratio": 3, "squeeze_factor": 4, "mlp_ratio": 2, "upscale": 2, "upsampler": "pixelshuffle"},
    "DRCT": {"type": "DRCT", "img_size": 16, "window_size": 8, "embed_dim": 12, "depths": [2], "num_heads": [4],
             "gc": 4, "mlp_ratio": 2, "upscale": 2, "upsampler": "pixelshuffle"},
    "DLGSANet": {"type": "DLGSANet", "dim": 8, "groups": 1, "blocks": 1, "buildblock_type": "sparseedge",
                 "window_size": 5, "idynamic_num_heads": 2, "restormer_num_heads": 2, "tlc_kernel": 8, "upscale": 2,
                 "upsampler": "pixelshuffledirect"},
    "DRSformer": {"type": "DRSformer", "dim": 8, "num_blocks": [1, 1, 1, 1], "heads": [1, 2, 2, 4],
                  "ffn_expansion_factor": 2.0},
}  # fmt: skip


def _official(family: str) -> tuple[dict[str, Any], int]:
    """Official-shaped ``network_g`` and the smallest export size the family allows (one window / pad multiple;
    DLGSANet has no multiple, 16 keeps its TLC windows inactive)."""
    if family == "HAT":
        from restore.archs.hat import PRESETS

        return {"type": "HAT", "upscale": 4, **PRESETS["HAT-S"]}, 16
    if family == "DRCT":
        from restore.archs.drct import PRESETS

        return {"type": "DRCT", "upscale": 4, **PRESETS["DRCT"]}, 16
    if family == "DLGSANet":
        from restore.archs.dlgsanet import PRESETS

        return {"type": "DLGSANet", **PRESETS["light_x4"]}, 16
    from restore.archs.drsformer import PRESETS

    return {"type": "DRSformer", **PRESETS["Rain200H"]}, 8


def parity_file(fixtures: Path, name: str) -> Path:
    """A parity fixture: ``tests/fixtures/parity`` first, else the ``shared/parity`` folder beside the clone."""
    for folder in (fixtures / "parity", REPO_ROOT.parent / "shared" / "parity"):
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"parity fixture {name} not found in tests/fixtures/parity or ../shared/parity")


def _build(network_g: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(network_g).eval()


def _check_ort(path: Path, net: torch.nn.Module, sizes: list[tuple[int, int]]) -> None:
    """The exported model on new random inputs, with the export's own comparison (see ``_compare``)."""
    inputs = {f"{h}x{w}": torch.rand(1, 3, h, w) for h, w in sizes}
    differences = onnx_export._compare(OnnxNetwork(path), net, inputs, 1e-4)
    assert max(differences.values()) <= 1e-4, differences


VARIANTS = {**TINY, "DRSformer-noMEFC": {**TINY["DRSformer"], "mefc": False}}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tiny_fixed_size_export(variant: str, tmp_path: Path) -> None:
    network_g = VARIANTS[variant]
    family = network_g["type"]
    net = _build(network_g)
    report = to_onnx(net, tmp_path / "m.onnx", tile=20, network_g=network_g)
    side = -(-20 // net.pad_multiple) * net.pad_multiple
    assert report.tile_size == side and max(report.differences.values()) <= 1e-4
    assert sorted(report.differences) == ["random input", "sample photo crop"]
    meta = read_metadata(report.path)
    assert (meta["type"], meta["scale"], meta["pad_multiple"], meta["tile_size"]) == (
        family, net.scale, net.pad_multiple, side,
    )  # fmt: skip
    assert meta["network_g"] == network_g
    if family in ("HAT", "DRCT"):  # every linear layer on 2-D tokens: one Gemm with its bias, no MatMul + Add
        ops = Counter(node.op_type for node in onnx.load(str(report.path)).graph.node)
        assert ops["MatMul"] == 0 and ops["Gemm"] > 0
    _check_ort(report.path, net, [(side, side)])
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.slow
def test_fp16_export_is_verified_at_the_half_precision_tolerance(tmp_path: Path) -> None:
    network_g = TINY["DLGSANet"]  # the family whose supports_fp16 allows it
    net = _build(network_g)
    report = to_onnx(net, tmp_path / "m.onnx", tile=20, network_g=network_g, precision="fp16")
    assert report.tolerance == onnx_export.TOLERANCES["fp16"]
    assert 0 < max(report.differences.values()) <= report.tolerance  # really computed in half precision
    assert read_metadata(report.path)["precision"] == "fp16"
    side = report.tile_size
    x = torch.rand(1, 3, side, side)
    with torch.no_grad():
        want = net(x)
    torch.testing.assert_close(OnnxNetwork(report.path)(x), want, atol=report.tolerance, rtol=0)


def test_bf16_export_is_refused_before_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "_export", lambda *a, **k: pytest.fail("traced although refused"))
    with pytest.raises(ExportError, match=r"^precision bf16: ONNX Runtime's CPU provider"):
        to_onnx(_build(TINY["DLGSANet"]), tmp_path / "m.onnx", tile=20, precision="bf16")
    assert list(tmp_path.iterdir()) == []


def _checkpoint(tmp_path: Path, network_g: dict[str, Any]) -> tuple[torch.nn.Module, Path, Path]:
    """The network of ``_build`` and its checkpoint and option file."""
    net = _build(network_g)
    weights, opt = tmp_path / "net.pth", tmp_path / "net.yml"
    torch.save({"params_ema": net.state_dict()}, weights)
    opt.write_text(yaml.safe_dump({"network_g": network_g}))
    return net, weights, opt


@pytest.mark.slow  # 25-60 s per family on 2 cores
@pytest.mark.parametrize("family", sorted(TINY))
def test_default_export_is_dynamic_and_infer_onnx_equals_pytorch_at_every_size(
    family: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from restore.data.image_io import read_image, write_image

    network_g = TINY[family]  # DLGSANet with tlc_flag: true (the default), windows of 8 px
    net, weights, opt = _checkpoint(tmp_path, network_g)
    model = tmp_path / "m.onnx"
    assert cli_main(["export", "--weights", str(weights), "--opt", str(opt), "-o", str(model)]) == 0
    out = capsys.readouterr().out
    assert "dynamic height/width" in out and "small odd input" in out
    assert read_metadata(model)["tile_size"] is None

    # one window, odd and smaller than a tile, odd and several tiles (16-px cores, 8 px of context)
    window = max(net.pad_multiple, 5)
    sizes = [(window, window), (11, 13), (37, 50)]
    rng = np.random.default_rng(0)
    for h, w in sizes:
        write_image(tmp_path / "in" / f"{h}x{w}.png", rng.random((h, w, 3), dtype=np.float32))
    common = ["-i", str(tmp_path / "in"), "--tile", "16", "--tile-overlap", "8", "--no-progress"]
    assert cli_main(["infer", "--onnx", str(model), "-o", str(tmp_path / "onnx"), *common]) == 0
    torch_argv = ["infer", "--weights", str(weights), "--opt", str(opt), "-o", str(tmp_path / "torch"), *common]
    assert cli_main(torch_argv) == 0
    for h, w in sizes:
        got = read_image(tmp_path / "onnx" / f"{h}x{w}.png").rgb
        want = read_image(tmp_path / "torch" / f"{h}x{w}.png").rgb
        assert got.shape == (h * net.scale, w * net.scale, 3)
        assert np.abs(got - want).max() <= 1 / 255 + 1e-6, (h, w)

    # the float outputs of the engine, before 8-bit rounding, within the export tolerance
    runner = OnnxNetwork(model)
    for h, w in [*sizes, (2 * window + 1, 3 * window)]:
        lq = torch.rand(1, 3, h, w)
        torch.testing.assert_close(infer(runner, lq, tile=16, tile_overlap=8), infer(net, lq, tile=16, tile_overlap=8),
                                   atol=1e-4, rtol=0)  # fmt: skip


@pytest.mark.slow
def test_dynamic_export_traced_at_a_given_size(tmp_path: Path) -> None:
    network_g = {**TINY["DLGSANet"], "tlc_kernel": 12}
    net = _build(network_g)
    report = to_onnx(net, tmp_path / "m.onnx", tile=30, dynamic=True, network_g=network_g)
    assert report.tile_size is None and read_metadata(report.path)["tile_size"] is None
    assert sorted(report.differences) == ["random input", "sample photo crop", "small odd input"]
    _check_ort(report.path, net, [(30, 30), (13, 41), (2, 3), (25, 12)])  # 1 to 4 TLC windows per side


@pytest.mark.slow
def test_failed_verification_removes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Off(OnnxNetwork):  # only the second verification input (the photo crop) is off
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            Off.calls += 1
            return super().forward(x) + (1e-3 if Off.calls == 2 else 0.0)

    monkeypatch.setattr(onnx_export, "OnnxNetwork", Off)
    with pytest.raises(VerificationError, match=r"by more than 0.0001 \(random input .*, sample photo crop 1.00e-03\)"):
        to_onnx(_build(TINY["DLGSANet"]), tmp_path / "m.onnx", tile=16)
    assert Off.calls == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # 40-60 s per family on 2 cores
@pytest.mark.parametrize("family", sorted(TINY))
def test_official_shaped_export_at_the_smallest_size(family: str, tmp_path: Path) -> None:
    network_g, side = _official(family)
    net = _build(network_g)
    report = to_onnx(net, tmp_path / "m.onnx", tile=side, network_g=network_g)
    assert report.tile_size == side and max(report.differences.values()) <= 1e-4
    assert sorted(report.differences) == ["random input", "sample photo crop"]


@pytest.mark.slow  # 2 min on 2 cores
def test_official_drsformer_with_near_tied_top_k_scores_verifies(tmp_path: Path) -> None:
    """The official Rain200H network with seed-0 weights at 128 px: on the sample photo crop ONNX Runtime picks
    differently from PyTorch between top-k scores a few ulps apart (max abs difference ~6e-3 before the replay)."""
    network_g, _ = _official("DRSformer")
    net = _build(network_g)
    report = to_onnx(net, tmp_path / "m.onnx", tile=128, network_g=network_g)
    assert max(report.differences.values()) <= 1e-4
    assert set(report.tie_flips) <= set(report.differences)


def test_slice_split_rewrite_is_left_out_only_while_exporting() -> None:
    from onnxscript import rewriter
    from onnxscript.rewriter.rules.common import slice_split_rule

    before = rewriter._DEFAULT_REWRITE_RULES
    assert slice_split_rule in before
    with pytest.raises(KeyError), onnx_export._linear_time_rewrites():
        during = rewriter._DEFAULT_REWRITE_RULES
        raise KeyError
    assert slice_split_rule not in during and len(during) == len(before) - 1
    assert rewriter._DEFAULT_REWRITE_RULES is before


@pytest.mark.slow
def test_parity_checkpoint_through_infer_onnx(fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from skimage import data

    from restore.data.image_io import read_image, write_image

    fixture = torch.load(parity_file(fixtures, "hat_tiny_x2_arch.pt"), weights_only=True)
    network_g = {"type": "HAT", **fixture["kwargs"]}
    weights, opt = tmp_path / "hat.pth", tmp_path / "hat.yml"
    torch.save({"params_ema": fixture["state_dict"]}, weights)
    opt.write_text(yaml.safe_dump({"network_g": network_g}))
    model = tmp_path / "hat.onnx"
    status = cli_main(["export", "--weights", str(weights), "--opt", str(opt), "-o", str(model), "--tile", "32"])
    out = capsys.readouterr().out
    assert status == 0 and "max abs difference" in out and model.is_file()

    # 48 x 64: 3 x 4 tiles of 16-px cores with 8 px of context, i.e. 32-px regions, which the fixed-size model
    # gets unchanged, so the ONNX and PyTorch tilings are the same
    photo = data.astronaut()[100:196:2, 180:308:2].astype(np.float32) / 255
    write_image(tmp_path / "in" / "photo.png", photo)
    argv = ["infer", "--onnx", str(model), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
            "--tile", "16", "--tile-overlap", "8", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0

    net = build_network(network_g).eval()
    net.load_state_dict(fixture["state_dict"])
    lq = torch.from_numpy(read_image(tmp_path / "in" / "photo.png").rgb).permute(2, 0, 1)[None]
    want = infer(net, lq, tile=16, tile_overlap=8)
    runner = OnnxNetwork(model)
    calls: list[tuple[int, ...]] = []
    runner.register_forward_hook(lambda _m, args, _o: calls.append(tuple(args[0].shape)))
    got = infer(runner, lq, tile=16, tile_overlap=8)
    assert len(calls) == 12 and {c[2:] for c in calls} == {(32, 32)}
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    written = read_image(tmp_path / "out" / "photo.png").rgb
    expected = want[0].permute(1, 2, 0).clamp(0, 1).numpy()
    assert np.abs(written - expected).max() <= 1 / 255 + 1e-6
