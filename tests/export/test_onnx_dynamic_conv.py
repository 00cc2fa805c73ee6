"""The dynamic depthwise convolution as exported to ONNX: the op alone (``restore::dynamic_depthwise_conv`` and its
translation) and DLGSANet's layer (its export form: static depthwise convolutions weighted per pixel), each the
graph's layout and ONNX Runtime against the eager path at many sizes; DLGSANet exports with and without TLC (their
channel norms exported as ``LayerNormalization``)."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

from restore.archs import build_network
from restore.archs.dlgsanet.arch import DynamicDepthwiseConv
from restore.archs.layers.norm import ChannelLayerNorm
from restore.export import OnnxNetwork, to_onnx
from restore.export import onnx as onnx_export
from restore.export.translations import translation_table
from restore.ops import dynamic_depthwise_conv
from restore.ops.dynamic_conv import torch_impl

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


class _Conv(torch.nn.Module):
    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return dynamic_depthwise_conv(x, weight)


def _export_op(path: Path, channels: int, groups: int, size: int, opset: int = 18) -> None:
    """The op alone, dynamic height and width (traced at 9 x 10)."""
    x, weight = torch.rand(1, channels, 9, 10), torch.rand(1, groups, size, size, 9, 10)
    height, width = torch.export.Dim("height", min=1, max=256), torch.export.Dim("width", min=1, max=256)
    with onnx_export._quiet():
        program = torch.onnx.export(
            _Conv(),
            (x, weight),
            dynamo=True,
            opset_version=opset,
            input_names=["x", "weight"],
            dynamic_shapes=({2: height, 3: width}, {4: height, 5: width}),
            custom_translation_table=translation_table(opset),
        )
    program.save(str(path))


@pytest.mark.parametrize(("channels", "groups", "size"), [(6, 3, 5), (4, 1, 3), (2, 2, 1)])
def test_graph_is_one_tap_set_at_a_time_with_three_ops_per_tap(channels: int, groups: int, size: int,
                                                               tmp_path: Path) -> None:  # fmt: skip
    _export_op(tmp_path / "op.onnx", channels, groups, size)
    ops = collections.Counter(node.op_type for node in onnx.load(str(tmp_path / "op.onnx")).graph.node)
    taps = groups * size * size
    assert ops["Slice"] == taps and ops["Mul"] == taps  # a shifted window and a product per tap, nothing else
    assert ops["Split"] == (groups > 1) + (taps > 1)  # the input into tap sets, the weights into taps: once each
    assert not ops.keys() & {"Gather", "Squeeze", "Unsqueeze", "Sum", "ReduceSum", "MatMul", "Einsum", "Expand"}
    # the first product starts each sum; the other Adds are the 2 * K window ends (one-element index arithmetic)
    assert ops["Add"] == taps - groups + 2 * size


@pytest.mark.parametrize(("channels", "groups", "size"), [(6, 3, 5), (4, 1, 3), (2, 2, 1)])
def test_onnx_runtime_matches_the_eager_op_at_every_size(channels: int, groups: int, size: int,
                                                         tmp_path: Path) -> None:  # fmt: skip
    _export_op(tmp_path / "op.onnx", channels, groups, size, opset=23)
    session = ort.InferenceSession(str(tmp_path / "op.onnx"), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for height, width in [(1, 1), (2, 7), (9, 10), (13, 6), (31, 40)]:  # smaller and larger than the kernel
        x = torch.randn(1, channels, height, width, generator=gen)
        weight = torch.randn(1, groups, size, size, height, width, generator=gen)
        got = session.run(None, {"x": x.numpy(), "weight": weight.numpy()})[0]
        want = dynamic_depthwise_conv(x, weight, backend="naive")
        np.testing.assert_allclose(got, want.numpy(), atol=2e-5, rtol=0, err_msg=f"{height}x{width}")


def test_the_traced_op_runs_the_eager_arithmetic() -> None:
    """The exported program's op (``restore::dynamic_depthwise_conv``) computes what ``torch_impl`` computes."""
    gen = torch.Generator().manual_seed(1)
    x, weight = torch.randn(2, 6, 11, 8, generator=gen), torch.randn(2, 3, 5, 5, 11, 8, generator=gen)
    got = torch.ops.restore.dynamic_depthwise_conv(x, weight)
    assert torch.equal(got, torch_impl.dynamic_depthwise_conv(x, weight))


@pytest.mark.parametrize(("channels", "group_channels", "size"), [(16, 4, 5), (12, 6, 3)])
def test_dlgsanet_layer_exports_as_weighted_static_convolutions(channels: int, group_channels: int, size: int,
                                                                tmp_path: Path) -> None:  # fmt: skip
    """R + 1 depthwise ``Conv`` on whole channel blocks (12 channels: padded to 16, cut once), R ``Mul``; the filter
    banks folded into initializers and ``conv2``'s weight gone; ONNX Runtime equal to the eager layer at every size."""
    torch.manual_seed(0)
    conv = DynamicDepthwiseConv(channels, size, group_channels).eval()
    rank = channels // 4
    onnx_export._export(conv, torch.randn(1, channels, 9, 10), tmp_path / "layer.onnx", 23, True, 1, {})
    model = onnx.load(str(tmp_path / "layer.onnx"))
    ops = collections.Counter(node.op_type for node in model.graph.node)
    assert ops["Conv"] == 2 + rank + 1 and ops["Mul"] == rank and ops["Slice"] == (channels % 16 != 0)
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)  # no custom op left
    shapes = [tuple(init.dims) for init in model.graph.initializer]
    assert shapes.count((16, 1, size, size)) == rank + 1
    assert tuple(conv.conv2[0].weight.shape) not in shapes
    session = ort.InferenceSession(str(tmp_path / "layer.onnx"), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(3)
    for height, width in [(1, 1), (2, 7), (9, 10), (13, 6), (31, 40)]:
        x = torch.randn(1, channels, height, width, generator=gen)
        with torch.no_grad():
            want = conv(x).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=0, err_msg=f"{height}x{width}")


@pytest.mark.parametrize("export_channels_last", [True, False])
def test_channel_norm_exports_as_layer_normalization_only_where_asked(export_channels_last: bool,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    """DLGSANet's norms ask for it (faster there in ONNX Runtime); DRSformer's keep the spelled-out form."""
    torch.manual_seed(0)
    norm = ChannelLayerNorm(6, export_channels_last=export_channels_last).eval()
    with torch.no_grad():
        norm.body.weight.uniform_(0.5, 1.5), norm.body.bias.uniform_(-1, 1)
    x = torch.randn(1, 6, 5, 7) * 3 + 1
    with onnx_export._quiet():
        torch.onnx.export(norm, (x,), dynamo=True, opset_version=18, input_names=["x"]).save(str(tmp_path / "n.onnx"))
    ops = collections.Counter(node.op_type for node in onnx.load(str(tmp_path / "n.onnx")).graph.node)
    assert (ops["LayerNormalization"], ops["ReduceMean"]) == ((1, 0) if export_channels_last else (0, 2))
    session = ort.InferenceSession(str(tmp_path / "n.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], norm(x).numpy(), atol=1e-5, rtol=0)


TINY = {"type": "DLGSANet", "dim": 8, "groups": 1, "blocks": 1, "buildblock_type": "sparseedge", "window_size": 5,
        "idynamic_num_heads": 2, "restormer_num_heads": 2, "tlc_kernel": 8, "upscale": 2,
        "upsampler": "pixelshuffledirect"}  # fmt: skip


@pytest.mark.slow  # two exports, 10-20 s each on 2 cores
@pytest.mark.parametrize("tlc", [True, False])
def test_dlgsanet_export_matches_pytorch_at_one_and_several_windows(tlc: bool, tmp_path: Path) -> None:
    network_g = {**TINY, "tlc_flag": tlc}
    torch.manual_seed(0)
    net = build_network(network_g).eval()
    report = to_onnx(net, tmp_path / "m.onnx", network_g=network_g)
    assert max(report.differences.values()) <= 1e-4
    ops = collections.Counter(node.op_type for node in onnx.load(str(report.path)).graph.node)
    norms = sum(isinstance(m, ChannelLayerNorm) for m in net.modules())
    assert norms == 4 and ops["LayerNormalization"] == norms and "ReduceMean" not in ops  # one fused kernel each
    gen = torch.Generator().manual_seed(2)
    # one TLC window (8 x 8), less than one (3 x 5), several with overlaps (19 x 30: 3 x 4 windows)
    inputs = {f"{h}x{w}": torch.rand(1, 3, h, w, generator=gen) for h, w in [(8, 8), (3, 5), (19, 30)]}
    differences = onnx_export._compare(OnnxNetwork(report.path), net, inputs, 1e-4)
    assert max(differences.values()) <= 1e-4, differences
