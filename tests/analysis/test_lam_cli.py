"""``restore lam``: the files it writes, their agreement with the Python API, and one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import torch
from lam_helpers import parity_network
from torch_threads import one_thread_fixture

from restore.analysis import lam
from restore.checkpoint import save_checkpoint
from restore.cli import main

one_thread = one_thread_fixture()


@pytest.fixture(scope="module")
def setup(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("lam_cli")
    weights = {}
    for name in ("hat_tiny_x4_arch", "drct_tiny_x4_arch"):
        weights[name] = root / f"{name}.pth"
        save_checkpoint(weights[name], parity_network(fixtures, f"{name}.pt"))
    rgb = skimage.data.astronaut()[200:216, 180:196]  # 16 x 16 LR
    image = root / "lr.png"
    cv2.imwrite(str(image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return {"root": root, "weights": weights, "image": image, "rgb": rgb}


def _run(setup: dict, out: Path, *extra: str) -> int:
    hat = str(setup["weights"]["hat_tiny_x4_arch"])
    return main(["lam", "--weights", hat, "-i", str(setup["image"]), "-o", str(out), "--fold", "2", "--quiet", *extra])


def test_writes_maps_boxes_and_json_matching_the_api(setup: dict, fixtures: Path, tmp_path: Path) -> None:
    drct = str(setup["weights"]["drct_tiny_x4_arch"])
    assert _run(setup, tmp_path, "--window", "16,24,16", "--compare", drct, "--names", "HAT", "DRCT") == 0
    report = json.loads((tmp_path / "lr_lam.json").read_text())
    assert report["window"]["box_xywh"] == [16, 24, 16, 16] and report["scale"] == 4
    assert (report["sigma"], report["fold"], report["l"], report["batch"]) == (1.2, 2, 9, 1)
    assert [m["name"] for m in report["models"]] == ["HAT", "DRCT"]
    lr = torch.from_numpy(setup["rgb"]).permute(2, 0, 1).float() / 255
    for model, fixture in zip(report["models"], ("hat_tiny_x4_arch.pt", "drct_tiny_x4_arch.pt")):
        expected = lam(parity_network(fixtures, fixture), lr, 16, 24, 16, fold=2)
        assert model["di"] == pytest.approx(expected.di, abs=1e-6)
        heat = cv2.imread(str(tmp_path / model["files"]["lam"]))
        assert heat.shape == (64, 64, 3)  # the 16 x 16 map enlarged by the scale
        sr = cv2.imread(str(tmp_path / model["files"]["sr"]))
        assert tuple(sr[23, 20]) == (0, 200, 0)  # green outline just above the window (BGR)
        for key in ("blend", "kde"):
            assert cv2.imread(str(tmp_path / model["files"][key])).shape == (64, 64, 3)
    figure = cv2.imread(str(tmp_path / report["compare_figure"]))
    assert figure.shape[1] == 3 * 64 + 2 * 4 and figure.shape[0] > 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window", "2,4"], "multiples of the scale 4"),
        (["--window", "60,0"], "must lie inside the image (with size 16: x in 0..48, y in 0..48)"),
        (["--window", "64,0,8"], "must lie inside the image (with size 8: x in 0..56, y in 0..56)"),
        (["--window", "0,0", "--batch", "0"], "--batch"),
    ],
)
def test_bad_windows_exit_2_with_one_line(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    assert _run(setup, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[-1].startswith("restore lam: error:") and message in err[-1]
    assert not (tmp_path / "out").exists()


def test_malformed_window_is_a_usage_error(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        _run(setup, tmp_path, "--window", "a,b")
    assert stopped.value.code == 2
    assert "--window: expected x,y or x,y,size" in capsys.readouterr().err


def test_loose_window_accepts_what_the_official_demo_accepts(setup: dict, tmp_path: Path, capsys) -> None:
    assert _run(setup, tmp_path, "--window", "58,2,12", "--loose-window") == 0
    report = json.loads((tmp_path / "lr_lam.json").read_text())
    assert report["window"]["box_xywh"] == [58, 2, 5, 12]  # cut at the 63-wide gradient map
    assert "cut to 5x12" in capsys.readouterr().err


def test_image_too_small_and_missing_image(setup: dict, tmp_path: Path, capsys) -> None:
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((6, 16, 3), np.uint8))
    hat = str(setup["weights"]["hat_tiny_x4_arch"])

    def run(weights: str, image: Path) -> int:
        return main(["lam", "--weights", weights, "-i", str(image), "-o", str(tmp_path), "--window", "0,0"])

    assert run(hat, small) == 2
    assert "too small for HAT" in capsys.readouterr().err
    assert run(hat, tmp_path / "none.png") == 2
    err = capsys.readouterr().err.strip()
    assert "none.png" in err and len(err.splitlines()) == 1
    assert run(str(tmp_path / "no.pth"), small) == 2
    assert "no.pth" in capsys.readouterr().err
