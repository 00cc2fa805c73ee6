"""DRSformer's MSFN in its export form (``restore.archs.drsformer.msfn_export``): the same function as the PyTorch
path, and exported graphs whose convolutions all have channel counts ONNX Runtime runs blocked (multiples of 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restore.archs import build_network
from restore.archs.drsformer.arch import MixedScaleFeedForward
from restore.archs.drsformer.msfn_export import CHANNEL_BLOCK, msfn_export_forward, pair_layout
from restore.export import OnnxNetwork, to_onnx
from restore.export import onnx as onnx_export


@pytest.mark.parametrize("hidden", [1, 2, 3, 5, 16, 21, 32, 42, 85, 127, 170])
def test_pair_layout_holds_every_pair_of_the_interleaved_branch_once(hidden: int) -> None:
    # the pairs as MSFN forms them: channel 2o and 2o+1 of cat(a, b), a = 3x3 branch, b = 5x5 branch
    members = [(c, 3) for c in range(hidden)] + [(c, 5) for c in range(hidden)]
    want = {o: (members[2 * o], members[2 * o + 1]) for o in range(hidden)}
    got = {}
    for first, second, start, count in pair_layout(hidden):
        assert len(first) == len(second) and len(first) % CHANNEL_BLOCK == 0
        for slot in range(count):
            assert start + slot not in got
            got[start + slot] = (first[slot], second[slot])
    assert got == want


@pytest.mark.parametrize(
    ("dim", "factor", "bias"), [(48, 2.66, False), (16, 2.66, True), (6, 2.0, True), (5, 1.0, False)]
)
def test_export_form_equals_the_pytorch_path(dim: int, factor: float, bias: bool) -> None:
    torch.manual_seed(0)
    ffn = MixedScaleFeedForward(dim, factor, bias).eval()
    for parameter in ffn.parameters():  # biases too (zero-initialised ones would hide a misplaced bias)
        torch.nn.init.normal_(parameter, std=0.3)
    x = torch.randn(2, dim, 12, 20)
    with torch.no_grad():
        want, got = ffn(x), msfn_export_forward(ffn, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def _conv_channels(path: Path) -> list[tuple[str, int, int]]:
    """``(name, output channels, group)`` of every ``Conv`` of the file; each weight must be an initializer."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            assert node.input[1] in weights, f"{node.name}: weight {node.input[1]} is not an initializer"
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            convs.append((node.name, weights[node.input[1]][0], group))
    return convs


@pytest.mark.slow
@pytest.mark.parametrize("bias", [False, True])
def test_drsformer_exports_blocked_convolutions_and_matches_pytorch(bias: bool, tmp_path: Path) -> None:
    # hidden widths 42, 85, 170, 340: none a multiple of 16, two odd
    network_g = {"type": "DRSformer", "dim": 16, "num_blocks": [1, 1, 1, 1], "heads": [1, 2, 2, 4],
                 "ffn_expansion_factor": 2.66, "bias": bias}  # fmt: skip
    torch.manual_seed(0)
    net = build_network(network_g).eval()
    if bias:
        for name, parameter in net.named_parameters():
            if name.endswith("bias"):
                torch.nn.init.normal_(parameter, std=0.1)
    report = to_onnx(net, tmp_path / "m.onnx", network_g=network_g)  # dynamic; verified against PyTorch
    assert report.tile_size is None and max(report.differences.values()) <= 1e-4
    grouped = [(name, out) for name, out, group in _conv_channels(report.path) if group > 1]
    assert len(grouped) >= 5 * 16  # MSFN, attention and MEFC depthwise convs
    assert [(name, out) for name, out in grouped if out % CHANNEL_BLOCK] == []
    inputs = {"32x32": torch.rand(1, 3, 32, 32), "24x56": torch.rand(1, 3, 24, 56)}
    differences = onnx_export._compare(OnnxNetwork(report.path), net, inputs, 1e-4)
    assert max(differences.values()) <= 1e-4, differences
