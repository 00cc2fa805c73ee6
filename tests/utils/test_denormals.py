"""Subnormal floats flushed to zero: the thread-local switch, and ONNX Runtime sessions run with it (their worker
threads and the calling thread), so a masked softmax yields exact zeros instead of slow subnormal values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from restore.export import OnnxNetwork
from restore.utils.denormals import flush_denormals, flushing_denormals

SUBNORMAL = 1e-39


def test_flush_denormals_switches_the_thread_and_restores_it() -> None:
    assert not flushing_denormals()
    assert float(torch.tensor([SUBNORMAL]) * 1.0) > 0.0
    with flush_denormals():
        assert flushing_denormals()
        assert float(torch.tensor([SUBNORMAL]) * 1.0) == 0.0
        with flush_denormals():  # nested: the outer block's setting survives the inner one
            pass
        assert flushing_denormals()
    assert not flushing_denormals()


def test_flush_denormals_restores_after_an_error() -> None:
    with pytest.raises(RuntimeError), flush_denormals():
        raise RuntimeError("boom")
    assert not flushing_denormals()


def _softmax_model(path: Path) -> None:
    """``output = Softmax(input, axis=-1)`` with the engine metadata (scale 1), any batch, height and width."""
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["input"], ["output"], axis=-1)],
        "softmax",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, {"type": "Softmax", "scale": "1", "pad_multiple": "1", "clamp_output": "false",
                                   "supports_fp16": "true", "tile_size": "dynamic", "precision": "fp32", "task": "",
                                   "network_g": "{}"})  # fmt: skip
    onnx.save(model, path)


def test_onnx_runtime_runs_flush_subnormal_results_to_zero(tmp_path: Path) -> None:
    path = tmp_path / "softmax.onnx"
    _softmax_model(path)
    x = torch.zeros(6, 3, 256, 256)  # large enough for ONNX Runtime to share the rows among its threads
    x[..., ::2] = -90.0  # as far below the row maximum as masked scores: exp(-90) / 128 is subnormal
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    unflushed = plain.run(None, {"input": x.numpy()})[0]
    assert (unflushed[..., ::2] > 0).all() and (unflushed[..., ::2] < np.finfo(np.float32).tiny).all()
    for threads in (1, 2):
        out = OnnxNetwork(path, threads=threads)(x)
        assert (out[..., ::2] == 0).all(), threads
        torch.testing.assert_close(out[..., 1::2], torch.full_like(out[..., 1::2], 1 / 128))
    assert not flushing_denormals()  # the caller's setting is restored after the run
