"""Tie-aware verification (``restore.export.ties``): top-k selections that ONNX Runtime makes differently between
tied scores are accepted, other selection or arithmetic differences are not.

A one-layer top-k attention network is exported, then its graph is edited the way a runtime's rounding would act:
the scores of the top-k attention are multiplied by a per-column factor. A factor of 1 - 1e-7 on one of
two exactly tied columns breaks the tie (only tied selections flip); 0.9 moves a score far from its threshold (a
real bug); thresholds raised by a factor 1 + 1e-6 drop the k-th entry itself (a real bug whose flips have zero
gaps, caught because the row keeps fewer than k entries)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import Tensor, nn

from restore.export import onnx as onnx_export
from restore.export.runtime import OnnxNetwork
from restore.export.ties import TIE_TOLERANCE, replay_difference
from restore.ops.sparse_channel_attention import sparse_channel_attention
from restore.ops.sparse_channel_attention.naive import topk_counts

CHANNELS = 6


class TopKLayer(nn.Module):
    """``x`` ``(1, 6, H, W)`` as q = k = v of one head of DRSformer's top-k attention; engine attributes included."""

    scale, pad_multiple, clamp_output, supports_fp16 = 1, 1, False, True

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("temperature", torch.ones(1, 1, 1))
        self.register_buffer("weights", torch.tensor([0.4, 0.3, 0.2, 0.1]))

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2).unsqueeze(1)  # (1, 1, C, L)
        out = sparse_channel_attention(tokens, tokens, tokens, self.temperature, mode="topk", topk_weights=self.weights)
        return out.reshape(x.shape)


def _tied_input() -> Tensor:
    """Channels 4 and 5 identical: every row's scores for them are exactly tied, and the tie straddles the
    threshold of some branch in several rows (checked by the test)."""
    x = torch.rand(1, CHANNELS, 6, 7, generator=torch.Generator().manual_seed(3))
    x[:, 5] = x[:, 4]
    return x


def _export(path: Path, edit: str, factor: float = 1.0, offset: float = 0.0) -> None:
    """Export ``TopKLayer`` to ``path``; ``edit``: ``"none"``, ``"scale"`` (scores of column 5 times ``factor``)
    or ``"threshold"`` (every comparison's threshold times ``factor``); ``offset`` is added to the output."""
    net = TopKLayer().eval()
    program = torch.onnx.export(net, (_tied_input(),), dynamo=True, opset_version=18, input_names=["input"],
                                output_names=["output"])  # fmt: skip
    model = program.model_proto
    nodes = list(model.graph.node)
    compares = [n for n in nodes if n.op_type == "GreaterOrEqual"]
    assert len(compares) == len(set(topk_counts(CHANNELS)))  # equal k share one comparison
    if edit == "scale":  # every use of the scores (sort, comparisons, exponentials) sees the scaled ones
        column = np.ones(CHANNELS, np.float32)
        column[5] = factor
        model.graph.initializer.append(numpy_helper.from_array(column, "column_factor"))
        scores = compares[0].input[0]
        for node in nodes:
            node.input[:] = ["scaled_scores" if name == scores else name for name in node.input]
        producer = next(n for n in nodes if scores in n.output)
        nodes.insert(nodes.index(producer) + 1, helper.make_node("Mul", [scores, "column_factor"], ["scaled_scores"]))
    elif edit == "threshold":  # thresholds raised a little: the k-th entry itself is dropped (zero gap)
        model.graph.initializer.append(numpy_helper.from_array(np.float32(factor), "threshold_factor"))
        for k, node in enumerate(compares):
            raised = f"raised_threshold_{k}"
            nodes.insert(nodes.index(node), helper.make_node("Mul", [node.input[1], "threshold_factor"], [raised]))
            node.input[1] = raised
    if offset:
        producer = next(n for n in nodes if "output" in n.output)
        producer.output[:] = ["raw_output" if name == "output" else name for name in producer.output]
        model.graph.initializer.append(numpy_helper.from_array(np.float32(offset), "output_offset"))
        nodes.append(helper.make_node("Add", ["raw_output", "output_offset"], ["output"]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    meta = {"type": "TopKLayer", "scale": "1", "pad_multiple": "1", "clamp_output": "false", "supports_fp16": "true",
            "tile_size": "dynamic", "precision": "fp32"}  # fmt: skip
    for key, value in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(model, str(path))


def _strict(path: Path, x: Tensor) -> float:
    with torch.no_grad():
        return float((OnnxNetwork(path)(x) - TopKLayer()(x)).abs().max())


def test_input_has_ties_on_a_threshold() -> None:
    from restore.ops.sparse_channel_attention.torch_impl import channel_scores

    tokens = _tied_input().flatten(2).unsqueeze(1)
    scores = channel_scores(tokens, tokens, torch.ones(1, 1, 1))[0, 0]
    ranked = scores.sort(dim=-1, descending=True).values
    straddling = [
        (row, kept)
        for row in range(CHANNELS)
        for kept in set(topk_counts(CHANNELS))
        if scores[row, 4] == scores[row, 5] == ranked[row, kept - 1] == ranked[row, kept]
    ]
    assert straddling, "the tied columns never straddle a threshold: pick another seed"


def test_faithful_export_verifies_without_flips(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    _export(path, "none")
    replay = replay_difference(path, TopKLayer(), _tied_input())
    assert replay is not None and replay.flips == 0 and replay.difference <= 1e-5


def test_flips_between_tied_scores_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    _export(path, "scale", 1 - 1e-7)
    x = _tied_input()
    assert _strict(path, x) > 1e-3  # the broken ties really change the output
    replay = replay_difference(path, TopKLayer(), x)
    assert replay is not None and replay.flips > 0 and replay.worst_gap <= TIE_TOLERANCE
    assert replay.difference <= 1e-5
    flips: dict[str, int] = {}
    differences = onnx_export._compare(OnnxNetwork(path), TopKLayer(), {"tied input": x}, 1e-4, flips)
    assert differences["tied input"] <= 1e-5 and flips == {"tied input": replay.flips}


@pytest.mark.parametrize("edit, factor, message", [
    ("scale", 0.9, r"top-k selections differ from PyTorch's at scores up to .* more than a near tie"),
    ("threshold", 1 + 1e-6, r"top-k selections keep fewer than k entries in a row"),
])  # fmt: skip
def test_selection_bugs_fail(edit: str, factor: float, message: str, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    _export(path, edit, factor)
    x = _tied_input()
    assert _strict(path, x) > 1e-4  # the edit changes the output
    with pytest.raises(onnx_export.VerificationError, match=message):
        onnx_export._compare(OnnxNetwork(path), TopKLayer(), {"tied input": x}, 1e-4)


def test_arithmetic_bug_fails_even_with_tied_flips(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    _export(path, "scale", 1 - 1e-7, offset=1e-3)
    flips: dict[str, int] = {}
    differences = onnx_export._compare(OnnxNetwork(path), TopKLayer(), {"tied input": _tied_input()}, 1e-4, flips)
    assert flips["tied input"] > 0  # the replay explains the flips, not the offset
    assert differences["tied input"] == pytest.approx(1e-3, rel=1e-3)


def test_networks_without_top_k_are_not_replayed(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    net = nn.Conv2d(3, 3, 1)
    torch.onnx.export(net, (torch.rand(1, 3, 4, 4),), dynamo=True).save(str(path))
    assert replay_difference(path, net, torch.rand(1, 3, 4, 4)) is None
