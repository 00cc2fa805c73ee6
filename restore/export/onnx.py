"""``to_onnx``: export a network to ONNX through ``torch.onnx.export(dynamo=True)`` and verify it in ONNX Runtime.

The export traces the network's own modules and ops (the ``torch`` backend of ``restore.ops``). By default height
and width are dynamic: one graph takes every size the network takes (multiples of ``pad_multiple``), and where the
PyTorch code places windows from the image size (DLGSANet's TLC) the graph computes them from its input's shape.
With ``tile`` the graph takes only ``tile x tile`` inputs (for runtimes that need static shapes).

The file is written to a temporary name beside the target, run in ONNX Runtime (CPU) on a random input, on a
crop of the bundled sample photo and (dynamic models) on a small input of odd proportions, compared with the
PyTorch float32 output, and renamed only when the maximum absolute difference is within ``TOLERANCES[precision]``;
otherwise it is removed. Differences that come only from top-k selections between near-tied scores are told apart
from real ones by ``restore.export.ties``.

Metadata (``onnx`` model properties, all strings): ``type``, ``scale``, ``pad_multiple``, ``clamp_output``,
``supports_fp16``, ``task``, ``tile_size`` (the fixed input side, or ``dynamic``), ``precision`` and
``network_g`` (JSON). The graph has one input ``input`` ``(1, C, H, W)`` float32 in [0, 1] and one output
``output`` ``(1, C, H*scale, W*scale)`` float32; fp16/bf16 models cast inside the graph.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from restore.engine.forward import PRECISIONS, check_precision, network_spec
from restore.export.runtime import OnnxNetwork, require
from restore.export.ties import TIE_TOLERANCE, replay_difference
from restore.export.translations import translation_table

__all__ = [
    "DEFAULT_DYNAMIC_EXAMPLE", "DEFAULT_OPSET", "DEFAULT_TILE", "MIN_OPSET", "TOLERANCES", "ExportError",
    "ExportReport", "VerificationError", "max_opset", "opset_range", "to_onnx",
]  # fmt: skip

#: Side of a fixed-size export when ``dynamic=False`` is asked for without a ``tile``.
DEFAULT_TILE = 256
#: Side of the square input a dynamic export is traced and verified at (rounded up to the pad multiple).
DEFAULT_DYNAMIC_EXAMPLE = 64
DEFAULT_OPSET = 18
#: The lowest opset the exporter writes as asked (torch's dynamo exporter; lower requests are not honoured).
MIN_OPSET = 18
#: Largest accepted max-abs difference between ONNX Runtime and PyTorch float32, per export precision.
TOLERANCES = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 2e-2}
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_MAX_DYNAMIC_SIDE = 8192


class ExportError(ValueError):
    """The network, options or output path cannot be exported; the message is one line."""


class VerificationError(RuntimeError):
    """The exported model does not reproduce PyTorch within the tolerance (the file was removed)."""


@dataclass(frozen=True)
class ExportReport:
    """What ``to_onnx`` wrote and how closely ONNX Runtime matches PyTorch (max abs difference per check).

    ``tie_flips``: per check, top-k selections that ONNX Runtime made differently between near-tied scores (the
    difference is then that of PyTorch replaying them, see ``restore.export.ties``); empty when none flipped.
    """

    path: Path
    tile_size: int | None
    differences: dict[str, float]
    tolerance: float
    tie_flips: dict[str, int] = field(default_factory=dict)


class _CastWrapper(nn.Module):
    """Runs ``net`` in ``dtype`` behind a float32 interface."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net.to(dtype)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.to(self.dtype)).float()


def _round_tile(tile: int, multiple: int, name: str) -> int:
    if tile < multiple:
        raise ExportError(
            f"--tile {tile} is smaller than one window of {name} ({multiple} px, its pad multiple); use >= {multiple}"
        )
    return -(-tile // multiple) * multiple


def _sample_crop(height: int, width: int) -> Tensor:
    """``(1, 3, height, width)`` crop of the bundled sample photo, mirrored periodically where it is too small."""
    from restore.assets import SAMPLE_IMAGE
    from restore.data.image_io import read_image
    from restore.engine.padding import pad_bottom_right

    image = torch.from_numpy(read_image(SAMPLE_IMAGE).rgb).permute(2, 0, 1).unsqueeze(0)
    need = max(height, width)
    if min(image.shape[2:]) < need:
        image, _ = pad_bottom_right(image, need, "symmetric")
    return image[:, :, :height, :width].contiguous()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress messages and warnings (errors still raise)."""
    names = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "torch.fx.experimental.symbolic_shapes")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as sink:
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(err: BaseException) -> str:
    for line in str(err).splitlines():
        line = line.strip()
        if line and not line.startswith(("Failed to export", "\x1b")):
            return line[:300]
    return type(err).__name__


def _metadata(net: nn.Module, network_g: Mapping[str, Any] | None, tile: int | None, precision: str) -> dict:
    spec = network_spec(net)
    kwargs = {k: v for k, v in (network_g or {}).items()}
    return {
        "type": str(kwargs.get("type", type(net).__name__)),
        "scale": str(spec.scale),
        "pad_multiple": str(spec.pad_multiple),
        "clamp_output": "true" if spec.clamp_output else "false",
        "supports_fp16": "true" if spec.supports_fp16 else "false",
        "task": str(getattr(net, "task", "") or ""),
        "tile_size": "dynamic" if tile is None else str(tile),
        "precision": precision,
        "network_g": json.dumps(kwargs, default=str),
    }


@contextlib.contextmanager
def _linear_time_rewrites() -> Iterator[None]:
    """Leave out onnxscript's ``Slice, Slice -> Split`` rewrite while the exporter optimizes the graph.

    That rule has two output nodes, and onnxscript matches such patterns by listing every node of the graph for
    each node it tries, so its cost grows with the square of the graph: over 80% of a full-size DLGSANet export (3.8 of
    4.6 min on 2 cores), for a rewrite that changes no node of our networks. The other rules (constant folding,
    no-op removal, reshape/transpose/cast merging, pad-into-conv) still run. Without the private rule table (other
    onnxscript versions) the exporter's default applies.
    """
    try:
        from onnxscript import rewriter
        from onnxscript.rewriter.rules.common import slice_split_rule
    except ImportError:
        yield
        return
    rules = getattr(rewriter, "_DEFAULT_REWRITE_RULES", None)
    if not isinstance(rules, tuple):
        yield
        return
    rewriter._DEFAULT_REWRITE_RULES = tuple(rule for rule in rules if rule is not slice_split_rule)
    try:
        yield
    finally:
        rewriter._DEFAULT_REWRITE_RULES = rules


def max_opset() -> int:
    """The highest opset the installed torch exporter supports."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:  # a torch without the constant: the opset this module is tested with
        return DEFAULT_OPSET
    return int(ONNX_MAX_OPSET)


def opset_range() -> str:
    """``"18..23"``: the opsets :func:`to_onnx` accepts."""
    return f"{MIN_OPSET}..{max_opset()}"


def _check_output(path: Path) -> None:
    for folder in path.parents:
        if folder.is_file():
            raise ExportError(f"{path}: {folder} is a file, not a folder")
        if folder.is_dir():
            break
    if not path.parent.is_dir():
        raise ExportError(f"{path}: output folder {path.parent} does not exist")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name such as model.onnx")


def _export(model: nn.Module, example: Tensor, target: Path, opset: int, dynamic: bool, multiple: int,
            metadata: Mapping[str, str]) -> None:  # fmt: skip
    dynamic_shapes = None
    if dynamic:
        dims = []
        for axis in ("height", "width"):
            blocks = torch.export.Dim(f"{axis}_blocks", min=1 if multiple > 1 else 2, max=_MAX_DYNAMIC_SIDE // multiple)
            dims.append(blocks * multiple if multiple > 1 else blocks)
        dynamic_shapes = ({2: dims[0], 3: dims[1]},)
    with _quiet(), _linear_time_rewrites():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=dynamic_shapes,
            custom_translation_table=translation_table(opset),
        )
    program.model.metadata_props.update(metadata)
    program.save(str(target), external_data=False)


def _compare(session_net: nn.Module, reference: nn.Module, inputs: Mapping[str, Tensor], tolerance: float,
             flips: dict[str, int] | None = None) -> dict[str, float]:  # fmt: skip
    """Max abs difference between ONNX Runtime and PyTorch per input.

    An input whose difference exceeds ``tolerance`` is compared once more with PyTorch replaying the model's top-k
    selections (``restore.export.ties``; ONNX models only): when every selection that differs is a near tie, the
    replayed difference counts and the number of flipped selections goes to ``flips``. A selection that differs
    without being a near tie fails verification.
    """
    differences = {}
    for name, x in inputs.items():
        got = session_net(x)
        with torch.no_grad():
            expected = reference(x).float()
        if got.shape != expected.shape:
            raise VerificationError(f"ONNX output {tuple(got.shape)} != PyTorch {tuple(expected.shape)} on {name}")
        difference = float((got - expected).abs().max())
        path = getattr(session_net, "path", None)
        if not difference <= tolerance and path is not None:
            replay = replay_difference(path, reference, x)
            if replay is not None and replay.flips:
                if replay.worst_gap > TIE_TOLERANCE:
                    why = (
                        "keep fewer than k entries in a row"
                        if replay.worst_gap == float("inf")
                        else f"differ from PyTorch's at scores up to {replay.worst_gap:.1e} (relative) from the "
                        f"threshold, more than a near tie ({TIE_TOLERANCE:g})"
                    )
                    raise VerificationError(
                        f"{path}: ONNX Runtime differs from PyTorch by {difference:.2e} on the {name}, and its "
                        f"top-k selections {why}; file removed"
                    )
                difference = replay.difference
                if flips is not None:
                    flips[name] = replay.flips
        differences[name] = difference
    return differences


def to_onnx(
    net: nn.Module,
    path: str | Path,
    *,
    tile: int | None = None,
    dynamic: bool | None = None,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    network_g: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> ExportReport:
    """Export ``net`` to ``path`` (ONNX), verify it in ONNX Runtime and return the differences to PyTorch.

    Args:
        net: a network with the engine attributes (``scale``, ``pad_multiple``, ...); put in eval mode.
        path: the ``.onnx`` file to write; its folder must exist. Written atomically.
        tile: input side of a fixed-size export, rounded up to the network's ``pad_multiple``; with ``dynamic``
            the side of the example used for tracing and verification (default ``DEFAULT_DYNAMIC_EXAMPLE``).
        dynamic: height and width as dynamic axes (any multiple of ``pad_multiple``; 2 px and up for networks
            without one). Default: dynamic unless ``tile`` is given (``dynamic=False`` alone: a
            ``DEFAULT_TILE`` fixed size).
        precision: ``"fp32"`` or ``"fp16"`` (refused for networks with ``supports_fp16 = False``); ``"bf16"`` is
            refused, since ONNX Runtime's CPU provider cannot run the bfloat16 graph to verify it.
        opset: ONNX opset version, :data:`MIN_OPSET` to :func:`max_opset` (default 18).
        network_g: the options the network was built from, stored in the metadata.
        seed: seed of the random verification input.

    Raises:
        ExportError: unusable network, option or path (nothing is written).
        VerificationError: ONNX Runtime differs from PyTorch by more than ``TOLERANCES[precision]`` (file removed).
        OnnxSetupError: the onnx / onnxscript / onnxruntime packages are missing.
    """
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require(module)
    if not isinstance(net, nn.Module):
        raise ExportError(f"expected a torch.nn.Module to export, got {type(net).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= max_opset():
        raise ExportError(f"opset {opset!r}: the exporter supports opsets {opset_range()}")
    name = type(net).__name__
    try:
        spec = network_spec(net)
        check_precision(precision, spec, net)
    except (AttributeError, ValueError) as err:
        if precision == "fp16" and "refused" in str(err):
            raise ExportError(
                f"precision fp16 refused for {name}: its activations exceed the float16 range with trained weights "
                "(inf/NaN outputs); export it with --precision fp32 (export refuses bf16 too)"
            ) from None
        raise ExportError(str(err)) from None
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16":  # refused before tracing: the check that every export passes could not run
        raise ExportError(
            "precision bf16: ONNX Runtime's CPU provider, which verifies every export, has no bfloat16 convolution; "
            "export fp32 (or fp16 where the network allows it) and let the target runtime pick its precision"
        )
    path = Path(path)
    _check_output(path)
    multiple = spec.pad_multiple
    if dynamic is None:
        dynamic = tile is None
    if tile is None:
        tile = DEFAULT_DYNAMIC_EXAMPLE if dynamic else DEFAULT_TILE
    side = _round_tile(tile, multiple, name)
    if dynamic:
        blocker = getattr(net, "dynamic_shape_blocker", None)
        if blocker:
            raise ExportError(f"dynamic height/width refused for {name}: {blocker}")
        side = max(side, 2 * multiple)
    net = net.eval()
    model = net if precision == "fp32" else _CastWrapper(copy.deepcopy(net), _DTYPES[precision]).eval()
    channels = _input_channels(net)
    generator = torch.Generator().manual_seed(seed)
    random = torch.rand(1, channels, side, side, generator=generator)
    metadata = _metadata(net, network_g, None if dynamic else side, precision)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        try:
            _export(model, random, temporary, opset, dynamic, multiple, metadata)
        except Exception as err:  # the exporter raises many types; report one line
            what = "with dynamic height/width " if dynamic else ""
            raise ExportError(f"{name} cannot be exported {what}to ONNX: {_first_line(err)}") from None
        inputs = {"random input": random}
        if channels == 3:
            width = max(2 * multiple, side // 2 // multiple * multiple) if dynamic else side
            inputs["sample photo crop"] = _sample_crop(side, width)
        if dynamic:  # one window high, three wide (odd sizes where the network has no multiple)
            small = (multiple, 3 * multiple) if multiple > 1 else (9, 13)
            inputs["small odd input"] = torch.rand(1, channels, *small, generator=generator)
        flips: dict[str, int] = {}
        try:
            differences = _compare(OnnxNetwork(temporary), net, inputs, TOLERANCES[precision], flips)
        except VerificationError:
            raise
        except Exception as err:  # e.g. an operator ONNX Runtime's CPU provider lacks for this precision
            raise VerificationError(f"{path}: ONNX Runtime cannot run the exported model ({_first_line(err)}); "
                                    "file removed") from None  # fmt: skip
        tolerance = TOLERANCES[precision]
        worst = max(differences.values())
        if not np.isfinite(worst) or worst > tolerance:
            found = ", ".join(f"{k} {v:.2e}" for k, v in differences.items())
            raise VerificationError(
                f"{path}: ONNX Runtime differs from PyTorch by more than {tolerance:g} ({found}); file removed"
            )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportReport(path, None if dynamic else side, differences, TOLERANCES[precision], flips)


def _input_channels(net: nn.Module) -> int:
    """Input channels: ``in_chans`` / the first convolution's ``in_channels`` (3 when unknown)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return 3
