"""Reproduce the bundled default model (restore/assets/weights/DLGSANet_demo_SRx4.*) and the bundled sample.

    python scripts/train_demo_model.py [--work DIR] [--threads 1] [--skip-train] [--force_yml KEY=VALUE ...]

1. gathers scikit-image's sample photos into a work folder (a temporary one unless ``--work``): the training
   photos cut into 160 px tiles (flat tiles dropped) and the held-out ``astronaut.png`` for validation;
2. trains ``options/train/demo_DLGSANet_SRx4.yml`` with ``restore/train.py`` on the CPU (``--threads``,
   default 1; about 20 minutes on one core);
3. exports ``params_ema`` of the last iteration to ``restore/assets/weights/DLGSANet_demo_SRx4.safetensors`` and
   its ``network_g`` to ``DLGSANet_demo_SRx4.yml`` beside it, writes the sample image
   (``restore.assets.SAMPLE_ORIGIN``) and prints x4 PSNR-Y of the model and of bicubic on the held-out photos.

``--skip-train`` re-exports from an existing ``--work`` folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS, SAMPLE_IMAGE, SAMPLE_ORIGIN  # noqa: E402
from restore.checkpoint import load_state_dict, save_checkpoint  # noqa: E402
from restore.data.datasets import bicubic_lq  # noqa: E402
from restore.data.imresize import imresize, round_to_uint8  # noqa: E402

OPTIONS = ROOT / "options" / "train" / "demo_DLGSANet_SRx4.yml"
#: Training photos of skimage/data (natural photos and textures; synthetic images, the motion-blurred clock and
#: the mostly black retina left out). astronaut.png and camera.png are held out.
TRAIN_PHOTOS = (
    "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
    "hubble_deep_field.jpg", "ihc.png", "brick.png", "grass.png", "gravel.png", "moon.png", "coins.png",
    "page.png", "text.png", "cell.png",
)  # fmt: skip
HELD_OUT = ("astronaut.png", "camera.png")
VALIDATION_PHOTO = "astronaut.png"
TILE = 160
FLAT_STD = 8.0  # tiles whose pixel standard deviation (0..255) is below this are dropped: nothing to learn there
SCALE = 4


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def read_photo(name: str) -> np.ndarray:
    """``skimage/data/<name>`` as uint8 (H, W) or (H, W, 3) BGR."""
    path = skimage_data_dir() / name
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"{path}: cannot read the scikit-image sample photo")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return img


def _starts(length: int, tile: int) -> list[int]:
    starts = list(range(0, max(length - tile, 0) + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tiles(img: np.ndarray, tile: int = TILE) -> list[np.ndarray]:
    """Non-overlapping ``tile`` x ``tile`` crops (the last row/column aligned to the border); smaller sides kept."""
    height, width = img.shape[:2]
    return [img[y : y + tile, x : x + tile] for y in _starts(height, tile) for x in _starts(width, tile)]


def gather(work: Path) -> tuple[Path, Path]:
    """Write the training tiles to ``work/train`` and the validation photo to ``work/val``; returns both."""
    train, val = work / "train", work / "val"
    train.mkdir(parents=True, exist_ok=True)
    val.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in TRAIN_PHOTOS:
        for index, crop in enumerate(tiles(read_photo(name))):
            if float(crop.std()) < FLAT_STD:
                continue
            cv2.imwrite(str(train / f"{Path(name).stem}_{index:03d}.png"), crop)
            count += 1
    cv2.imwrite(str(val / f"{Path(VALIDATION_PHOTO).stem}.png"), read_photo(VALIDATION_PHOTO))
    print(f"{count} training tiles from {len(TRAIN_PHOTOS)} photos in {train}; validation: {VALIDATION_PHOTO}")
    return train, val


def experiments_root(work: Path) -> Path:
    return work / "experiments" / yaml.safe_load(OPTIONS.read_text())["name"]


def train(work: Path, threads: int, force_yml: list[str]) -> None:
    overrides = [
        f"datasets:train:dataroot_gt={work / 'train'}",
        f"datasets:val:dataroot_gt={work / 'val'}",
        f"path:experiments_root={experiments_root(work)}",
        *force_yml,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, str(ROOT / "restore" / "train.py"), "-opt", str(OPTIONS), "--force_yml", *overrides]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def export(work: Path) -> None:
    """Last iteration's ``params_ema`` -> DEFAULT_WEIGHTS (safetensors) and its ``network_g`` -> DEFAULT_OPTIONS."""
    latest = experiments_root(work) / "models" / "net_g_latest.pth"
    state = load_state_dict(latest, "params_ema")
    save_checkpoint(DEFAULT_WEIGHTS, state)
    network_g = yaml.safe_load(OPTIONS.read_text())["network_g"]
    header = (
        "# network_g of DLGSANet_demo_SRx4.safetensors (the bundled default model). Reproduce both files with\n"
        "#   python scripts/train_demo_model.py   (options/train/demo_DLGSANet_SRx4.yml)\n"
    )
    DEFAULT_OPTIONS.write_text(header + yaml.safe_dump({"network_g": network_g}, sort_keys=False))
    print(f"wrote {DEFAULT_WEIGHTS} ({DEFAULT_WEIGHTS.stat().st_size:,} bytes) and {DEFAULT_OPTIONS}")


def make_sample() -> None:
    """The bundled sample: a held-out crop of astronaut.png, MATLAB-bicubic downscaled x4, 8-bit PNG."""
    top, bottom, left, right = SAMPLE_ORIGIN["box"]
    crop = read_photo(SAMPLE_ORIGIN["photo"])[top:bottom, left:right]
    lr = round_to_uint8(bicubic_lq(crop.astype(np.float32) / 255.0, SAMPLE_ORIGIN["scale"]))
    SAMPLE_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(SAMPLE_IMAGE), lr)
    print(f"wrote {SAMPLE_IMAGE} ({lr.shape[1]}x{lr.shape[0]}, {SAMPLE_IMAGE.stat().st_size:,} bytes)")


def psnr_table() -> None:
    """x4 PSNR on the Y channel (crop 4) of the bundled model and of bicubic on the held-out photos."""
    from restore.engine import infer
    from restore.engine.loading import load_model, network_options_from_yaml
    from restore.metrics import calculate_psnr

    net = load_model(DEFAULT_WEIGHTS, network_options_from_yaml(DEFAULT_OPTIONS)).net
    top, bottom, left, right = SAMPLE_ORIGIN["box"]
    cases = {name: (name, None) for name in HELD_OUT}
    cases["astronaut sample crop"] = (SAMPLE_ORIGIN["photo"], (slice(top, bottom), slice(left, right)))
    print(f"{'held-out image':24s} {'bicubic':>8s} {'model':>8s}  (x4 PSNR-Y dB, crop 4)")
    for label, (name, box) in cases.items():
        gt = read_photo(name)
        gt = gt if box is None else gt[box]
        gt = np.repeat(gt[..., None], 3, axis=2) if gt.ndim == 2 else gt
        gt = gt[: gt.shape[0] // SCALE * SCALE, : gt.shape[1] // SCALE * SCALE]
        lr = bicubic_lq(gt.astype(np.float32) / 255.0, SCALE)  # as in training: [0, 1], 8-bit values
        bicubic = round_to_uint8(imresize(lr, SCALE))
        rgb = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1])).permute(2, 0, 1)[None]
        sr = round_to_uint8(infer(net, rgb)[0].permute(1, 2, 0).numpy()[..., ::-1])
        scores = [calculate_psnr(img, gt, crop_border=4, test_y_channel=True) for img in (bicubic, sr)]
        print(f"{label:24s} {scores[0]:8.2f} {scores[1]:8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary folder, removed afterwards)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for training (default 1)")
    parser.add_argument("--skip-train", action="store_true", help="export from an existing --work run")
    parser.add_argument("--force_yml", nargs="+", default=[], help="extra restore/train.py --force_yml overrides")
    args = parser.parse_args(argv)
    if args.skip_train and args.work is None:
        parser.error("--skip-train needs --work (the folder of an earlier run)")
    with tempfile.TemporaryDirectory(prefix="restore_demo_") as tmp:
        work = (args.work or Path(tmp)).resolve()
        if not args.skip_train:
            gather(work)
            train(work, args.threads, args.force_yml)
        export(work)
    make_sample()
    psnr_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
