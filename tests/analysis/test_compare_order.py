"""``restore compare`` keeps the methods in the order of the command line, in the figure and in ``index.html``."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from compare_data import make_folders

from restore.commands.compare import main


@pytest.mark.parametrize("order", [("nearest", "linear", "bicubic"), ("linear", "bicubic", "nearest")])
def test_methods_keep_the_command_line_order(order: tuple[str, ...], tmp_path: Path) -> None:
    folders = make_folders(tmp_path)
    out = tmp_path / "figs"
    box = (20, 10, 24, 16)  # x, y, w, h
    args = ["--gt", str(folders["gt"]), *(str(folders[k]) for k in order), "-o", str(out)]
    assert main([*args, "--box", ",".join(map(str, box))]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    section = page.split("<h2>astronaut</h2>")[1].split("</section>")[0]
    rows = re.findall(r'<tr><td data-v="([^"]+)">', section)
    assert rows == list(order)
    # each method's zoomed crop sits further right than the one before it (the GT crop comes first)
    figure = cv2.imread(str(out / "astronaut.png"))
    x, y, w, h = box
    lefts = []
    for name in ("gt", *order):
        files = sorted(folders[name].glob("astronaut*.png"))
        crop = cv2.imread(str(files[0]))[y : y + h, x : x + w]
        zoom = 256 // max(w, h)  # the default 256-px panel, an integer nearest-neighbour zoom
        tile = np.kron(crop, np.ones((zoom, zoom, 1), np.uint8))
        found = cv2.matchTemplate(figure, tile, cv2.TM_SQDIFF)
        top, left = np.unravel_index(np.argmin(found), found.shape)
        assert np.array_equal(figure[top : top + tile.shape[0], left : left + tile.shape[1]], tile), name
        lefts.append(int(left))
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts)
