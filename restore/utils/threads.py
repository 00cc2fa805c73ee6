"""CPU thread pools of torch (OpenMP) and OpenCV: sane defaults for small and shared machines.

Every torch operator on the CPU splits its work over ``torch.get_num_threads()`` OpenMP threads and waits for
the slowest one. When the machine has no idle core (a laptop running other work, a shared 2-core box), one of
those threads is often descheduled, and every operator then waits a scheduler time slice for it: small
operators (training crops, tiles) become 10-30 times slower than with one thread. OpenCV keeps its own pool
on top, inside each DataLoader worker too. Defaults chosen here:

* torch: ``$RESTORE_THREADS`` if set; else ``$OMP_NUM_THREADS`` if set (torch already follows it); else one
  thread fewer than the usable cores (at least 1), so that one core stays free for data loading, the
  desktop and the operating system. On a 2-core machine that is one thread.
* OpenCV: as many threads as torch in the main process, and one in each DataLoader worker
  (:func:`worker_threads`), where the workers themselves are the parallelism.

``restore infer --threads N`` (and ``RESTORE_THREADS=N`` for every command) overrides the default.
"""

from __future__ import annotations

import os

__all__ = ["THREADS_ENV", "default_threads", "set_threads", "worker_threads"]

#: Environment variable holding the thread count for every ``restore`` command.
THREADS_ENV = "RESTORE_THREADS"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int | None:
    """Threads for torch and OpenCV from the environment and the machine; ``None``: keep ``OMP_NUM_THREADS``.

    Raises:
        ValueError: ``$RESTORE_THREADS`` is not a positive integer.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"${THREADS_ENV}: expected a positive integer, got {value!r}")
        return threads
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    return max(1, _usable_cores() - 1)


def set_threads(threads: int | None = None) -> int:
    """Size torch's and OpenCV's thread pools: ``threads``, else :func:`default_threads`; returns torch's count."""
    import cv2
    import torch

    if threads is None:
        threads = default_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    cv2.setNumThreads(torch.get_num_threads())
    return torch.get_num_threads()


def worker_threads(worker_id: int = 0) -> None:
    """``DataLoader(worker_init_fn=...)``: one OpenCV thread per worker (torch already uses one there)."""
    import cv2

    cv2.setNumThreads(1)
