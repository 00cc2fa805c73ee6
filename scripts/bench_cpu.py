"""CPU benchmark: each network end to end with the ``naive`` ops backend (official arithmetic) vs the default.

Every case builds its network once (random weights, eval mode) and times ``net(x)`` under ``no_grad`` with
``RESTORE_OPS=naive`` and then with the default backend (``torch`` on CPU), alternating the two for
``--repeat`` rounds (order flipped every round) after one warm-up call each. Columns: best wall time of each
backend and their ratio (``ratio``, the headline: the least disturbed runs on a shared machine), the median of
the per-round ratios of back-to-back runs (``paired``), and the ratio of the best process CPU times summed over
threads (``cpu``, insensitive to time spent waiting for a busy machine). Peak memory, from one further call
per backend, is the increase of the resident set size's high-water mark over the pre-call RSS (Linux
``VmHWM``, reset through ``/proc/self/clear_refs`` after ``malloc_trim`` hands freed heap pages back; tensor
memory is allocated outside Python, so ``tracemalloc`` would not see it). All ratios are default / naive,
measured in the same run.

Usage:
    python scripts/bench_cpu.py                   # all cases
    python scripts/bench_cpu.py --cases HAT-S_x4 DRCT_x4 --repeat 7 --threads 2

Add a case by appending to ``CASES``: a name, a zero-argument builder returning an ``nn.Module``, and the
input size ``(B, C, H, W)``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import select_cases, set_ops_backend

from restore.archs import build_network


@dataclass(frozen=True)
class Case:
    name: str
    builder: Callable[[], nn.Module]
    input_size: tuple[int, int, int, int]


def _preset(family: str, preset: str, upscale: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        if family == "HAT":
            from restore.archs.hat import PRESETS
        else:
            from restore.archs.drct import PRESETS
        return build_network({"type": family, "upscale": upscale, **PRESETS[preset]})

    return build


CASES: list[Case] = [
    Case("HAT-S_x4", _preset("HAT", "HAT-S", 4), (1, 3, 64, 64)),
    Case("HAT_x4", _preset("HAT", "HAT", 4), (1, 3, 64, 64)),
    Case("DRCT_x4", _preset("DRCT", "DRCT", 4), (1, 3, 64, 64)),
]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _release_free_memory() -> None:
    """Return freed heap pages to the OS, so that memory kept from an earlier call does not hide a new peak."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: measure without trimming
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _PeakRss:
    """Peak resident set size during the block, via the kernel's high-water mark (reset on entry)."""

    def __enter__(self) -> _PeakRss:
        _release_free_memory()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        self.base = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status_kib("VmHWM") * 1024


def _time_once(net: nn.Module, x: torch.Tensor, backend: str | None) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of one forward pass."""
    set_ops_backend(backend)
    with torch.no_grad():
        wall, cpu = time.perf_counter(), time.process_time()
        net(x)
        return time.perf_counter() - wall, time.process_time() - cpu


def _peak_memory(net: nn.Module, x: torch.Tensor, backend: str | None) -> int:
    """Peak RSS increase (bytes) of one forward pass (measured apart from the timings: trimming the heap first
    would make the timed runs pay page faults that a long-running process does not)."""
    set_ops_backend(backend)
    gc.collect()
    with torch.no_grad(), _PeakRss() as rss:
        net(x)
    return rss.peak - rss.base


def bench(case: Case, repeat: int) -> dict[str, float]:
    """Alternate naive / default (order flipped every round) and summarise both and their ratios."""
    torch.manual_seed(0)
    net = case.builder().eval()
    x = torch.rand(case.input_size)
    backends = {"naive": "naive", "default": None}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    for backend in backends.values():
        _time_once(net, x, backend)  # warm-up (caches, allocator)
    for round_ in range(repeat):
        order = list(backends.items()) if round_ % 2 == 0 else list(reversed(backends.items()))
        for name, backend in order:
            runs[name].append(_time_once(net, x, backend))
    memory = {name: _peak_memory(net, x, backend) / 2**20 for name, backend in backends.items()}
    os.environ.pop("RESTORE_OPS", None)
    naive, fast = runs["naive"], runs["default"]
    return {
        "naive_s": min(r[0] for r in naive),
        "default_s": min(r[0] for r in fast),
        "ratio": min(r[0] for r in fast) / min(r[0] for r in naive),
        "paired_ratio": statistics.median(f[0] / n[0] for n, f in zip(naive, fast)),
        "cpu_ratio": min(r[1] for r in fast) / min(r[1] for r in naive),
        "naive_mb": memory["naive"],
        "default_mb": memory["default"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", help="case names (default: all): " + ", ".join(c.name for c in CASES))
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per backend")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = select_cases(parser, CASES, args.cases)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeat} alternating rounds")
    print(
        f"{'case':<10} {'input':<10} {'naive s':>8} {'default s':>9} {'ratio':>6} {'paired':>7} {'cpu':>6} "
        f"{'naive MB':>9} {'default MB':>10} {'mem':>5}"
    )
    for case in chosen:
        r = bench(case, args.repeat)
        size = "x".join(map(str, case.input_size[2:]))
        mem = r["default_mb"] / r["naive_mb"] if r["naive_mb"] > 0 else float("nan")
        print(
            f"{case.name:<10} {size:<10} {r['naive_s']:>8.3f} {r['default_s']:>9.3f} {r['ratio']:>6.2f} "
            f"{r['paired_ratio']:>7.2f} {r['cpu_ratio']:>6.2f} {r['naive_mb']:>9.1f} {r['default_mb']:>10.1f} "
            f"{mem:>5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
