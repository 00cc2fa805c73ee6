"""GPU benchmark: whole networks (official configurations) with the default ops backend vs the naive one.

Every case builds its network once (random weights) and times it with ``RESTORE_OPS=naive`` (the official
arithmetic), ``RESTORE_OPS=torch`` and the default (``auto``: the Triton kernels on CUDA), in float32 and bfloat16
(the network cast with ``.to(dtype)``). ``eval`` mode times ``net(x)`` under ``no_grad`` on an inference-sized
input; ``train`` mode times forward + backward of a mean loss on the official training patch and batch. Each
timing is the median of ``--repeat`` CUDA-event-timed calls after ``--warmup`` calls; peak memory is
``torch.cuda.max_memory_allocated`` above the resident weights and input during one call. Ratios
(``naive / default``, ``torch / default``) come from this run, and each row reports the largest output difference
between the default and the naive backends (the same dtype). Float32 runs with TF32 disabled unless ``--tf32``.
Backends that run out of memory are reported as ``oom``. CUDA only.

Usage:
    python scripts/bench_gpu_e2e.py                                   # every case, eval and train, both dtypes
    python scripts/bench_gpu_e2e.py --cases HAT_x4 DLGSANet-L_x4 --modes eval --dtypes bfloat16
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import cuda_median_ms, cuda_peak_mb, select_cases, set_ops_backend

from restore.archs import build_network

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BACKENDS = {"naive": "naive", "torch": "torch", "default": None}


@dataclass(frozen=True)
class Case:
    name: str
    network_g: Callable[[], dict]
    eval_size: tuple[int, int, int, int]  # inference input (B, C, H, W)
    train_size: tuple[int, int, int, int]  # official training batch / patch (B, C, H, W)


def _preset(family: str, preset: str, **extra: object) -> Callable[[], dict]:
    """``network_g`` of ``PRESETS[preset]`` from ``restore.archs.<family lower-case>`` plus ``extra``."""

    def network_g() -> dict:
        presets = importlib.import_module(f"restore.archs.{family.lower()}").PRESETS
        return {"type": family, **presets[preset], **extra}

    return network_g


CASES: list[Case] = [
    # SR networks: 128 x 128 LR input (-> 512 x 512), training on 64 x 64 LR patches, batch 4 per GPU
    Case("HAT-S_x4", _preset("HAT", "HAT-S", upscale=4), (1, 3, 128, 128), (4, 3, 64, 64)),
    Case("HAT_x4", _preset("HAT", "HAT", upscale=4), (1, 3, 128, 128), (4, 3, 64, 64)),
    Case("DRCT_x4", _preset("DRCT", "DRCT", upscale=4), (1, 3, 128, 128), (4, 3, 64, 64)),
    # DRSformer: 256 x 256 rainy image; training patches 128 x 128, batch 2 (progressive schedule's first stage)
    Case("DRSformer_Rain200H", _preset("DRSformer", "Rain200H"), (1, 3, 256, 256), (2, 3, 128, 128)),
    # DLGSANet: 128 x 128 LR input (eval mode uses TLC windows); training on 48 x 48 LR patches, batch 16
    Case("DLGSANet-L_x4", _preset("DLGSANet", "large_x4"), (1, 3, 128, 128), (16, 3, 48, 48)),
    Case("DLGSANet-Light_x4", _preset("DLGSANet", "light_x4"), (1, 3, 128, 128), (16, 3, 48, 48)),
]


def _step(net: nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    if not train:
        with torch.no_grad():
            return net(x)
    net.zero_grad(set_to_none=True)
    out = net(x)
    out.float().mean().backward()
    return out.detach()


def bench(case: Case, dtype: torch.dtype, train: bool, warmup: int, repeat: int) -> dict[str, float]:
    torch.manual_seed(0)
    net = build_network(case.network_g()).to("cuda", dtype)
    net.train(train)
    x = torch.rand(case.train_size if train else case.eval_size, device="cuda", dtype=dtype)
    results: dict[str, float] = {}
    outputs = {}

    def call() -> torch.Tensor:
        return _step(net, x, train)

    try:
        for name, backend in BACKENDS.items():
            set_ops_backend(backend)
            try:
                outputs[name] = call().float()
                results[name] = cuda_median_ms(call, warmup, repeat)
                results[f"{name}_mb"] = cuda_peak_mb(call)
            except torch.cuda.OutOfMemoryError:
                results[name] = results[f"{name}_mb"] = float("nan")
                outputs.pop(name, None)
                net.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
    finally:
        set_ops_backend(None)
    if "naive" in outputs and "default" in outputs:
        results["max_diff"] = (outputs["default"] - outputs["naive"]).abs().max().item()
    return results


def _cell(res: dict[str, float], name: str) -> str:
    if res[name] != res[name]:  # NaN: out of memory
        return f"{'oom':>16}"
    return f"{res[name]:>8.2f} ({res[f'{name}_mb']:>5.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", help="case names (default: all): " + ", ".join(c.name for c in CASES))
    parser.add_argument("--dtypes", nargs="*", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--modes", nargs="*", choices=["eval", "train"], default=["eval", "train"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 for float32 matmuls and convolutions")
    args = parser.parse_args(argv)
    chosen = select_cases(parser, CASES, args.cases)
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_e2e.py needs a CUDA device: torch.cuda.is_available() is False "
                 "(CPU timings: scripts/bench_cpu.py)")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, tf32 {args.tf32}, "
          f"median of {args.repeat} calls, ms (peak MB)")
    print(f"{'case':<20} {'input':<14} {'dtype':<9} {'mode':<6} {'naive':>16} {'torch':>16} {'default':>16} "
          f"{'naive/def':>9} {'torch/def':>9} {'max|def-naive|':>14}")
    for case in chosen:
        for dtype_name in args.dtypes:
            for mode in args.modes:
                train = mode == "train"
                res = bench(case, DTYPES[dtype_name], train, args.warmup, args.repeat)
                torch.cuda.empty_cache()  # release the network before the next case
                size = "x".join(map(str, case.train_size if train else case.eval_size))
                print(f"{case.name:<20} {size:<14} {dtype_name:<9} {mode:<6} {_cell(res, 'naive')} "
                      f"{_cell(res, 'torch')} {_cell(res, 'default')} {res['naive'] / res['default']:>9.2f} "
                      f"{res['torch'] / res['default']:>9.2f} {res.get('max_diff', float('nan')):>14.3g}", flush=True)


if __name__ == "__main__":
    main()
