"""CPU thread pools of torch (OpenMP) and OpenCV: sane defaults for small and shared machines.

Every torch operator on the CPU splits its work over ``torch.get_num_threads()`` OpenMP threads and waits for
the slowest one. When the machine has no idle core (a laptop running other work, a shared 2-core box), one of
those threads is often descheduled, and every operator then waits a scheduler time slice for it: small
operators (training crops, tiles) become 10-30 times slower than with one thread. OpenCV keeps its own pool
on top, inside each DataLoader worker too. Defaults chosen here:

* torch: ``$RESTORE_THREADS`` if set; else ``$OMP_NUM_THREADS`` if set (torch already follows it); else the cores
  that are idle when the command starts: the usable cores minus the busy ones (the smaller of the 1-minute load
  average and the tasks runnable at that moment), rounded, at least 1 (:func:`default_threads`). On an idle
  machine that is every core (on 2 cores, 2 threads run a forward pass 1.6-1.7x faster than 1); with other
  CPU-bound work running it is fewer, since an OpenMP team that has a member descheduled waits for it at the end
  of every operator (``docs/benchmarks.md``).
* Several processes: under torchrun the cores are shared among the ``$LOCAL_WORLD_SIZE`` ranks of the machine, and
  a training process leaves one core to each of its DataLoader workers, so that processes x threads stays within
  the cores.
* OpenCV: as many threads as torch in the main process, and one in each DataLoader worker
  (:func:`worker_threads`), where the workers themselves are the parallelism.

``restore infer --threads N`` (and ``RESTORE_THREADS=N`` for every command) overrides the default.
"""

from __future__ import annotations

import os
import time

__all__ = ["THREADS_ENV", "default_threads", "set_threads", "worker_threads"]

#: Environment variable holding the thread count for every ``restore`` command.
THREADS_ENV = "RESTORE_THREADS"
_LOADAVG = "/proc/loadavg"  # its 4th field: runnable tasks / all tasks, system-wide


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_average() -> float | None:
    """Runnable processes averaged over the last minute (``None`` where the OS does not tell)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _own_running_threads() -> int:
    """Threads of this process that are runnable now (state ``R`` in ``/proc/self/task/*/stat``): the reading thread,
    and e.g. OpenMP workers still spinning after an earlier parallel operator."""
    running = 0
    for stat in os.scandir("/proc/self/task"):
        try:
            with open(f"{stat.path}/stat", encoding="ascii", errors="replace") as f:
                running += f.read().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):  # the thread ended meanwhile
            continue
    return running


def _runnable_now(samples: int = 8, interval_s: float = 0.001) -> float | None:
    """Runnable tasks of other processes right now: the running count of ``/proc/loadavg`` less this process's own
    runnable threads, averaged over ``samples`` reads ``interval_s`` apart (``None`` without ``/proc``)."""
    counts = []
    try:
        for i in range(samples):
            if i:
                time.sleep(interval_s)
            with open(_LOADAVG, encoding="ascii") as f:
                running = int(f.read().split()[3].split("/")[0])
            counts.append(running - _own_running_threads())
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, sum(counts) / len(counts))


def _busy_cores() -> float:
    """Cores taken by other work: the smaller of the 1-minute load average and the tasks runnable right now.

    The load average alone lags by about a minute: right after one command ends it still counts that command, so
    the next one would start with too few threads; the momentary count alone misses work that pauses. 0 where
    the OS tells neither."""
    known = [v for v in (_load_average(), _runnable_now()) if v is not None]
    return min(known) if known else 0.0


def _local_ranks() -> int:
    """Processes of this job on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def default_threads(workers: int = 0) -> int | None:
    """Threads for torch and OpenCV from the environment and the machine; ``None``: keep ``OMP_NUM_THREADS``.

    Without ``$RESTORE_THREADS`` / ``$OMP_NUM_THREADS``: ``min(cores // ranks - workers, round((cores - busy) /
    ranks))``, at least 1, with ``cores`` the usable cores, ``busy`` the cores other work takes (the smaller of the
    1-minute load average and the tasks runnable now), ``ranks`` the local torchrun processes and ``workers`` this
    process's DataLoader workers.

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
    cores, ranks = _usable_cores(), _local_ranks()
    idle = round((cores - _busy_cores()) / ranks)
    return max(1, min(cores // ranks - max(0, workers), idle))


def set_threads(threads: int | None = None, *, workers: int = 0, allocator: bool = True) -> int:
    """Size torch's and OpenCV's thread pools: ``threads``, else :func:`default_threads` (given this process's
    DataLoader ``workers``); returns torch's count.

    Every command calls this first; with ``allocator`` it also applies
    :func:`restore.utils.malloc.configure_allocator` (no page-fault storm on large inputs, ``$RESTORE_MALLOC``).

    Raises:
        ValueError: ``$RESTORE_THREADS`` or ``$RESTORE_MALLOC`` holds an unusable value.
    """
    if allocator:  # before torch allocates anything: PyTorch reads its huge-page switch once
        from restore.utils.malloc import configure_allocator

        configure_allocator()
    import cv2
    import torch


    if threads is None:
        threads = default_threads(workers)
    if threads is not None:
        torch.set_num_threads(threads)
    cv2.setNumThreads(torch.get_num_threads())
    return torch.get_num_threads()


def worker_threads(worker_id: int = 0) -> None:
    """``DataLoader(worker_init_fn=...)``: one OpenCV thread per worker (torch already uses one there)."""
    import cv2

    cv2.setNumThreads(1)
