"""Pieces shared by the ``scripts/bench_*.py`` benchmarks: backend switching, case selection, CUDA timing/memory.

The benchmarks import this module by name; each puts its own folder on ``sys.path`` first, so that works both for
``python scripts/bench_X.py`` and for loading a benchmark file from elsewhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import torch


class _Named(Protocol):
    name: str


CaseT = TypeVar("CaseT", bound=_Named)


def set_ops_backend(backend: str | None) -> None:
    """Select the ops backend through ``RESTORE_OPS``; ``None`` removes it (the default: automatic choice)."""
    if backend is None:
        os.environ.pop("RESTORE_OPS", None)
    else:
        os.environ["RESTORE_OPS"] = backend


def select_cases(parser: argparse.ArgumentParser, cases: Sequence[CaseT], names: Sequence[str] | None) -> list[CaseT]:
    """The cases named in ``names`` (all when empty or None), in ``cases`` order; unknown names are a usage error."""
    chosen = [c for c in cases if not names or c.name in names]
    unknown = set(names or ()) - {c.name for c in chosen}
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {[c.name for c in cases]}")
    return chosen


def cuda_median_ms(fn: Callable[[], object], warmup: int, repeat: int) -> float:
    """Median milliseconds of ``fn`` (CUDA events around each call) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cuda_peak_mb(fn: Callable[[], object]) -> float:
    """Peak CUDA memory (MiB) allocated by one call of ``fn`` above what was allocated before it."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20
