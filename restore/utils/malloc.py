"""glibc allocator settings for commands that run large networks on the CPU.

PyTorch's CPU tensors come from ``malloc``. glibc serves every block above its mmap threshold (128 KiB, raised
dynamically up to 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, and trims the top of the heap when more
than the trim threshold is free. A forward pass of a large network allocates and frees multi-MiB activations
thousands of times, so every one of them is mapped afresh and its pages are faulted in again: at 256x256 DRSformer
took 6.7 million minor page faults per forward, 40% of its CPU time in the kernel (``docs/benchmarks.md``).

:func:`configure_allocator`, which every command calls first, picks the remedy (``$RESTORE_MALLOC``). By default
large tensors go on transparent huge pages (one fault per 2 MiB; nothing else changes). :func:`keep_freed_memory`
(``RESTORE_MALLOC=keep``) goes further through ``mallopt``: no ``mmap`` for large blocks and no trimming below
2 GiB of free heap, so freed blocks are reused and faults stop; but memory freed after a forward stays with the
process, and PyTorch's 64-byte-aligned requests leave freed blocks that equal requests cannot reuse, so the peak
grows (by a fifth to a half, ``docs/benchmarks.md``). Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MALLOC_ENV", "THP_ENV", "configure_allocator", "keep_freed_memory"]

#: Environment variable: ``hugepages`` (default), ``keep`` or ``default`` (:func:`configure_allocator`).
MALLOC_ENV = "RESTORE_MALLOC"
#: PyTorch's switch for transparent huge pages under large CPU tensors (read once, at its first allocation).
THP_ENV = "THP_MEM_ALLOC_ENABLE"

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
        True when both settings were applied; False on other C libraries or when glibc refused a setting.
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) & bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def configure_allocator() -> str:
    """The allocator remedy every command applies at start, chosen by ``$RESTORE_MALLOC``; returns what was applied.

    * unset or ``hugepages`` (default): large tensors on transparent huge pages (PyTorch's
      ``THP_MEM_ALLOC_ENABLE=1``: 2 MiB-aligned blocks advised ``MADV_HUGEPAGE``), one page fault per 2 MiB instead of
      per 4 KiB, memory still handed back on free. Takes effect only before PyTorch's first CPU allocation and where
      the kernel allows huge pages (``/sys/kernel/mm/transparent_hugepage/enabled``: ``always`` or ``madvise``).
    * ``keep``: :func:`keep_freed_memory` (no page faults after the first forward, but the resident set stays at
      its peak, and the peak grows: ``docs/benchmarks.md``).
    * ``default``: nothing.

    Raises:
        ValueError: another value.
    """
    choice = os.environ.get(MALLOC_ENV, "").strip().lower() or "hugepages"
    if choice == "hugepages":
        os.environ.setdefault(THP_ENV, "1")
        return "hugepages"
    if choice == "keep":
        return "keep" if keep_freed_memory() else "default"
    if choice == "default":
        return "default"
    raise ValueError(f"${MALLOC_ENV}: expected hugepages, keep or default, got {choice!r}")
