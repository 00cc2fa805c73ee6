"""CPU bfloat16: what ``--precision bf16`` costs in accuracy, per family (its speed: ``bench_cpu.py --variants bf16``).

* Parity fixtures (``tests/fixtures/parity``, the official code's weights and inputs for every family): PSNR of the
  bf16-autocast output against the float32 output of the same network (dB, peak 1; higher = closer) and the
  largest absolute difference, both through the engine's untiled path (``restore.engine.infer``).
* Bundled sample (``restore/assets/samples``, the bundled x4 DLGSANet): x4 PSNR-Y (crop 4) against the held-out
  ground truth (scikit-image's astronaut photo) in float32 and in bf16, and the PSNR between the two outputs.

Usage:
    python scripts/bench_bf16.py [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restore.archs import build_network  # noqa: E402
from restore.engine import infer  # noqa: E402

PARITY = ROOT / "tests" / "fixtures" / "parity"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.clamp(0, 1) - b.clamp(0, 1)).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _network_g(fixture: dict) -> dict:
    kwargs = dict(fixture["kwargs"])
    if fixture["arch"] == "DRSformer":
        kwargs["mefc"] = fixture["variant"] == "mefc"
    return {"type": fixture["arch"], **kwargs}


def fixtures() -> None:
    print(f"{'fixture':<34} {'arch':<10} {'PSNR bf16 vs fp32':>18} {'max diff':>9}")
    for path in sorted(PARITY.glob("*_arch.pt")):
        fixture = torch.load(path, weights_only=True)
        net = build_network(_network_g(fixture))
        net.load_state_dict(fixture["state_dict"])
        lq = fixture["input"]
        fp32 = infer(net.eval(), lq, clamp=False)
        bf16 = infer(net, lq, clamp=False, precision="bf16")
        diff = float((fp32 - bf16).abs().max())
        print(f"{path.stem:<34} {fixture['arch']:<10} {_psnr(bf16, fp32):>18.2f} {diff:>9.1e}", flush=True)


def sample() -> None:
    import numpy as np

    from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS, SAMPLE_IMAGE, SAMPLE_ORIGIN
    from restore.data.image_io import read_image
    from restore.data.imresize import round_to_uint8
    from restore.engine.loading import load_model, network_options_from_yaml
    from restore.metrics import calculate_psnr

    net = load_model(DEFAULT_WEIGHTS, network_options_from_yaml(DEFAULT_OPTIONS)).net.eval()
    rgb = torch.from_numpy(np.ascontiguousarray(read_image(SAMPLE_IMAGE).rgb)).permute(2, 0, 1)[None]
    outs = {p: infer(net, rgb, precision=p) for p in ("fp32", "bf16")}
    line = f"bundled sample ({SAMPLE_IMAGE.name}, DLGSANet demo x4): PSNR bf16 vs fp32 output "
    line += f"{_psnr(outs['bf16'], outs['fp32']):.2f} dB"
    try:
        import cv2
        import skimage

        top, bottom, left, right = SAMPLE_ORIGIN["box"]
        gt = cv2.imread(str(Path(skimage.__file__).parent / "data" / SAMPLE_ORIGIN["photo"]))[top:bottom, left:right]
        scores = {}
        for p, out in outs.items():
            sr = round_to_uint8(out[0].permute(1, 2, 0).numpy()[..., ::-1])
            scores[p] = calculate_psnr(sr[: gt.shape[0], : gt.shape[1]], gt, crop_border=4, test_y_channel=True)
        line += f"; x4 PSNR-Y vs ground truth fp32 {scores['fp32']:.2f} dB, bf16 {scores['bf16']:.2f} dB"
    except ImportError:
        line += "; (scikit-image not installed: no ground truth)"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load {os.getloadavg()[0]:.2f}")
    fixtures()
    sample()


if __name__ == "__main__":
    main()
