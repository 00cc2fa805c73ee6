"""Running the network on one batch of tiles: device transfer, precision, memory format, compilation.

What a network must provide (attributes read by the engine; it never looks at architecture names):

* ``scale: int`` output/input size ratio.
* ``pad_multiple: int`` input height and width must be multiples of it (default 1).
* ``clamp_output: bool`` whether the official test pipeline clamps to [0, 1] before cropping (default False).
* ``supports_fp16: bool`` False where activations of trained weights overflow float16 (default True).
* ``fixed_input_size: int | None`` the network takes only square inputs of exactly this size (an ONNX model
  exported fixed-size); tiles then have exactly this size (default None: any multiple of ``pad_multiple``).
* ``cpu_memory_format: str`` the layout the network runs fastest in on the CPU, ``"channels_last"`` (NHWC) or
  ``"contiguous"`` (NCHW, the default); measured per family (``docs/benchmarks.md``). The engine converts the
  network and its inputs to it when it runs on the CPU and the caller does not choose; on other devices the
  default stays NCHW.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["MEMORY_FORMATS", "PRECISIONS", "NetworkSpec", "TileForward", "is_out_of_memory", "network_spec",
           "use_channels_last"]  # fmt: skip

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
MEMORY_FORMATS: tuple[str, ...] = ("contiguous", "channels_last")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_COMPILED_ATTR = "_engine_compiled"


@dataclass(frozen=True)
class NetworkSpec:
    """The engine-facing facts of a network (see the module docstring)."""

    scale: int
    pad_multiple: int
    clamp_output: bool
    supports_fp16: bool
    fixed_size: int | None = None
    cpu_memory_format: str = "contiguous"


def network_spec(net: nn.Module) -> NetworkSpec:
    """Read the engine attributes of ``net``; ``scale`` is required, the others have defaults."""
    name = type(net).__name__
    if not hasattr(net, "scale"):
        raise AttributeError(f"{name}: the inference engine needs a 'scale' attribute (output/input size ratio)")
    spec = NetworkSpec(
        scale=int(net.scale),
        pad_multiple=int(getattr(net, "pad_multiple", 1)),
        clamp_output=bool(getattr(net, "clamp_output", False)),
        supports_fp16=bool(getattr(net, "supports_fp16", True)),
        fixed_size=None if getattr(net, "fixed_input_size", None) is None else int(net.fixed_input_size),
        cpu_memory_format=str(getattr(net, "cpu_memory_format", "contiguous")),
    )
    if spec.cpu_memory_format not in MEMORY_FORMATS:
        raise ValueError(f"{name}: cpu_memory_format must be one of {MEMORY_FORMATS}, got {spec.cpu_memory_format!r}")
    if spec.scale < 1 or spec.pad_multiple < 1:
        raise ValueError(f"{name}: scale and pad_multiple must be >= 1, got {spec.scale} and {spec.pad_multiple}")
    if spec.fixed_size is not None and (spec.fixed_size < 1 or spec.fixed_size % spec.pad_multiple):
        raise ValueError(f"{name}: fixed_input_size {spec.fixed_size} is not a multiple of {spec.pad_multiple}")
    return spec


def use_channels_last(spec: NetworkSpec, device: torch.device | str, requested: bool | None = None) -> bool:
    """The memory format to run in: ``requested`` when given, else the network's ``cpu_memory_format`` on the CPU
    and NCHW elsewhere (GPU layouts are not measured yet, so they keep the PyTorch default)."""
    if requested is not None:
        return requested
    return torch.device(device).type == "cpu" and spec.cpu_memory_format == "channels_last"


def is_out_of_memory(err: BaseException) -> bool:
    """True for allocation failures of any device (CUDA raises ``torch.OutOfMemoryError``, CPU a RuntimeError)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def check_precision(precision: str, spec: NetworkSpec, net: nn.Module) -> None:
    """Reject unknown precisions, and float16 for networks that declare it unsafe."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and not spec.supports_fp16:
        raise ValueError(
            f"precision 'fp16' refused for {type(net).__name__}: its activations exceed the float16 range "
            "(max 65504) with trained weights, giving inf/NaN outputs; use 'bf16' (same speed, float32 range) or 'fp32'"
        )


class TileForward:
    """Calls the network on ``(N, C, h, w)`` batches and returns float32 outputs on ``out_device``.

    Args:
        net: the network (put in eval mode by the caller).
        device: where the network runs; tiles are moved there and the outputs moved back.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; outputs are cast back to float32).
        channels_last: run in NHWC memory format (the network is converted in place); ``None``: the network's
            ``cpu_memory_format`` on the CPU, NCHW elsewhere (:func:`use_channels_last`).
        compile: wrap the network with ``torch.compile`` (cached on the network object); a string picks the
            dynamo backend (e.g. ``"eager"`` to check graph capture without code generation).
    """

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        precision: Precision = "fp32",
        channels_last: bool | None = None,
        compile: bool | str = False,
    ) -> None:
        self.device = device
        self.precision = precision
        self.channels_last = channels_last = use_channels_last(network_spec(net), device, channels_last)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        if compile:
            backend = compile if isinstance(compile, str) else "inductor"
            cache = net.__dict__.setdefault(_COMPILED_ATTR, {})  # plain attribute: not a sub-module or state
            if backend not in cache:
                cache[backend] = torch.compile(net, backend=backend)
            net = cache[backend]
        self.module = net

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def __call__(self, batch: Tensor, out_device: torch.device) -> Tensor:
        x = batch.to(self.device, dtype=torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self._autocast():
            y = self.module(x)
        return y.to(out_device, dtype=torch.float32).contiguous()
