"""glibc allocator settings for commands that run large networks on the CPU.

PyTorch's CPU tensors come from ``malloc``. glibc serves every block above its mmap threshold (128 KiB, raised
dynamically up to 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, and trims the top of the heap when more
than the trim threshold is free. A forward pass of a large network allocates and frees multi-MiB activations
thousands of times, so every one of them is mapped afresh and its pages are faulted in again: at 256x256 DRSformer
took 6.7 million minor page faults per forward, 40% of its CPU time in the kernel (``docs/benchmarks.md``).

:func:`keep_freed_memory` turns that off for the running process through ``mallopt``: no ``mmap`` for large
blocks (they come from the heap, and freed ones are reused) and no trimming below 2 GiB of free heap. The cost:
memory freed after a forward pass stays with the process (its resident set stays near the peak of the largest
forward until it exits), which is what a command that restores one image after another wants. Set
``RESTORE_MALLOC=default`` to keep glibc's defaults. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MALLOC_ENV", "keep_freed_memory"]

#: Environment variable: ``default`` keeps glibc's allocator settings.
MALLOC_ENV = "RESTORE_MALLOC"

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest free heap top kept (2 GiB)


def _glibc() -> ctypes.CDLL | None:
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
        return ctypes.CDLL(None)
    except (AttributeError, OSError, ValueError):  # not a glibc system
        return None


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory for reuse (glibc only; see module docstring).

    Returns:
        True when both settings were applied; False on other C libraries, with ``RESTORE_MALLOC=default``, or when
        glibc refused a setting.
    """
    if os.environ.get(MALLOC_ENV, "").strip().lower() == "default":
        return False
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) & bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
