"""Deployment: export networks to ONNX (verified in ONNX Runtime) and run exported models in the tiled engine.

Example:
    >>> from restore.export import OnnxNetwork, to_onnx
    >>> report = to_onnx(net, "model.onnx")                    # any height and width; tile=256 for a fixed size
    >>> sr = infer(OnnxNetwork("model.onnx"), lq, tile=224)    # same engine, ONNX Runtime underneath

Needs the ``[onnx]`` extra (onnx, onnxscript, onnxruntime); without it the functions say what to install.
"""

from restore.export.onnx import (
    DEFAULT_DYNAMIC_EXAMPLE,
    DEFAULT_OPSET,
    DEFAULT_TILE,
    TOLERANCES,
    ExportError,
    ExportReport,
    VerificationError,
    to_onnx,
)
from restore.export.runtime import OnnxNetwork, OnnxSetupError, read_metadata

__all__ = [
    "DEFAULT_DYNAMIC_EXAMPLE",
    "DEFAULT_OPSET",
    "DEFAULT_TILE",
    "TOLERANCES",
    "ExportError",
    "ExportReport",
    "OnnxNetwork",
    "OnnxSetupError",
    "VerificationError",
    "read_metadata",
    "to_onnx",
]
