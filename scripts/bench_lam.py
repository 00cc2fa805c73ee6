"""CPU benchmark: one Local Attribution Map of HAT-S x4 (random weights, eval mode) on a 64x64 LR input.

Rows:

* ``demo``: the official demo's procedure as a baseline: the whole blur path made up front with OpenCV, then one
  path step per forward/backward with ``RESTORE_OPS=naive`` (the official arithmetic) and ``.backward()``, which
  also computes every parameter gradient, as the demo does.
* ``lam batch N``: :func:`restore.analysis.lam` with the default ops backend and ``N`` path steps per pass
  (gradients with respect to the input only).

Every row runs the same ``--fold`` steps on the same input and window (the demo's defaults: window 16, sigma 1.2,
fold 50, l 9), and prints its wall time, the ratio to ``demo`` measured in the same run, and the DI (all rows
must agree on it to float rounding).

Usage:
    python scripts/bench_lam.py                       # fold 50, batches 1 and 5, 2 threads
    python scripts/bench_lam.py --fold 10 --batch 1 2 4 8 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import set_ops_backend

from restore.analysis.lam import blur_kernels, diffusion_index, gini, lam, saliency_map
from restore.archs import build_network
from restore.archs.hat import PRESETS

X, Y, WINDOW, SIGMA, L = 110, 150, 16, 1.2, 9  # the demo's window position and path parameters


def _demo(net: torch.nn.Module, lr: torch.Tensor, fold: int) -> float:
    """The demo's loop; returns the DI."""
    image = lr[0].permute(1, 2, 0).numpy()
    kernels = blur_kernels(SIGMA, fold, L).numpy()
    path = [cv2.filter2D(image, -1, kernels[i + 1]) for i in range(fold)]
    derivs = [cv2.filter2D(image, -1, (kernels[i + 1] - kernels[i]) * fold) for i in range(fold)]
    total = np.zeros(image.shape, np.float32)
    for step, deriv in zip(path, derivs):
        inp = torch.from_numpy(step).permute(2, 0, 1)[None].contiguous().requires_grad_(True)
        out = net(inp)
        gy = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2
        gx = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2
        torch.sqrt(gy[:, :, :, :-1] + gx[:, :, :-1, :])[:, :, Y : Y + WINDOW, X : X + WINDOW].sum().backward()
        grad = torch.nan_to_num(inp.grad[0], nan=0.0).permute(1, 2, 0).numpy()
        total += grad * deriv
    net.zero_grad(set_to_none=True)
    saliency, _ = saliency_map(torch.from_numpy(total / fold).permute(2, 0, 1))
    return diffusion_index(gini(saliency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", type=int, default=50)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="LR side (the window must fit in the x4 output)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_network({"type": "HAT", "upscale": 4, **PRESETS["HAT-S"]}).eval()
    for p in net.parameters():  # trained-like weights are not needed for timing; keep the outputs finite
        p.data.mul_(0.5)
    lr = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    lr = torch.nn.functional.avg_pool2d(lr, 3, 1, 1)  # a little spatial structure
    rows = []
    set_ops_backend("naive")
    start = time.perf_counter()
    di = _demo(net, lr, args.fold)
    rows.append(("demo (naive, batch 1)", time.perf_counter() - start, di))
    set_ops_backend(None)
    for batch in args.batch:
        start = time.perf_counter()
        result = lam(net, lr, X, Y, WINDOW, SIGMA, args.fold, L, batch=batch)
        rows.append((f"lam batch {batch}", time.perf_counter() - start, result.di))
    base = rows[0][1]
    setting = f"LR {args.size}x{args.size}, fold {args.fold}, {args.threads} thread(s)"
    print(f"HAT-S x4, {setting}, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'row':<24}{'seconds':>9}{'s/step':>8}{'ratio':>7}{'DI':>11}")
    for name, seconds, di in rows:
        print(f"{name:<24}{seconds:9.1f}{seconds / args.fold:8.2f}{seconds / base:7.2f}{di:11.4f}")


if __name__ == "__main__":
    main()
