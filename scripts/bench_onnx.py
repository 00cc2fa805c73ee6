"""CPU benchmark: ONNX Runtime (exported fixed-size model) vs PyTorch (default ops backend), float32, same run.

Every case builds its network once (random weights, eval mode), exports it with ``restore.export.to_onnx`` at
the case's tile size (the export's own ONNX Runtime check included), then times one forward of a ``(1, 3, T, T)``
tile with each runtime, alternating them for ``--repeat`` rounds after one warm-up call each. Columns: best wall
time of each runtime and ``ratio`` = ONNX Runtime / PyTorch (below 1: ONNX Runtime is faster), plus the export's
max abs difference to PyTorch. Both runtimes use ``--threads`` threads.

Usage:
    python scripts/bench_onnx.py          # HAT-S x4, DRCT x4, DLGSANet-light x4 (64x64), DRSformer (128x128)
    python scripts/bench_onnx.py --cases DRSformer --repeat 3 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restore.archs import build_network
from restore.export import OnnxNetwork, to_onnx


@dataclass(frozen=True)
class Case:
    name: str
    network_g: Callable[[], dict]
    tile: int


def _hat_s() -> dict:
    from restore.archs.hat import PRESETS

    return {"type": "HAT", "upscale": 4, **PRESETS["HAT-S"]}


def _drct() -> dict:
    from restore.archs.drct import PRESETS

    return {"type": "DRCT", "upscale": 4, **PRESETS["DRCT"]}


def _dlgsanet_light() -> dict:
    from restore.archs.dlgsanet import PRESETS

    return {"type": "DLGSANet", **PRESETS["light_x4"]}


def _drsformer() -> dict:
    from restore.archs.drsformer import PRESETS

    return {"type": "DRSformer", **PRESETS["Rain200H"]}


CASES = [
    Case("HAT-S_x4", _hat_s, 64),
    Case("DRCT_x4", _drct, 64),
    Case("DLGSANet-light_x4", _dlgsanet_light, 64),
    Case("DRSformer", _drsformer, 128),
]


def _best(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_case(case: Case, repeat: int, threads: int, folder: Path) -> tuple[float, float, float, float]:
    """(torch seconds, ORT seconds, max abs difference of the export check, export seconds)."""
    torch.manual_seed(0)
    network_g = case.network_g()
    net: nn.Module = build_network(network_g).eval()
    start = time.perf_counter()
    report = to_onnx(net, folder / f"{case.name}.onnx", tile=case.tile, network_g=network_g)
    exported = time.perf_counter() - start
    runner = OnnxNetwork(report.path, threads=threads)
    x = torch.rand(1, 3, case.tile, case.tile)
    with torch.no_grad():
        net(x)
        runner(x)
        torch_best = ort_best = float("inf")
        for _ in range(repeat):  # alternate so that both see the same machine load
            torch_best = min(torch_best, _best(lambda: net(x), 1))
            ort_best = min(ort_best, _best(lambda: runner(x), 1))
    return torch_best, ort_best, max(report.differences.values()), exported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES], help="case names (default: all)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per runtime (default 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for both runtimes")
    args = parser.parse_args()
    unknown = sorted(set(args.cases) - {c.name for c in CASES})
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(c.name for c in CASES)}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32, best of {args.repeat}")
    print(f"{'case':<20} {'tile':>5} {'torch s':>9} {'ORT s':>9} {'ratio':>7} {'max diff':>9} {'export s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in (next(c for c in CASES if c.name == name) for name in args.cases):
            t, o, diff, exported = run_case(case, args.repeat, args.threads, Path(tmp))
            print(f"{case.name:<20} {case.tile:>5} {t:>9.3f} {o:>9.3f} {o / t:>7.2f} {diff:>9.1e} {exported:>9.0f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
