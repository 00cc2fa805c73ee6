"""Fast checks of the ONNX side that need no network export: fixed-size tiling in the engine, the ONNX Runtime
runner's metadata handling, missing packages, and the command-line refusals that happen before any export."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper
from torch import Tensor, nn

from restore.cli import main as cli_main
from restore.engine import infer
from restore.engine.inference import resolve_tile_overlap
from restore.export import OnnxNetwork, OnnxSetupError, read_metadata
from restore.export.onnx import max_opset
from restore.export.runtime import METADATA_KEYS, require


class LocalNet(nn.Module):
    """conv3x3 -> tanh -> conv3x3 -> pixel shuffle (5x5 receptive field); records the input shapes it sees."""

    def __init__(self, scale: int = 2, pad_multiple: int = 8, fixed: int | None = None) -> None:
        super().__init__()
        self.scale, self.pad_multiple = scale, pad_multiple
        if fixed is not None:
            self.fixed_input_size = fixed
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 3 * scale * scale, 3, padding=1)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append(tuple(x.shape))
        return F.pixel_shuffle(self.tail(torch.tanh(self.head(x))), self.scale)


@pytest.mark.parametrize("size", [(70, 50), (20, 12), (32, 96)])
@pytest.mark.parametrize("tile", [None, 16, 200])
def test_fixed_size_network_gets_tiles_of_exactly_its_size(size: tuple[int, int], tile: int | None) -> None:
    torch.manual_seed(0)
    free = LocalNet().eval()
    fixed = LocalNet(fixed=32).eval()
    fixed.load_state_dict(free.state_dict())
    lq = torch.rand(1, 3, *size)
    want = infer(free, lq)  # untiled: a local network is reproduced exactly by any tiling with >= 2 px context
    got = infer(fixed, lq, tile=tile, tile_overlap=8)
    assert got.shape == want.shape == (1, 3, 2 * size[0], 2 * size[1])
    assert fixed.calls and {c[2:] for c in fixed.calls} == {(32, 32)}
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fixed_size_average_blend_uses_the_fixed_window() -> None:
    fixed = LocalNet(fixed=32).eval()
    infer(fixed, torch.rand(1, 3, 40, 72), tile=24, tile_overlap=8, blend="average")
    assert {c[2:] for c in fixed.calls} == {(32, 32)}


def test_fixed_size_default_overlap_is_a_quarter_of_the_input() -> None:
    net, lq = LocalNet(fixed=32).eval(), torch.rand(1, 3, 40, 72)
    torch.testing.assert_close(infer(net, lq), infer(net, lq, tile_overlap=8), atol=0, rtol=0)
    assert resolve_tile_overlap(None, 32) == 8 and resolve_tile_overlap(None, 256) == 32
    assert resolve_tile_overlap(None, None) == 32 and resolve_tile_overlap(15, 32) == 15


def test_fixed_size_with_too_much_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="tile_overlap 16 leaves no room"):
        infer(LocalNet(fixed=32).eval(), torch.rand(1, 3, 64, 64), tile_overlap=16)


def _identity_model(path: Path, metadata: dict[str, str] | None, side: int | str = "H") -> None:
    """An ONNX graph ``output = Resize(input, x2 nearest)`` written with ``metadata`` as model properties."""
    shape_in = [1, 3, side, side]
    shape_out = [1, 3, side * 2 if isinstance(side, int) else "H2", side * 2 if isinstance(side, int) else "H2"]
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    node = helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")
    graph = helper.make_graph(
        [node],
        "up2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape_out)],
        initializer=[scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, path)


def _meta(**overrides: str) -> dict[str, str]:
    base = {"type": "Up2", "scale": "2", "pad_multiple": "4", "clamp_output": "false", "supports_fp16": "true",
            "tile_size": "dynamic", "precision": "fp32", "task": "", "network_g": "{}"}  # fmt: skip
    return {**base, **overrides}


def test_runner_reads_the_metadata_and_runs_in_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "up2.onnx"
    _identity_model(path, _meta())
    net = OnnxNetwork(path)
    assert (net.scale, net.pad_multiple, net.fixed_input_size) == (2, 4, None)
    assert read_metadata(path)["type"] == "Up2"
    lq = torch.rand(2, 3, 30, 22)
    out = infer(net, lq, tile=8, tile_overlap=4, tile_batch_size=3)
    torch.testing.assert_close(out, F.interpolate(lq, scale_factor=2, mode="nearest"))


def test_runner_fixed_size_model(tmp_path: Path) -> None:
    path = tmp_path / "up2_16.onnx"
    _identity_model(path, _meta(tile_size="16"), side=16)
    net = OnnxNetwork(path)
    assert net.fixed_input_size == 16
    lq = torch.rand(1, 3, 21, 9)  # smaller than the model on one side, several tiles on the other
    torch.testing.assert_close(infer(net, lq, tile_overlap=4), F.interpolate(lq, scale_factor=2, mode="nearest"))
    with pytest.raises(ValueError, match="takes 16x16 inputs"):
        net(torch.rand(1, 3, 8, 8))


def test_fixed_size_model_warns_when_an_image_is_padded_up_to_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "up2_16.onnx"
    _identity_model(path, _meta(tile_size="16"), side=16)
    net = OnnxNetwork(path)
    with caplog.at_level("WARNING", logger="restore.engine"):
        infer(net, torch.rand(1, 3, 20, 24), tile_overlap=4)
    assert caplog.records == []  # tiles of real image content only
    with caplog.at_level("WARNING", logger="restore.engine"):
        infer(net, torch.rand(1, 3, 9, 40), tile_overlap=4)
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith("a 9x40 input is padded to the fixed-size model's 16x16 input, so the result is not")
    assert "export with dynamic height and width" in message


def test_runner_refuses_a_model_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.onnx"
    _identity_model(path, None)
    with pytest.raises(OnnxSetupError, match="metadata lacks type, scale") as info:
        OnnxNetwork(path)
    assert "\n" not in str(info.value)
    assert set(METADATA_KEYS) <= set(_meta())


def test_runner_refuses_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(OnnxSetupError, match="ONNX model not found"):
        OnnxNetwork(tmp_path / "none.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(OnnxSetupError, match="not a usable ONNX model"):
        OnnxNetwork(broken)


def test_missing_package_says_what_to_install() -> None:
    with pytest.raises(OnnxSetupError, match=r"pip install 'restore\[onnx\]'"):
        require("restore_no_such_onnx_package")


def test_infer_onnx_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from restore.data.image_io import read_image, write_image

    path = tmp_path / "up2.onnx"
    _identity_model(path, _meta())
    rgb = np.random.default_rng(0).random((20, 28, 3), dtype=np.float32)
    write_image(tmp_path / "in.png", rgb)
    source = read_image(tmp_path / "in.png").rgb
    status = cli_main(["infer", "--onnx", str(path), "-i", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"),
                       "--tile", "8", "--no-progress"])  # fmt: skip
    assert status == 0
    out = read_image(tmp_path / "out" / "in.png").rgb
    np.testing.assert_allclose(out, source.repeat(2, 0).repeat(2, 1), atol=1e-6)
    capsys.readouterr()
    both = ["infer", "--onnx", str(path), "--weights", str(path), "-i", str(tmp_path / "in.png"), "-o", str(tmp_path)]
    assert cli_main(both) == 2
    err = capsys.readouterr().err.strip()
    assert "--onnx replaces --weights" in err and len(err.splitlines()) == 1
    assert cli_main(["infer", "--onnx", str(path), "-i", str(tmp_path / "in.png"), "-o", str(tmp_path),
                     "--precision", "bf16"]) == 2  # fmt: skip
    assert "fixed at export" in capsys.readouterr().err


def test_infer_onnx_fixed_size_default_overlap_fits_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import restore.engine.folder as folder
    from restore.data.image_io import read_image, write_image

    path = tmp_path / "up2_32.onnx"
    _identity_model(path, _meta(tile_size="32"), side=32)
    write_image(tmp_path / "in.png", np.random.default_rng(0).random((40, 56, 3), dtype=np.float32))
    seen: list[int] = []
    engine = folder.infer
    monkeypatch.setattr(folder, "infer", lambda *a, **k: seen.append(k["tile_overlap"]) or engine(*a, **k))
    argv = ["infer", "--onnx", str(path), "-i", str(tmp_path / "in.png"), "--no-progress"]
    assert cli_main([*argv, "-o", str(tmp_path / "out")]) == 0  # the default 32 px would leave no core in 32x32
    assert seen == [8]  # a quarter of the input side
    source = read_image(tmp_path / "in.png").rgb
    np.testing.assert_allclose(read_image(tmp_path / "out" / "in.png").rgb, source.repeat(2, 0).repeat(2, 1), atol=1e-6)
    capsys.readouterr()
    assert cli_main([*argv, "-o", str(tmp_path / "out2"), "--tile-overlap", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--tile-overlap: tile_overlap 16 leaves no room for a tile core in the network's fixed 32x32" in err
    assert "use a tile_overlap below 16, or export with a larger tile" in err
    assert not (tmp_path / "out2").exists()


def _checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny HAT checkpoint and its option file."""
    from restore.archs import build_network

    network_g = {"type": "HAT", "img_size": 16, "window_size": 8, "embed_dim": 12, "depths": [2], "num_heads": [2],
                 "compress_ratio": 3, "squeeze_factor": 4, "mlp_ratio": 2, "upscale": 2,
                 "upsampler": "pixelshuffle"}  # fmt: skip
    weights = tmp_path / "hat_tiny.pth"
    torch.save({"params": build_network(network_g).state_dict()}, weights)
    opt = tmp_path / "hat_tiny.yml"
    import yaml

    opt.write_text(yaml.safe_dump({"network_g": network_g}))
    return weights, opt


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("not a network", [], "hat_tiny.pth"),
        ("fp16 for HAT", ["--precision", "fp16"], "precision fp16 refused for HAT: its activations exceed the "
         "float16 range with trained weights (inf/NaN outputs); export it with --precision fp32"),
        ("tile below a window", ["--tile", "4"], "--tile 4 is smaller than one window of HAT (8 px"),
        ("missing folder", [], "does not exist"),
        ("opset too low", ["--opset", "5"], f"opset 5: the exporter supports opsets 18..{max_opset()}"),
        ("opset too high", ["--opset", "99"], f"opset 99: the exporter supports opsets 18..{max_opset()}"),
        ("output under a file", [], "out is a file, not a folder"),
    ],
)
def test_export_refusals_are_one_line_and_leave_nothing(
    case: str, extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, opt = _checkpoint(tmp_path)
    target = tmp_path / "out" / "model.onnx"
    if case == "output under a file":
        target.parent.write_text("a file")
        target = target.parent / "sub" / "model.onnx"
    elif case != "missing folder":
        target.parent.mkdir()
    if case == "not a network":
        torch.save({"params": {"some.weight": torch.zeros(3)}}, weights)
        argv = ["export", "--weights", str(weights), "-o", str(target)]
    else:
        argv = ["export", "--weights", str(weights), "--opt", str(opt), "-o", str(target), *extra]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert err.startswith("restore export: error: ")
    left = list(target.parent.iterdir()) if target.parent.is_dir() else []
    assert left == []
