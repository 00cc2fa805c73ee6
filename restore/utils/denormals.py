"""Flushing subnormal floats to zero on the calling thread, for CPU runtimes that slow down on them.

A masked softmax (the -100 shift mask of Swin-style attention, scores far below the row maximum) produces
``exp`` values under ``float32``'s smallest normal number (1.2e-38). x86 CPUs process such subnormal operands
and results through a microcode assist, up to 30x slower per element: ONNX Runtime's ``Softmax`` on a masked
``(3, 6, 256, 256)`` block takes 4.7 ms instead of 0.16 ms (``docs/benchmarks.md``). Flushing them to zero
(the FTZ and DAZ bits of the thread's MXCSR) changes results by less than 1e-38 per term.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["flush_denormals", "flushing_denormals"]

_SUBNORMAL = 1e-39  # below float32's smallest normal (1.18e-38), above its smallest subnormal (1.4e-45)


def flushing_denormals() -> bool:
    """True when the calling thread already treats subnormal floats as zero."""
    probe = torch.tensor([_SUBNORMAL], dtype=torch.float32)
    return bool((probe * 1.0).item() == 0.0)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero on this thread inside the block, then restore the previous setting.

    Only the calling thread changes (threads started inside the block inherit the setting); where the CPU has no
    such mode (``torch.set_flush_denormal`` returns False) the block runs unchanged.
    """
    if flushing_denormals() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
