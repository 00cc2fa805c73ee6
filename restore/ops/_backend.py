"""One switch for every accelerated op: which implementation runs a call.

Backends:
    ``naive``  the official arithmetic, literally (materialised scores, separate passes); oracle and baseline.
    ``torch``  the exact fast PyTorch path; runs on any device.
    ``triton`` fused GPU kernels (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``).

The choice is resolved per call: an explicit ``backend=`` argument wins, then the ``RESTORE_OPS``
environment variable, then ``auto`` (triton for CUDA tensors when triton is importable, torch otherwise).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

BACKENDS = ("naive", "torch", "triton")


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    """True when Triton kernels run on CPU tensors through the interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve(op: str, *tensors: torch.Tensor, backend: str | None = None) -> str:
    """Return the backend that should run ``op`` on ``tensors``.

    Raises:
        ValueError: an unknown backend name, or ``triton`` requested where it cannot run (with the reason).
    """
    choice = backend or os.environ.get("RESTORE_OPS", "auto")
    on_cuda = any(t.is_cuda for t in tensors)
    if choice == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if choice not in BACKENDS:
        raise ValueError(f"{op}: unknown backend {choice!r}; expected one of {', '.join((*BACKENDS, 'auto'))}")
    if choice == "triton":
        if not triton_available():
            raise ValueError(f"{op}: backend 'triton' needs the triton package (pip install 'restore[cuda]')")
        if not on_cuda and not triton_interpreted():
            raise ValueError(f"{op}: backend 'triton' needs CUDA tensors, or TRITON_INTERPRET=1 for CPU tensors")
    return choice
