"""LAM pictures: the window outline leaves the map visible, the stretched view, one font size, the model figure."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from restore.analysis import lam_figures as fig
from restore.analysis.lam_figures import SEISMIC_LUT, WINDOW_COLOUR, draw_box, heat_map


def test_window_outline_is_outside_and_not_a_heat_colour() -> None:
    rng = np.random.default_rng(0)
    img = heat_map(rng.random((40, 50)).astype(np.float32))
    out = draw_box(img, (10, 12, 8, 6), thickness=1)
    assert np.array_equal(out[12:18, 10:18], img[12:18, 10:18])  # the marked pixels stay visible
    ring = np.zeros((40, 50), bool)
    ring[11:19, 9:19] = True
    ring[12:18, 10:18] = False
    assert (out[ring] == WINDOW_COLOUR).all() and np.array_equal(out[~ring], img[~ring])
    lut = (255 * SEISMIC_LUT).astype(np.int64)
    distance = np.abs(lut - np.array(WINDOW_COLOUR)).sum(axis=1).min()
    assert distance > 150  # far from every colour of the scale


def test_stretched_view_shows_a_small_receptive_field() -> None:
    saliency = np.zeros((32, 32), np.float32)
    saliency[16, 16] = 1.0
    saliency[14:19, 14:19] += 0.01  # a faint neighbourhood that S / max S leaves white
    official = heat_map(saliency)
    stretched = fig.stretched_heat_map(saliency)
    coloured = lambda img: int((np.abs(img.astype(int) - 255).sum(axis=2) > 30).sum())  # noqa: E731
    assert coloured(official) == 1 and coloured(stretched) == 25
    assert tuple(stretched[16, 16]) == tuple(heat_map(np.ones((1, 1), np.float32))[0, 0])  # the peak: darkest red


def test_one_font_size_and_shortened_names() -> None:
    ref = np.zeros((64, 64, 3), np.uint8)
    short = fig.compare_figure(ref, [("A", ref, 12.3), ("B", ref, 4.5)])
    long = fig.compare_figure(ref, [("A", ref, 12.3), ("a model with a very long name", ref, 4.5)])
    assert short.shape == long.shape  # the long name is shortened, not drawn smaller (same strip height)
    assert fig.fit_text("a model with a very long name", 64, 0.35).endswith("..")
    assert fig.fit_text("HAT", 64, 0.35) == "HAT"


def test_model_figure_layout() -> None:
    tiles = [np.full((48, 48, 3), v, np.uint8) for v in (10, 60, 110, 160)]
    figure = fig.model_figure(*tiles, name="HAT", di=12.5)
    assert figure.shape[1] == 4 * 48 + 3 * 4
    for i, value in enumerate((10, 60, 110, 160)):
        assert (figure[:48, i * 52 : i * 52 + 48] == value).all()  # input, official map, stretched map, blend
    assert figure.shape[0] > 48 + 2 * 10  # a label under each tile, then the caption


def test_cli_writes_the_single_model_figure(tmp_path: Path) -> None:
    from restore.cli import main

    rgb = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    image = tmp_path / "lr.png"
    cv2.imwrite(str(image), rgb)
    out = tmp_path / "out"
    assert main(["lam", "-i", str(image), "-o", str(out), "--window", "32,40,16", "--fold", "2", "--quiet"]) == 0
    report = json.loads((out / "lr_lam.json").read_text())
    (model,) = report["models"]
    figure = cv2.imread(str(out / model["files"]["figure"]))
    assert figure.shape[1] == 4 * 96 + 3 * 4  # 24 px enlarged by the scale 4
    stretched = cv2.imread(str(out / model["files"]["stretched"]))
    official = cv2.imread(str(out / model["files"]["lam"]))
    assert stretched.shape == official.shape == (96, 96, 3)
    green = (figure[..., 1] == 200) & (figure[..., 0] == 0) & (figure[..., 2] == 0)
    assert green[:96, :96].sum() == 4 * 16 + 4  # a 1-px frame around the 16 x 16 window of the input tile
