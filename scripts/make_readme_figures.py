"""Make the two figures README.md shows, from the bundled LR sample and the bundled x4 demo model.

    python scripts/make_readme_figures.py [-o docs/figures] [--fold 50] [--crop 26,16,48] [--window 96,96,16]

* ``compare.png``: ``restore compare`` of bicubic (MATLAB-style ``imresize``) and the demo model against the
  sample's ground truth, scikit-image's ``astronaut.png`` cut as :data:`restore.assets.SAMPLE_ORIGIN` says;
* ``lam.png``: ``restore lam``'s labelled figure of the demo model for one window of a 48 x 48 crop of the sample
  (the face; the whole 112 x 112 sample takes minutes on a CPU).

About a minute on a CPU core (the LAM path has ``--fold`` steps; ``tests/test_readme_figures.py`` runs two).
Needs scikit-image (``.[dev]``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from restore.analysis.compare import Box

ROOT = Path(__file__).resolve().parents[1]


def ground_truth() -> np.ndarray:
    """The sample's HR original as uint8 BGR (H, W, 3)."""
    from skimage import data

    from restore.assets import SAMPLE_ORIGIN

    top, bottom, left, right = SAMPLE_ORIGIN["box"]
    rgb = getattr(data, Path(SAMPLE_ORIGIN["photo"]).stem)()[top:bottom, left:right]
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _small_png(source: Path, target: Path) -> Path:
    """Copy a PNG, re-encoded with the strongest zlib compression (the same pixels, a smaller file)."""
    if not cv2.imwrite(str(target), cv2.imread(str(source)), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"{target}: cannot write the image")
    return target


def compare_png(out: Path, work: Path, panel_size: int = 256) -> tuple[Path, Box, int]:
    """``out``/compare.png: GT, bicubic and the demo model, the box chosen automatically; returns the file, the
    box and the crops' zoom."""
    from restore.analysis.compare import compare_folders
    from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS, SAMPLE_IMAGE
    from restore.data.benchmark import tensor_to_uint8
    from restore.data.imresize import imresize
    from restore.engine import infer
    from restore.engine.loading import load_model, network_options_from_yaml

    folders = {k: work / k for k in ("gt", "bicubic", "demo")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folders["gt"] / "astronaut.png"), ground_truth())
    lr = cv2.imread(str(SAMPLE_IMAGE))
    bicubic = np.clip(np.round(imresize(lr.astype(np.float64) / 255.0, 4) * 255.0), 0, 255).astype(np.uint8)
    cv2.imwrite(str(folders["bicubic"] / "astronaut.png"), bicubic)
    net = load_model(DEFAULT_WEIGHTS, network_options_from_yaml(DEFAULT_OPTIONS)).net
    rgb = torch.from_numpy(cv2.cvtColor(lr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float()[None] / 255.0
    with torch.no_grad():
        sr = tensor_to_uint8(infer(net, rgb)[0])
    cv2.imwrite(str(folders["demo"] / "astronaut.png"), sr)
    result = compare_folders(
        folders["gt"], [folders["bicubic"], folders["demo"]], work / "figs", names=["Bicubic", "DLGSANet demo"],
        y_channel=True, crop_border=4, panel_size=panel_size, log=lambda line: None,
    )  # fmt: skip
    return _small_png(result.figures["astronaut"], out / "compare.png"), result.boxes["astronaut"], result.zoom


def lam_png(out: Path, work: Path, fold: int, crop: tuple[int, int, int], window: tuple[int, int, int]) -> Path:
    """``out``/lam.png: the labelled LAM figure of the demo model on a ``crop = (x, y, side)`` of the LR sample,
    for the ``window = (x, y, size)`` in SR pixels of that crop."""
    from restore.assets import SAMPLE_IMAGE
    from restore.commands.lam import main as lam_main

    x, y, side = crop
    lr = cv2.imread(str(SAMPLE_IMAGE))[y : y + side, x : x + side]
    image = work / "astronaut_lr.png"
    cv2.imwrite(str(image), lr)
    status = lam_main(["-i", str(image), "-o", str(work / "lam"), "--window", ",".join(map(str, window)),
                       "--fold", str(fold), "--names", "demo", "--quiet"])  # fmt: skip
    if status != 0:
        raise SystemExit(f"restore lam failed with status {status}")
    return _small_png(work / "lam" / "astronaut_lr_demo_figure.png", out / "lam.png")


def _triple(text: str) -> tuple[int, int, int]:
    x, y, n = (int(v) for v in text.split(","))
    return x, y, n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures", help="folder for the PNGs")
    parser.add_argument("--fold", type=int, default=50, help="LAM path steps (official 50)")
    parser.add_argument("--crop", type=_triple, default=(26, 16, 48), help="LAM input: x,y,side of the LR sample")
    parser.add_argument("--window", type=_triple, default=(96, 96, 16), help="LAM window x,y,size in SR pixels")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="readme-figures-") as tmp:
        for path in (
            compare_png(args.output, Path(tmp))[0],
            lam_png(args.output, Path(tmp), args.fold, args.crop, args.window),
        ):
            print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
