"""Window attention in exported graphs: one ``Attention`` operator per window group from opset 23 (heads packed in
the channels, no transposes around it), the same arithmetic spelled out before; exact at every size, including
images one window high or wide, where some shift-mask groups are empty. Exports take 10-30 s each: slow."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest
import torch

from restore.archs import build_network
from restore.export import OnnxNetwork, to_onnx
from restore.export import onnx as onnx_export

HAT = {"type": "HAT", "img_size": 16, "window_size": 8, "embed_dim": 12, "depths": [2], "num_heads": [2],
       "compress_ratio": 3, "squeeze_factor": 4, "mlp_ratio": 2, "upscale": 2, "upsampler": "pixelshuffle"}  # fmt: skip
# one window; one window high (empty interior and right-column groups); one wide; several, not square
SIZES = [(8, 8), (8, 24), (24, 8), (24, 16)]


@pytest.mark.slow
@pytest.mark.parametrize("opset", [18, 23])
def test_window_attention_graph_at_both_opsets_equals_pytorch_at_every_size(opset: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_network(HAT).eval()
    report = to_onnx(net, tmp_path / "m.onnx", opset=opset, network_g=HAT)
    graph = onnx.load(report.path).graph
    ops = Counter(node.op_type for node in graph.node)
    # HAT tiny: 2 blocks (one shifted: 4 window groups, one not: 1) and one overlapping cross-attention
    if opset >= 23:
        attention = [node for node in graph.node if node.op_type == "Attention"]
        assert len(attention) == 6 and ops["Softmax"] == 0
        for node in attention:
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attributes["q_num_heads"] == attributes["kv_num_heads"] == 2
    else:
        assert ops["Attention"] == 0 and ops["Softmax"] == 6
    inputs = {f"{h}x{w}": torch.rand(1, 3, h, w) for h, w in SIZES}
    differences = onnx_export._compare(OnnxNetwork(report.path), net, inputs, 1e-4)
    assert max(differences.values()) <= 1e-4, differences
