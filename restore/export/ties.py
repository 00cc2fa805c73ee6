"""Tie-aware verification of exported top-k attention (DRSformer): accept differences that come only from near ties.

A top-k branch keeps the entries of a score row that are ``>=`` its k-th largest score. When two scores of a row
are a few float32 ulps apart, ONNX Runtime and PyTorch (or PyTorch at two thread counts) can rank them
differently, and the flipped selection changes the output by up to ~1e-2 after the following layers. Such a file
is correct; a comparison of outputs alone cannot tell it from a broken one.

``replay_difference`` separates the two:

1. ONNX Runtime runs a copy of the model whose outputs also include every top-k comparison (the ``GreaterOrEqual``
   nodes, in graph order) and its input scores.
2. PyTorch runs again with its top-k selections replaced, call by call, by those of ONNX Runtime; every entry where
   the two selections disagree must be a near tie in PyTorch's own scores (within ``TIE_TOLERANCE`` of the row's
   threshold, relative to the row's largest magnitude), and every row must keep at least k entries.
3. The replayed PyTorch output is compared with ONNX Runtime's output.

A real export bug either changes a selection that is not a near tie (rejected in step 2) or changes arithmetic
that the replay does not touch (seen in step 3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from restore.ops.sparse_channel_attention import torch_impl

__all__ = ["TIE_TOLERANCE", "Replay", "replay_difference"]

#: Largest |score - row threshold| / max |score of the row| at which a selection that ONNX Runtime makes
#: differently from PyTorch counts as a near tie (float32 scores differ by ~1e-6 between the runtimes).
TIE_TOLERANCE = 1e-5
_COMPARISON = "GreaterOrEqual"


@dataclass(frozen=True)
class Replay:
    """Outcome of a replay: max abs difference of the outputs, flipped selections, and the largest relative
    distance of a flipped selection from its threshold (0.0 when none flipped; infinite when a row of the graph
    keeps fewer than k entries)."""

    difference: float
    flips: int
    worst_gap: float


class _Unusable(Exception):
    """The replay does not apply (no top-k comparisons, or their count does not match PyTorch's calls)."""


def _with_comparison_outputs(path: Path) -> tuple[bytes, list[str]]:
    import onnx

    model = onnx.load(str(path))
    names = [node.output[0] for node in model.graph.node if node.op_type == _COMPARISON]
    if not names:
        raise _Unusable("no top-k comparisons in the graph")
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.BOOL, None) for n in names)
    return model.SerializeToString(), names


def _run_onnx(path: Path, x: Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    import onnxruntime as ort

    serialized, names = _with_comparison_outputs(path)
    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    (first,) = session.get_inputs()
    output = session.get_outputs()[0].name
    results = session.run([output, *names], {first.name: x.detach().float().numpy()})
    return results[0], list(results[1:])


@contextlib.contextmanager
def _replayed_selections(masks: list[np.ndarray], stats: dict) -> Iterator[None]:
    """Patch the torch backend's top-k mix to use ``masks`` (one per distinct k of a call, in call order) through
    the ``select`` hook of ``torch_impl.topk_mix_matrix``, counting the flipped selections in ``stats``."""
    original = torch_impl.topk_mix_matrix
    queue = iter(masks)
    given_by_count: dict[int, np.ndarray | None] = {}

    def select(scores: Tensor, kept: int, threshold: Tensor, ours: Tensor) -> Tensor:
        if kept not in given_by_count:  # branches keeping equally many share one comparison in the graph
            given_by_count[kept] = next(queue, None)
        given = given_by_count[kept]
        if given is None or tuple(given.shape) != tuple(ours.shape):
            raise _Unusable("top-k comparisons of the graph do not match PyTorch's calls")
        theirs = torch.from_numpy(np.ascontiguousarray(given)).to(ours.device)
        if bool((theirs.sum(dim=-1) < kept).any()):  # the graph's rule must keep at least k entries per row
            stats["short_rows"] += int((theirs.sum(dim=-1) < kept).sum())
        flipped = theirs != ours
        if bool(flipped.any()):
            scale = scores.detach().abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
            gaps = ((scores.detach() - threshold).abs() / scale)[flipped]
            stats["flips"] += int(flipped.sum())
            stats["worst_gap"] = max(stats["worst_gap"], float(gaps.max()))
        return theirs

    def replay(scores: Tensor, topk_weights: Tensor) -> Tensor:
        given_by_count.clear()  # one graph comparison per distinct k of each call
        return original(scores, topk_weights, select=select)

    torch_impl.topk_mix_matrix = replay
    try:
        yield
        if next(queue, None) is not None:
            raise _Unusable("the graph has more top-k comparisons than PyTorch made")
    finally:
        torch_impl.topk_mix_matrix = original


def replay_difference(path: str | Path, reference: nn.Module, x: Tensor) -> Replay | None:
    """Compare the model at ``path`` with ``reference`` on ``x`` ``(1, C, H, W)``, PyTorch replaying ONNX Runtime's
    top-k selections (module docstring). None when the replay does not apply (no top-k in the graph, or PyTorch
    does not run the torch backend's top-k the same number of times)."""
    try:
        got, masks = _run_onnx(Path(path), x)
        stats = {"flips": 0, "worst_gap": 0.0, "short_rows": 0}
        with _replayed_selections(masks, stats), torch.no_grad():
            expected = reference(x).float()
    except _Unusable:
        return None
    if tuple(got.shape) != tuple(expected.shape):
        return None
    difference = float(np.abs(got - expected.numpy()).max())
    worst_gap = float("inf") if stats["short_rows"] else stats["worst_gap"]
    return Replay(difference, stats["flips"], worst_gap)
