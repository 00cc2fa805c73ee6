"""CPU benchmark for DRSformer and DLGSANet: the default ops backend vs ``naive`` (official arithmetic).

Networks (random weights, eval mode, ``no_grad``): DRSformer with its official configuration at 128x128 (MEFC and
no-MEFC variants), DLGSANet light and large x4 at 64x64. Ops: the top-k sparse channel attention at every
DRSformer level for a 128x128 image (forward, and forward + backward), and the dynamic depthwise convolution of
DLGSANet at 64x64 and 256x256 (same).

Time: both backends alternate in this process for ``--repeat`` rounds after one warm-up call each; the median is
reported. Memory: each (case, backend) runs once in a fresh subprocess, which reports the peak resident-set
increase over its state just before the call (sampled every millisecond; tensor memory lives outside Python).
``ratio`` columns are default / naive measured in the same run (< 1: the default is faster / smaller).

Usage:
    python scripts/bench_cpu_restormer.py
    python scripts/bench_cpu_restormer.py --cases DRSformer DLGSANet-light_x4 --repeat 5 --threads 1
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import select_cases, set_ops_backend

from restore.archs import build_network
from restore.ops.dynamic_conv import dynamic_depthwise_conv
from restore.ops.sparse_channel_attention import sparse_channel_attention


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[], Callable[[], object]]  # builds inputs once, returns the call to time
    shape: str


def _network(config: dict, input_size: tuple[int, int, int, int]) -> Callable[[], Callable[[], object]]:
    def setup() -> Callable[[], object]:
        torch.manual_seed(0)
        net = build_network(config).eval()
        x = torch.rand(input_size)

        def call() -> object:
            with torch.no_grad():
                return net(x)

        return call

    return setup


def _drsformer(mefc: bool) -> dict:
    from restore.archs.drsformer import PRESETS

    return {"type": "DRSformer", **PRESETS["Rain200H"], "mefc": mefc}


def _dlgsanet(preset: str) -> dict:
    from restore.archs.dlgsanet import PRESETS

    return {"type": "DLGSANet", **PRESETS[preset]}


# DRSformer levels at 128x128 with dim 48, heads (1, 2, 4, 8): (heads, C per head, tokens); decoder level 1: 96 x 1
_LEVELS = {
    "enc1": (1, 48, 128 * 128),
    "enc2": (2, 48, 64 * 64),
    "enc3": (4, 48, 32 * 32),
    "latent": (8, 48, 16 * 16),
    "dec1": (1, 96, 128 * 128),
}


def _topk_attention(backward: bool, levels: tuple[str, ...] = tuple(_LEVELS)) -> Callable[[], Callable[[], object]]:
    def setup() -> Callable[[], object]:
        gen = torch.Generator().manual_seed(0)
        tensors = []
        for heads, channels, tokens in (_LEVELS[name] for name in levels):
            q, k, v = (torch.randn(1, heads, channels, tokens, generator=gen) for _ in range(3))
            temperature = torch.rand(heads, 1, 1, generator=gen) + 0.5
            weights = torch.rand(4, generator=gen)
            tensors.append([t.requires_grad_(backward) for t in (q, k, v, temperature, weights)])

        def call() -> object:
            with torch.set_grad_enabled(backward):
                for q, k, v, temperature, weights in tensors:
                    out = sparse_channel_attention(q, k, v, temperature, mode="topk", topk_weights=weights)
                    if backward:
                        out.sum().backward()

        return call

    return setup


def _dynamic_conv(size: int, backward: bool) -> Callable[[], Callable[[], object]]:
    def setup() -> Callable[[], object]:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, 48, size, size, generator=gen).requires_grad_(backward)
        weight = torch.randn(1, 8, 7, 7, size, size, generator=gen).requires_grad_(backward)

        def call() -> object:
            with torch.set_grad_enabled(backward):
                out = dynamic_depthwise_conv(x, weight)
                if backward:
                    out.sum().backward()

        return call

    return setup


CASES: list[Case] = [
    Case("DRSformer", _network(_drsformer(True), (1, 3, 128, 128)), "1x3x128x128"),
    Case("DRSformer-noMEFC", _network(_drsformer(False), (1, 3, 128, 128)), "1x3x128x128"),
    Case("DLGSANet-light_x4", _network(_dlgsanet("light_x4"), (1, 3, 64, 64)), "1x3x64x64"),
    Case("DLGSANet-large_x4", _network(_dlgsanet("large_x4"), (1, 3, 64, 64)), "1x3x64x64"),
    *(
        Case(f"topk-attn-{name}", _topk_attention(False, (name,)), "x".join(map(str, (1, *shape))))
        for name, shape in _LEVELS.items()
    ),
    Case("topk-attn-fwd", _topk_attention(False), "5 levels@128"),
    Case("topk-attn-fwdbwd", _topk_attention(True), "5 levels@128"),
    Case("dynconv-fwd-64", _dynamic_conv(64, False), "48ch G8 K7 64"),
    Case("dynconv-fwd-256", _dynamic_conv(256, False), "48ch G8 K7 256"),
    Case("dynconv-fwdbwd-256", _dynamic_conv(256, True), "48ch G8 K7 256"),
]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRss:
    """Samples the resident set size every millisecond while active."""

    def __enter__(self) -> _PeakRss:
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def time_case(case: Case, repeat: int) -> dict[str, float]:
    call = case.setup()
    backends = {"naive": "naive", "default": None}
    times: dict[str, list[float]] = {name: [] for name in backends}
    for backend in backends.values():
        set_ops_backend(backend)
        call()  # warm-up
    for _ in range(repeat):
        for name, backend in backends.items():
            set_ops_backend(backend)
            gc.collect()
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    set_ops_backend(None)
    return {name: statistics.median(values) for name, values in times.items()}


def _memory_child(name: str, backend: str) -> None:
    case = next(c for c in CASES if c.name == name)
    call = case.setup()
    set_ops_backend(None if backend == "default" else backend)
    gc.collect()
    with _PeakRss() as rss:
        call()
    print(json.dumps({"peak_mb": (rss.peak - rss.base) / 2**20}))


def memory_case(case: Case, backend: str) -> float:
    cmd = [sys.executable, __file__, "--_memory", case.name, backend, "--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ}).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", help="case names (default: all): " + ", ".join(c.name for c in CASES))
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per backend (median reported)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--_memory", nargs=2, metavar=("CASE", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._memory:
        _memory_child(*args._memory)
        return
    chosen = select_cases(parser, CASES, args.cases)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeat}")
    print(f"{'case':<20} {'input':<16} {'naive s':>9} {'default s':>10} {'ratio':>6} "
          f"{'naive MB':>9} {'default MB':>11} {'mem ratio':>9}")  # fmt: skip
    for case in chosen:
        seconds = time_case(case, args.repeat)
        naive_mb, fast_mb = memory_case(case, "naive"), memory_case(case, "default")
        mem_ratio = fast_mb / naive_mb if naive_mb > 0 else float("nan")
        print(
            f"{case.name:<20} {case.shape:<16} {seconds['naive']:>9.3f} {seconds['default']:>10.3f} "
            f"{seconds['default'] / seconds['naive']:>6.2f} {naive_mb:>9.1f} {fast_mb:>11.1f} {mem_ratio:>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
