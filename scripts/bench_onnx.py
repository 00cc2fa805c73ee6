"""CPU benchmark: ONNX Runtime (exported model) vs PyTorch (default ops backend), float32, same run.

Every case builds its network once (random weights, eval mode) and exports it with ``restore.export.to_onnx``
(dynamic height and width, the default; ``--fixed``: a fixed-size model of the case's tile), the export's own ONNX
Runtime check included. It then times one forward of a ``(1, 3, T, T)`` tile with each runtime, alternating them
for ``--repeat`` rounds after one warm-up call each. PyTorch runs as the engine runs a tile
(``restore.engine.forward.TileForward``: the network's CPU memory format, the allocator setting every command
applies); ONNX Runtime through ``restore.export.OnnxNetwork``. Columns: best wall time of each runtime and
``ratio`` = ONNX Runtime / PyTorch (below 1: ONNX Runtime is faster), plus the export's max abs difference to
PyTorch. Both runtimes use ``--threads`` threads.

``--baseline DIR`` also times ``DIR/<case>.onnx`` (e.g. exported by an earlier version; ``--keep DIR`` keeps this
run's files) in the same alternating rounds: column ``base/ORT`` = its time / this export's time.
``--small`` adds, per case, the whole ``restore.engine.infer`` call on a 48x40 image (``small ratio``: ONNX
Runtime / PyTorch, start-up excluded).

Usage:
    python scripts/bench_onnx.py          # HAT-S x4, DRCT x4, DLGSANet-light x4 (64x64), DRSformer (128x128)
    python scripts/bench_onnx.py --cases DRSformer --repeat 3 --threads 2 --small
    python scripts/bench_onnx.py --cases DLGSANet-large_x4          # also available: the large DLGSANet
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
from restore.engine import infer
from restore.engine.forward import TileForward
from restore.export import OnnxNetwork, to_onnx
from restore.utils.malloc import configure_allocator


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


def _dlgsanet_large() -> dict:
    from restore.archs.dlgsanet import PRESETS

    return {"type": "DLGSANet", **PRESETS["large_x4"]}


def _drsformer() -> dict:
    from restore.archs.drsformer import PRESETS

    return {"type": "DRSformer", **PRESETS["Rain200H"]}


CASES = [
    Case("HAT-S_x4", _hat_s, 64),
    Case("DRCT_x4", _drct, 64),
    Case("DLGSANet-light_x4", _dlgsanet_light, 64),
    Case("DLGSANet-large_x4", _dlgsanet_large, 64),
    Case("DRSformer", _drsformer, 128),
]


#: One case per family.
DEFAULT_CASES = ("HAT-S_x4", "DRCT_x4", "DLGSANet-light_x4", "DRSformer")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Result:
    torch_s: float
    ort_s: float
    difference: float
    export_s: float
    base_s: float | None = None
    small_ratio: float | None = None


def run_case(case: Case, args: argparse.Namespace, folder: Path) -> Result:
    """Export the case, then time PyTorch, this export and (if given) the baseline file in alternating rounds."""
    torch.manual_seed(0)
    network_g = case.network_g()
    net: nn.Module = build_network(network_g).eval()
    start = time.perf_counter()
    tile = case.tile if args.fixed else None
    report = to_onnx(net, folder / f"{case.name}.onnx", tile=tile, network_g=network_g)
    exported = time.perf_counter() - start
    cpu = torch.device("cpu")
    forward = TileForward(net, cpu)
    runners = {"ort": OnnxNetwork(report.path, threads=args.threads)}
    if args.baseline is not None:
        runners["base"] = OnnxNetwork(args.baseline / f"{case.name}.onnx", threads=args.threads)
    x = torch.rand(1, 3, case.tile, case.tile)
    small = torch.rand(1, 3, 48, 40)
    best = {name: float("inf") for name in ("torch", *runners, "torch small", "ort small")}
    with torch.no_grad():
        forward(x, cpu)
        for runner in runners.values():
            runner(x)
        if args.small:
            infer(net, small)
            infer(runners["ort"], small)
        for _ in range(args.repeat):  # alternate so that all see the same machine load
            best["torch"] = min(best["torch"], _timed(lambda: forward(x, cpu)))
            for name, runner in runners.items():
                best[name] = min(best[name], _timed(lambda: runner(x)))  # noqa: B023
            if args.small:
                best["torch small"] = min(best["torch small"], _timed(lambda: infer(net, small)))
                best["ort small"] = min(best["ort small"], _timed(lambda: infer(runners["ort"], small)))
    result = Result(best["torch"], best["ort"], max(report.differences.values()), exported)
    if "base" in runners:
        result.base_s = best["base"]
    if args.small:
        result.small_ratio = best["ort small"] / best["torch small"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES if c.name in DEFAULT_CASES],
                        help=f"case names (default: {' '.join(DEFAULT_CASES)}; all: {' '.join(c.name for c in CASES)})")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per runtime (default 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for both runtimes")
    parser.add_argument("--fixed", action="store_true", help="export fixed-size models of the tile size")
    parser.add_argument("--baseline", type=Path, help="folder of <case>.onnx files to time alongside")
    parser.add_argument("--keep", type=Path, help="folder to keep this run's exported files in")
    parser.add_argument("--small", action="store_true", help="also time infer() on a 48x40 image")
    args = parser.parse_args()
    configure_allocator()  # as every command does, before the first large allocation
    unknown = sorted(set(args.cases) - {c.name for c in CASES})
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(c.name for c in CASES)}")
    torch.set_num_threads(args.threads)
    kind = "fixed-size" if args.fixed else "dynamic"
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32, {kind} exports, best of {args.repeat}")
    header = f"{'case':<20} {'tile':>5} {'torch s':>9} {'ORT s':>9} {'ratio':>7} {'max diff':>9} {'export s':>9}"
    print(header + (f" {'base/ORT':>9}" if args.baseline else "") + (f" {'small ratio':>12}" if args.small else ""))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for case in (next(c for c in CASES if c.name == name) for name in args.cases):
            r = run_case(case, args, folder)
            line = (f"{case.name:<20} {case.tile:>5} {r.torch_s:>9.3f} {r.ort_s:>9.3f} {r.ort_s / r.torch_s:>7.2f} "
                    f"{r.difference:>9.1e} {r.export_s:>9.0f}")  # fmt: skip
            if r.base_s is not None:
                line += f" {r.base_s / r.ort_s:>9.2f}"
            if r.small_ratio is not None:
                line += f" {r.small_ratio:>12.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
