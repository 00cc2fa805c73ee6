"""Cost of Real-ESRGAN's on-device degradation (the feed step of the Real-HAT / Real-DRCT recipes).

Times the feed step of the official recipe on one batch of 4 (``batch_size_per_gpu: 4``): USM sharpening of the
400x400 GT crops, the second-order degradation, the paired 256x256 GT crop and the pair pool, with the official
option values and per-sample kernels from ``RealESRGANDataset``'s own kernel draws. Each part is also timed alone and
printed as its share of the feed step (the baseline measured in the same run).

On CUDA it also times one HAT GAN-stage iteration (official HAT x4 generator, ``UNetDiscriminatorSN`` with 64
features, L1 + VGG19 perceptual + GAN losses, both optimiser steps, EMA) on the 64x64 / 256x256 pairs and prints the
share of an iteration spent in degradation: ``feed / (feed + G+D step)`` (target: under 10%). The VGG weights are
random with VGG19's shapes (speed does not depend on their values; nothing is downloaded).

Usage::

    python scripts/bench_degradations.py                     # CPU, float32
    python scripts/bench_degradations.py --device cuda --amp bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restore.data.degradations import DiffJPEG, USMSharp  # noqa: E402
from restore.data.real_esrgan import draw_blur_kernel, draw_sinc_kernel, seeded_global_rngs  # noqa: E402
from restore.models.real_degradation import DegradationSettings, PairPool, degrade, paired_random_crop  # noqa: E402
from restore.models.runner import seed_everything  # noqa: E402
from restore.utils.options import load_options  # noqa: E402

GAN_FILE = ROOT / "options" / "train" / "train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml"
BATCH, CROP = 4, 400


def _time(fn: Callable[[], object], device: torch.device, warmup: int, repeat: int) -> float:
    """Median seconds of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batch(opt: dict, device: torch.device) -> dict[str, torch.Tensor]:
    import skimage.data

    ds = opt["datasets"]["train"]
    img = skimage.data.astronaut().astype(np.float32) / 255  # a real photo, 512 x 512
    gts, k1, k2, sinc = [], [], [], []
    for i in range(BATCH):
        gts.append(torch.from_numpy(img[20 * i : 20 * i + CROP, 30 * i : 30 * i + CROP].transpose(2, 0, 1).copy()))
        with seeded_global_rngs(i):
            first = {k: ds[k] for k in ("kernel_list", "kernel_prob", "sinc_prob", "blur_sigma", "betag_range")}
            k1.append(draw_blur_kernel(**first, betap_range=ds["betap_range"]))
            second = {k[:-1]: ds[k] for k in ("kernel_list2", "kernel_prob2", "sinc_prob2", "blur_sigma2")}
            k2.append(draw_blur_kernel(**second, betag_range=ds["betag_range2"], betap_range=ds["betap_range2"]))
            sinc.append(draw_sinc_kernel(ds["final_sinc_prob"]))
    out = {"gt": torch.stack(gts)}
    for key, kernels in (("kernel1", k1), ("kernel2", k2), ("sinc_kernel", sinc)):
        out[key] = torch.from_numpy(np.stack(kernels).astype(np.float32))
    return {k: v.to(device) for k, v in out.items()}


def _random_vgg19(path: Path) -> Path:
    state, in_ch, index = {}, 3, 0
    for convs, width in zip((2, 2, 4, 4, 4), (64, 128, 256, 512, 512)):
        for _ in range(convs):
            state[f"features.{index}.weight"] = torch.randn(width, in_ch, 3, 3) * (2 / (9 * in_ch)) ** 0.5
            state[f"features.{index}.bias"] = torch.zeros(width)
            in_ch, index = width, index + 2
        index += 1
    torch.save(state, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--amp", default="fp32", choices=("fp32", "bf16"), help="autocast of the G+D step (CUDA)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    opt = load_options(GAN_FILE, is_train=True)
    settings = DegradationSettings.from_options(opt)
    jpeger, usm = DiffJPEG(differentiable=False).to(device), USMSharp().to(device)
    batch = _batch(opt, device)
    seed_everything(0)
    pool = PairPool(settings.queue_size, BATCH)
    kernels = (batch["kernel1"], batch["kernel2"], batch["sinc_kernel"])

    @torch.no_grad()
    def feed() -> None:  # what DegradationFeed does for the GAN stage
        gt_usm = usm(batch["gt"])
        lq = degrade(gt_usm, *kernels, settings, jpeger)
        (gt,), lq = paired_random_crop([batch["gt"]], lq, settings.gt_size, settings.scale)
        lq, gt = pool(lq.contiguous(), gt.contiguous())
        usm(gt)

    parts = {
        "USM of the 400x400 GT": lambda: usm(batch["gt"]),
        "second-order degradation": lambda: degrade(batch["gt"], *kernels, settings, jpeger),
    }
    with torch.no_grad():
        total = _time(feed, device, args.warmup, args.repeat)
        times = {name: _time(fn, device, args.warmup, args.repeat) for name, fn in parts.items()}
    threads = torch.get_num_threads() if device.type == "cpu" else None
    where = f"CPU, {threads} thread(s)" if threads else torch.cuda.get_device_name(device)
    print(f"feed step, batch {BATCH}, {CROP}x{CROP} crops -> {settings.gt_size}x{settings.gt_size} GT ({where}):")
    print(f"  total                          {total * 1000:9.1f} ms  (1.00)")
    for name, seconds in times.items():
        print(f"  {name:<30} {seconds * 1000:9.1f} ms  ({seconds / total:.2f} of the feed step)")
    if device.type != "cuda":
        return 0

    from restore.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        opt["train"]["perceptual_opt"]["vgg_weights"] = str(_random_vgg19(Path(tmp) / "vgg19.pth"))
        opt["high_order_degradation"] = False
        opt["path"]["pretrain_network_g"] = None
        opt["train"]["amp"] = args.amp
        model = build_model(opt, device)
        gen = torch.Generator(device="cpu").manual_seed(0)
        gt = torch.rand(BATCH, 3, settings.gt_size, settings.gt_size, generator=gen)
        paired = {"lq": torch.nn.functional.interpolate(gt, scale_factor=0.25, mode="area").to(device), "gt": gt}
        counter = iter(range(1, 10_000))
        step = _time(lambda: model.train_step([paired], next(counter)), device, args.warmup, args.repeat)
    share = total / (total + step)
    print(f"HAT GAN-stage G+D step ({args.amp}): {step * 1000:.1f} ms; degradation share of an iteration: {share:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
