"""CPU benchmark: each network end to end with the ``naive`` ops backend (official arithmetic) vs the default.

Every case builds its network once (random weights, eval mode) and times ``net(x)`` under ``no_grad`` with
``RESTORE_OPS=naive`` in NCHW (the official arithmetic and layout) and then with the default backend in the layout
the engine picks on the CPU (the network's ``cpu_memory_format``), alternating the two for ``--repeat`` rounds
(order flipped every round) after one warm-up call each. Columns: best wall time of each backend and their ratio
(``ratio``, the headline: the least disturbed runs on a shared machine), the median of the per-round ratios of
back-to-back runs (``paired``), and the ratio of the best process CPU times summed over threads (``cpu``,
insensitive to time spent waiting for a busy machine). Peak memory, from one further call per backend, is the
increase of the resident set size's high-water mark over the pre-call RSS (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` after ``malloc_trim`` hands freed heap pages back; tensor memory is allocated outside
Python, so ``tracemalloc`` would not see it). All ratios are default / naive, measured in the same run.

``--variants`` adds rows timed in the same alternation, each as a ratio to ``naive``: ``nchw`` and
``channels_last`` (default backend, layout forced), ``bf16`` (default backend and layout under CPU bfloat16
autocast; ``max diff`` is against the float32 default) and ``onnx`` (the network exported by ``restore export``'s
``to_onnx`` at the case's input size, fixed-size float32, run by ONNX Runtime with the same threads).

The process sets up its allocator as every ``restore`` command does (``restore.utils.malloc.configure_allocator``:
transparent huge pages for large tensors by default; ``RESTORE_MALLOC=keep`` / ``default`` pick the others), the
same for both backends.

Usage:
    python scripts/bench_cpu.py                   # all cases
    python scripts/bench_cpu.py --cases HAT-S_x4 DRCT_x4 --repeat 7 --threads 2
    python scripts/bench_cpu.py --cases DRSformer-128 --variants nchw channels_last bf16 onnx --repeat 3

Add a case by appending to ``CASES``: a name, a zero-argument builder returning an ``nn.Module``, and the
input size ``(B, C, H, W)``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import os
import statistics
import sys
import tempfile
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
from restore.engine.forward import network_spec, use_channels_last
from restore.utils.malloc import configure_allocator


@dataclass(frozen=True)
class Case:
    name: str
    builder: Callable[[], nn.Module]
    input_size: tuple[int, int, int, int]


def _preset(family: str, preset: str, upscale: int | None = None) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import importlib

        presets = importlib.import_module(f"restore.archs.{family.lower()}").PRESETS
        extra = {} if upscale is None else {"upscale": upscale}
        return build_network({"type": family, **extra, **presets[preset]})

    return build


CASES: list[Case] = [
    Case("HAT-S_x4", _preset("HAT", "HAT-S", 4), (1, 3, 64, 64)),
    Case("HAT_x4", _preset("HAT", "HAT", 4), (1, 3, 64, 64)),
    Case("DRCT_x4", _preset("DRCT", "DRCT", 4), (1, 3, 64, 64)),
    Case("DLGSANet-light_x4", _preset("DLGSANet", "light_x4"), (1, 3, 64, 64)),
    Case("DRSformer-128", _preset("DRSformer", "Rain200H"), (1, 3, 128, 128)),
    Case("DRSformer-256", _preset("DRSformer", "Rain200H"), (1, 3, 256, 256)),
]
VARIANTS = ("nchw", "channels_last", "bf16", "onnx")


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


@dataclass
class _Runner:
    """One timed variant: a callable network, its input, the ops backend and an optional autocast dtype."""

    net: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    backend: str | None
    autocast: torch.dtype | None = None

    def __call__(self) -> torch.Tensor:
        set_ops_backend(self.backend)
        with torch.no_grad(), torch.autocast("cpu", dtype=self.autocast, enabled=self.autocast is not None):
            return self.net(self.x).float()


def _time_once(run: _Runner) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of one forward pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _in_layout(net: nn.Module, x: torch.Tensor, channels_last: bool) -> tuple[nn.Module, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return copy.deepcopy(net).to(memory_format=fmt), x.contiguous(memory_format=fmt)


def _onnx_runner(net: nn.Module, x: torch.Tensor, folder: Path, threads: int) -> _Runner:
    from restore.export import OnnxNetwork, to_onnx

    report = to_onnx(net, folder / "model.onnx", tile=x.shape[-1])
    return _Runner(OnnxNetwork(report.path, threads=threads), x, None)


def _runners(net: nn.Module, x: torch.Tensor, variants: list[str], folder: Path) -> dict[str, _Runner]:
    """naive (NCHW), default (engine layout on the CPU), then the requested variants."""
    engine_cl = use_channels_last(network_spec(net), "cpu")
    runners = {"naive": _Runner(net, x, "naive"), "default": _Runner(*_in_layout(net, x, engine_cl), None)}
    for name in variants:
        if name in ("nchw", "channels_last"):
            runners[name] = _Runner(*_in_layout(net, x, name == "channels_last"), None)
        elif name == "bf16":
            runners[name] = _Runner(runners["default"].net, runners["default"].x, None, torch.bfloat16)
        elif name == "onnx":
            try:
                runners[name] = _onnx_runner(net, x, folder, torch.get_num_threads())
            except Exception as err:  # an export that fails its own check: say so, keep the other rows
                print(f"onnx variant left out: {str(err).splitlines()[0]}", flush=True)
    return runners


def _peak_memory(run: _Runner) -> int:
    """Peak RSS increase (bytes) of one forward pass (measured apart from the timings: trimming the heap first
    would make the timed runs pay page faults that a long-running process does not)."""
    gc.collect()
    with _PeakRss() as rss:
        run()
    return rss.peak - rss.base


def bench(case: Case, repeat: int, variants: list[str], folder: Path) -> dict[str, dict[str, float]]:
    """Alternate all runners (order flipped every round); per runner: best wall / CPU time, ratios to naive."""
    torch.manual_seed(0)
    net = case.builder().eval()
    x = torch.rand(case.input_size)
    runners = _runners(net, x, variants, folder)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    outputs = {name: run() for name, run in runners.items()}  # warm-up (caches, allocator)
    for round_ in range(repeat):
        order = list(runners.items()) if round_ % 2 == 0 else list(reversed(runners.items()))
        for name, run in order:
            times[name].append(_time_once(run))
    memory = {name: _peak_memory(runners[name]) / 2**20 for name in ("naive", "default")}
    os.environ.pop("RESTORE_OPS", None)
    naive = times["naive"]
    result = {}
    for name, runs in times.items():
        result[name] = {
            "s": min(r[0] for r in runs),
            "ratio": min(r[0] for r in runs) / min(r[0] for r in naive),
            "paired": statistics.median(f[0] / n[0] for n, f in zip(naive, runs)),
            "cpu": min(r[1] for r in runs) / min(r[1] for r in naive),
            "diff": float((outputs[name] - outputs["naive" if name != "bf16" else "default"]).abs().max()),
            "mb": memory.get(name, float("nan")),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", help="case names (default: all): " + ", ".join(c.name for c in CASES))
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per backend")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--variants", nargs="*", default=[], choices=VARIANTS,
                        help="extra rows, each against naive: " + ", ".join(VARIANTS))  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = select_cases(parser, CASES, args.cases)
    allocator = configure_allocator()  # as every command does (huge pages take effect before any tensor exists)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeat} alternating rounds, "
          f"allocator {allocator}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'case':<18} {'input':<8} {'variant':<14} {'s':>8} {'ratio':>6} {'paired':>7} {'cpu':>6} "
          f"{'max diff':>9} {'peak MB':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for case in chosen:
            size = "x".join(map(str, case.input_size[2:]))
            for name, r in bench(case, args.repeat, args.variants, Path(tmp)).items():
                print(f"{case.name:<18} {size:<8} {name:<14} {r['s']:>8.3f} {r['ratio']:>6.2f} {r['paired']:>7.2f} "
                      f"{r['cpu']:>6.2f} {r['diff']:>9.1e} {r['mb']:>8.1f}", flush=True)  # fmt: skip
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
