"""``scripts/make_readme_figures.py`` on a tiny LAM input: both README figures are written and hold what they say."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_readme_figures_script(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_readme_figures", ROOT / "scripts" / "make_readme_figures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["-o", str(tmp_path), "--fold", "2", "--crop", "40,24,24", "--window", "32,32,16"]) == 0
    lam = cv2.imread(str(tmp_path / "lam.png"))
    assert lam is not None and lam.shape[1] == 4 * 96 + 3 * 4  # input, official map, stretched map, blend
    path, box, zoom = script.compare_png(tmp_path, tmp_path / "work")
    compare = cv2.imread(str(path))
    assert zoom == 5 and (box.w, box.h) == (51, 51)  # a 448 x 448 GT: 448 / 8 = 56 -> 51 px shown 5x in 256 px
    expected = np.kron(box.crop(script.ground_truth()), np.ones((zoom, zoom, 1), np.uint8))
    found = cv2.matchTemplate(compare, expected, cv2.TM_SQDIFF)
    y, x = np.unravel_index(np.argmin(found), found.shape)
    assert np.array_equal(compare[y : y + 255, x : x + 255], expected)  # the GT crop, enlarged nearest-neighbour
    for name in ("compare.png", "lam.png"):  # what README.md shows is what the script writes
        assert (ROOT / "docs" / "figures" / name).is_file()
        assert f"docs/figures/{name}" in (ROOT / "README.md").read_text(encoding="utf-8")
