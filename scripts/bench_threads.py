"""CPU thread pools on a small or busy machine: library defaults against ``restore.utils.threads`` defaults.

Two workloads, each in a fresh process per run (thread pools are sized once per process), before/after runs
alternating so that both see the same background load; the 1-minute load average is printed with every run:

* ``train``: 6 iterations of a tiny HAT (x2, 16-pixel GT crops, batch 2) on crops of a real photo;
* ``upscale``: two 160x160 upscales with the bundled x4 demo model.

``before`` = torch's and OpenCV's own defaults (one thread per core each); ``after`` = ``set_threads()`` (what
every ``restore`` command now does); ``opencv1`` = the defaults except one OpenCV thread (tells which pool matters).
Usage::

    python scripts/bench_threads.py [--repeats 2] [--workloads train upscale] [--modes before after opencv1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {root!r})
mode, workload = sys.argv[1], sys.argv[2]
import torch
if mode == "after":
    from restore.utils.threads import set_threads
    set_threads()
elif mode == "opencv1":
    import cv2
    cv2.setNumThreads(1)
threads = torch.get_num_threads()
if workload == "upscale":
    from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS
    from restore.engine import infer
    from restore.engine.loading import load_model, network_options_from_yaml
    net = load_model(DEFAULT_WEIGHTS, network_options_from_yaml(DEFAULT_OPTIONS)).net
    lq = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(2):
        infer(net, lq)
else:
    import logging
    import cv2, numpy as np, skimage.data
    from restore.data.imresize import imresize, round_to_uint8
    from restore.models import dist
    from restore.models.runner import train
    from restore.utils.options import validate_options
    tmp = Path(tempfile.mkdtemp())
    photo = skimage.data.astronaut()
    for i in range(6):
        gt = photo[29 * i : 29 * i + 24, 41 * i + 7 : 41 * i + 31]
        lq = round_to_uint8(imresize(gt.astype(np.float64) / 255, 0.5))
        for sub, img in (("gt", gt), ("lq", lq)):
            (tmp / sub).mkdir(exist_ok=True)
            cv2.imwrite(str(tmp / sub / f"{{i}}.png"), np.ascontiguousarray(img[..., ::-1]))
    net = dict(type="HAT", upscale=2, img_size=8, window_size=4, compress_ratio=2, squeeze_factor=4, depths=[1],
               embed_dim=8, num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle")
    opt = validate_options(dict(
        name="bench", scale=2, num_gpu=0, manual_seed=7, network_g=net,
        datasets=dict(train=dict(name="t", type="PairedImageDataset", dataroot_gt=str(tmp / "gt"),
                                 dataroot_lq=str(tmp / "lq"), gt_size=16, use_hflip=True, use_rot=True,
                                 num_worker_per_gpu=0, batch_size_per_gpu=2, phase="train", scale=2)),
        path=dict(experiments_root=str(tmp / "exp"), models=str(tmp / "exp/models"),
                  training_states=str(tmp / "exp/states"), log=str(tmp / "exp"), visualization=str(tmp / "v")),
        train=dict(total_iter=6, optim_g=dict(type="Adam", lr=2e-4), pixel_opt=dict(type="L1Loss", loss_weight=1.0),
                   scheduler=dict(type="MultiStepLR", milestones=[100], gamma=0.5)),
        logger=dict(print_freq=100, save_checkpoint_freq=1000),
    ), check_network=False)
    opt["is_train"] = True
    logging.disable(logging.CRITICAL)
    start = time.perf_counter()
    train(opt, dist.init_distributed("none"))
print(f"{{time.perf_counter() - start:.3f}} {{threads}}")
"""


def _load() -> float:
    return os.getloadavg()[0]


def _run(mode: str, workload: str) -> tuple[float, int, float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RESTORE_THREADS")}
    before = _load()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT)), mode, workload],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    seconds, threads = done.stdout.split()[-2:]
    return float(seconds), int(threads), before, _load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workloads", nargs="+", default=["train", "upscale"], choices=["train", "upscale"])
    parser.add_argument("--modes", nargs="+", default=["before", "after"], choices=["before", "after", "opencv1"])
    args = parser.parse_args()
    print(f"usable cores: {len(os.sched_getaffinity(0))}; started {time.strftime('%H:%M:%S')}")
    for workload in args.workloads:
        times: dict[str, list[float]] = {mode: [] for mode in args.modes}
        for _ in range(args.repeats):
            for mode in args.modes:
                seconds, threads, load_in, load_out = _run(mode, workload)
                times[mode].append(seconds)
                print(
                    f"{workload:8s} {mode:6s} threads={threads} {seconds:7.2f} s   load {load_in:.2f} -> {load_out:.2f}"
                )
        base = statistics.median(times[args.modes[0]])
        for mode in args.modes[1:]:
            print(f"{workload:8s} median {args.modes[0]}/{mode}: {base / statistics.median(times[mode]):.2f}x")


if __name__ == "__main__":
    main()
