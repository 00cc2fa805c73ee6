"""Result folders for the comparison tests: two scikit-image photos as GT and three upscaling methods."""

from __future__ import annotations

from pathlib import Path

import cv2
from skimage import data


def make_folders(root: Path, size: tuple[int, int] = (72, 96)) -> dict[str, Path]:
    """GT from two scikit-image photos and three methods named as ``restore test``/``restore infer`` name them."""
    folders = {k: root / k for k in ("gt", "bicubic", "nearest", "linear")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    h, w = size
    for name, rgb in (("astronaut", data.astronaut()), ("coffee", data.coffee())):
        gt = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (w, h), interpolation=cv2.INTER_AREA)
        small = cv2.resize(gt, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folders["gt"] / f"{name}.png"), gt)
        bicubic = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folders["bicubic"] / f"{name}_Bicubic.png"), bicubic)  # restore test style
        cv2.imwrite(
            str(folders["nearest"] / f"{name}_x4.png"),  # restore infer --suffix _x4
            cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST),
        )
        cv2.imwrite(str(folders["linear"] / f"{name}.png"), cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    return folders
