"""Running an exported ONNX model with ONNX Runtime as a network the tiled engine accepts.

``OnnxNetwork`` is an ``nn.Module`` without parameters whose forward calls an ONNX Runtime session; it carries the
engine attributes (``scale``, ``pad_multiple``, ``clamp_output``, ``supports_fp16``, ``fixed_input_size``) read from
the model's metadata, so ``restore.engine.infer`` tiles, pads and blends it exactly as it does a PyTorch network.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from restore.utils.denormals import flush_denormals

__all__ = ["METADATA_KEYS", "OnnxNetwork", "OnnxSetupError", "read_metadata", "require"]

#: Metadata every exported model carries (``restore.export.to_onnx`` writes them).
METADATA_KEYS = ("type", "scale", "pad_multiple", "clamp_output", "supports_fp16", "tile_size", "precision")
_INSTALL = "pip install 'restore[onnx]' (onnx, onnxscript, onnxruntime)"


class OnnxSetupError(ValueError):
    """The ONNX packages are missing or a model file cannot be used; the message is one line."""


def require(module: str) -> ModuleType:
    """Import ``module`` (``onnx``, ``onnxscript``, ``onnxruntime``) or say what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxSetupError(f"ONNX support needs the {module} package: {_INSTALL}") from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The engine metadata of an exported model, parsed (``tile_size`` is None for dynamic models)."""
    return _parse_metadata(Path(path), _session(Path(path)).get_modelmeta().custom_metadata_map)


def _session(path: Path, threads: int | None = None) -> Any:
    ort = require("onnxruntime")
    if not path.is_file():
        raise OnnxSetupError(f"{path}: ONNX model not found")
    options = ort.SessionOptions()
    options.add_session_config_entry("session.set_denormal_as_zero", "1")  # its worker threads; the caller: _run
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime raises its own exception types for unreadable or invalid models
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise OnnxSetupError(f"{path}: not a usable ONNX model ({reason})") from None


def _parse_metadata(path: Path, raw: dict[str, str]) -> dict[str, Any]:
    missing = [key for key in METADATA_KEYS if key not in raw]
    if missing:
        raise OnnxSetupError(
            f"{path}: ONNX metadata lacks {', '.join(missing)}; export the model with 'restore export'"
        )
    try:
        tile = raw["tile_size"]
        return {
            "type": raw["type"],
            "scale": int(raw["scale"]),
            "pad_multiple": int(raw["pad_multiple"]),
            "clamp_output": raw["clamp_output"] == "true",
            "supports_fp16": raw["supports_fp16"] == "true",
            "tile_size": None if tile == "dynamic" else int(tile),
            "precision": raw["precision"],
            "task": raw.get("task") or None,
            "network_g": json.loads(raw.get("network_g", "{}")),
        }
    except ValueError as err:
        raise OnnxSetupError(f"{path}: malformed ONNX metadata ({err})") from None


class OnnxNetwork(nn.Module):
    """An exported model behind the engine's network interface (CPU, ONNX Runtime).

    Args:
        path: ``.onnx`` file written by ``restore.export.to_onnx``.
        threads: ONNX Runtime intra-op threads (default: its own choice, all cores).

    The forward takes ``(N, C, H, W)`` float tensors on any device and returns float32 on the same device; a model
    exported with batch 1 runs the items one by one. Fixed-size models accept only their ``fixed_input_size``.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path, threads)
        meta = _parse_metadata(self.path, self.session.get_modelmeta().custom_metadata_map)
        self.metadata = meta
        self.scale = meta["scale"]
        self.pad_multiple = meta["pad_multiple"]
        self.clamp_output = meta["clamp_output"]
        self.supports_fp16 = meta["supports_fp16"]
        self.fixed_input_size = meta["tile_size"]
        if meta["task"]:
            self.task = meta["task"]
        (first,) = self.session.get_inputs()
        self.input_name = first.name
        self.batch_one = first.shape[0] == 1
        self.output_name = self.session.get_outputs()[0].name

    def extra_repr(self) -> str:
        size = self.fixed_input_size or "dynamic"
        return f"{self.path.name}: {self.metadata['type']} x{self.scale}, input {size}, {self.metadata['precision']}"

    def forward(self, x: Tensor) -> Tensor:
        size = self.fixed_input_size
        if size is not None and tuple(x.shape[2:]) != (size, size):
            raise ValueError(f"{self.path}: fixed-size model takes {size}x{size} inputs, got {tuple(x.shape[2:])}")
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        if self.batch_one:
            parts = [self._run(array[i : i + 1]) for i in range(array.shape[0])]
            out = np.concatenate(parts, 0)
        else:
            out = self._run(array)
        return torch.from_numpy(out).to(x.device)

    def _run(self, array: np.ndarray) -> np.ndarray:
        with flush_denormals():  # the calling thread runs part of the work (restore.utils.denormals)
            out = self.session.run([self.output_name], {self.input_name: array})[0]
        return out.astype(np.float32, copy=False)
