"""GPU benchmark of the shared ops: the Triton kernels vs the naive (official arithmetic) and torch backends.

Every case times the public op with ``backend="naive"``, ``"torch"`` and ``"triton"`` on the same CUDA tensors,
forward only (``fwd``) and forward + backward (``fwd+bwd``, gradients for every differentiable input), in float32
and bfloat16. Each timing is the median of ``--repeat`` CUDA-event-timed calls after ``--warmup`` calls; peak
memory is ``torch.cuda.max_memory_allocated`` above the inputs during one call. Ratios (``naive / triton``,
``torch / triton``) are taken within this run. Each row also reports the largest difference between the triton
and naive outputs. Float32 runs with TF32 disabled unless ``--tf32`` is given (the kernels follow
``torch.backends.cuda.matmul.allow_tf32``).

Sizes are those of the published configurations: HAT / HAT-S / DRCT window attention at window 16 (head dims
30 / 24 / 53 / 122, shifted and not, HAT's overlapping cross-attention with 24-token key windows), DRSformer's
top-k channel attention at its encoder / decoder levels, DLGSANet's ReLU channel attention in TLC windows, and
DLGSANet's dynamic depthwise convolution (K = 7). CUDA only.

Usage:
    python scripts/bench_gpu_ops.py                           # everything
    python scripts/bench_gpu_ops.py --ops window_attention --dtypes bfloat16 --modes fwd
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import cuda_median_ms, cuda_peak_mb

BACKENDS = ("naive", "torch", "triton")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


#: ``run(backend, backward) -> output``: one call of the op (and of its backward when asked) on fixed inputs.
Runner = Callable[[str, bool], torch.Tensor]


@dataclass(frozen=True)
class Case:
    op: str
    name: str
    make: Callable[[torch.dtype], Runner]


def _leaf(t: torch.Tensor, grad: bool) -> torch.Tensor:
    return t.detach().requires_grad_(grad)


def _finish(out: torch.Tensor, backward: bool) -> torch.Tensor:
    if backward:
        out.backward(torch.ones_like(out))
    return out


# ----------------------------------------------------------------------------------------------------------- cases


def _window_case(batch: int, size: int, heads: int, head_dim: int, shift: int, overlap: bool) -> Callable:
    def make(dtype: torch.dtype) -> Runner:
        from restore.ops.window_attention import (
            overlap_window_size,
            overlapping_relative_position_index,
            overlapping_window_attention,
            relative_position_index,
            window_attention,
        )

        ws, channels = 16, heads * head_dim
        qkv = torch.randn(batch, size, size, 3 * channels, device="cuda", dtype=dtype)
        if overlap:
            ows = overlap_window_size(ws, 0.5)
            table = (torch.randn((ws + ows - 1) ** 2, heads, device="cuda") * 0.5).to(dtype)
            static = {"num_heads": heads, "window_size": ws, "overlap_window_size": ows,
                      "rp_index": overlapping_relative_position_index(ws, ows).cuda(), "scale": head_dim**-0.5}
            op = overlapping_window_attention
        else:
            table = (torch.randn((2 * ws - 1) ** 2, heads, device="cuda") * 0.5).to(dtype)
            static = {"num_heads": heads, "window_size": ws, "shift_size": shift,
                      "rp_index": relative_position_index(ws).cuda(), "scale": head_dim**-0.5}
            op = window_attention

        def run(backend: str, backward: bool) -> torch.Tensor:
            q, k, v = _leaf(qkv, backward).chunk(3, dim=-1)  # strided views, as the networks pass them
            return _finish(op(q, k, v, rpb_table=_leaf(table, backward), backend=backend, **static), backward)

        return run

    return make


def _channel_case(batch: int, heads: int, channels: int, length: int, mode: str) -> Callable:
    def make(dtype: torch.dtype) -> Runner:
        from restore.ops.sparse_channel_attention import sparse_channel_attention

        q, k, v = (torch.randn(batch, heads, channels, length, device="cuda", dtype=dtype) for _ in range(3))
        # parameters in the compute dtype, as in a network cast with .to(dtype)
        temperature = (torch.rand(heads, 1, 1, device="cuda") + 0.5).to(dtype)
        weights = torch.full((4,), 0.2, device="cuda", dtype=dtype) if mode == "topk" else None

        def run(backend: str, backward: bool) -> torch.Tensor:
            out = sparse_channel_attention(
                _leaf(q, backward), _leaf(k, backward), _leaf(v, backward), _leaf(temperature, backward),
                mode=mode, topk_weights=None if weights is None else _leaf(weights, backward), backend=backend,
            )
            return _finish(out, backward)

        return run

    return make


def _dynconv_case(batch: int, channels: int, groups: int, size: int, kernel: int) -> Callable:
    def make(dtype: torch.dtype) -> Runner:
        from restore.ops.dynamic_conv import dynamic_depthwise_conv

        x = torch.randn(batch, channels, size, size, device="cuda", dtype=dtype)
        weight = torch.randn(batch, groups, kernel, kernel, size, size, device="cuda", dtype=dtype) / kernel

        def run(backend: str, backward: bool) -> torch.Tensor:
            out = dynamic_depthwise_conv(_leaf(x, backward), _leaf(weight, backward), backend=backend)
            return _finish(out, backward)

        return run

    return make


CASES: list[Case] = [
    # HAT training patch (64 x 64 tokens, batch 4) and a 256 x 256 inference map
    Case("window_attention", "HAT d30 shift8 4x64x64", _window_case(4, 64, 6, 30, 8, False)),
    Case("window_attention", "HAT d30 shift0 1x256x256", _window_case(1, 256, 6, 30, 0, False)),
    Case("window_attention", "HAT-S d24 shift8 4x64x64", _window_case(4, 64, 6, 24, 8, False)),
    Case("window_attention", "DRCT d53 shift8 4x64x64", _window_case(4, 64, 4, 53, 8, False)),
    Case("window_attention", "DRCT d122 shift0 4x64x64", _window_case(4, 64, 2, 122, 0, False)),
    Case("window_attention", "HAT OCAB d30 ows24 4x64x64", _window_case(4, 64, 6, 30, 0, True)),
    Case("window_attention", "HAT OCAB d30 ows24 1x256x256", _window_case(1, 256, 6, 30, 0, True)),
    # DRSformer (dim 48, heads 1/2/4/8) on a 128 x 128 patch: level 1, decoder level 1 (C = 96), level 4
    Case("sparse_channel_attention", "DRSformer L1 topk C48 2x1x128^2", _channel_case(2, 1, 48, 128 * 128, "topk")),
    Case("sparse_channel_attention", "DRSformer D1 topk C96 2x1x128^2", _channel_case(2, 1, 96, 128 * 128, "topk")),
    Case("sparse_channel_attention", "DRSformer L4 topk C48 2x8x16^2", _channel_case(2, 8, 48, 16 * 16, "topk")),
    # DLGSANet large (dim 90, 6 heads -> C = 15) in 48 x 48 TLC windows, 16 windows
    Case("sparse_channel_attention", "DLGSANet relu C15 16x6x48^2", _channel_case(16, 6, 15, 48 * 48, "relu")),
    Case("sparse_channel_attention", "Restormer softmax C48 2x1x128^2", _channel_case(2, 1, 48, 128 * 128, "softmax")),
    # DLGSANet light (dim 48, G = 8) and large (dim 90, G = 15), K = 7, training patches 48 x 48, batch 16
    Case("dynamic_conv", "DLGSANet light C48 G8 16x48^2", _dynconv_case(16, 48, 8, 48, 7)),
    Case("dynamic_conv", "DLGSANet large C90 G15 16x48^2", _dynconv_case(16, 90, 15, 48, 7)),
    Case("dynamic_conv", "DLGSANet large C90 G15 1x256^2", _dynconv_case(1, 90, 15, 256, 7)),
]


def bench(case: Case, dtype: torch.dtype, backward: bool, warmup: int, repeat: int) -> dict[str, float]:
    torch.manual_seed(0)
    run = case.make(dtype)
    results: dict[str, float] = {}
    outputs = {}
    for backend in BACKENDS:
        def call(b: str = backend) -> torch.Tensor:
            with torch.enable_grad() if backward else torch.no_grad():
                return run(b, backward)

        try:
            outputs[backend] = call().detach().float()
            results[backend] = cuda_median_ms(call, warmup, repeat)
            results[f"{backend}_mb"] = cuda_peak_mb(call)
        except torch.cuda.OutOfMemoryError:
            results[backend] = results[f"{backend}_mb"] = float("nan")
            torch.cuda.empty_cache()
    if "naive" in outputs and "triton" in outputs:
        results["max_diff"] = (outputs["triton"] - outputs["naive"]).abs().max().item()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", nargs="*", choices=sorted({c.op for c in CASES}), help="ops to run (default: all)")
    parser.add_argument("--dtypes", nargs="*", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--modes", nargs="*", choices=["fwd", "fwd+bwd"], default=["fwd", "fwd+bwd"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 for float32 products (torch and triton)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_ops.py needs a CUDA device: torch.cuda.is_available() is False "
                 "(CPU timings: scripts/bench_cpu.py)")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, tf32 {args.tf32}, "
          f"median of {args.repeat} calls, ms (peak MB above inputs)")
    print(f"{'op / case':<44} {'dtype':<9} {'mode':<8} {'naive':>16} {'torch':>16} {'triton':>16} "
          f"{'naive/tri':>9} {'torch/tri':>9} {'max|tri-naive|':>14}")
    for case in CASES:
        if args.ops and case.op not in args.ops:
            continue
        for dtype_name in args.dtypes:
            for mode in args.modes:
                res = bench(case, DTYPES[dtype_name], mode == "fwd+bwd", args.warmup, args.repeat)
                cells = " ".join(f"{res[b]:>7.3f} ({res[f'{b}_mb']:>6.0f})" for b in BACKENDS)
                print(f"{case.op[:18] + ' ' + case.name:<44} {dtype_name:<9} {mode:<8} {cells} "
                      f"{res['naive'] / res['triton']:>9.2f} {res['torch'] / res['triton']:>9.2f} "
                      f"{res.get('max_diff', float('nan')):>14.3g}", flush=True)


if __name__ == "__main__":
    main()
