"""The bundled default model and sample: they load, are recognised, run from the command line without
``--weights``, and upscale held-out photos better than bicubic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import torch

from restore.archs import build_network, detect
from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS, SAMPLE_IMAGE, SAMPLE_ORIGIN, SAMPLES_DIR
from restore.checkpoint import load_network, load_state_dict
from restore.cli import main
from restore.data.datasets import bicubic_lq
from restore.data.imresize import imresize, round_to_uint8
from restore.engine import infer
from restore.engine.loading import network_options_from_yaml
from restore.metrics import calculate_psnr

REPO_ROOT = Path(__file__).resolve().parents[2]
SCALE = SAMPLE_ORIGIN["scale"]
#: The x4 gain over bicubic (PSNR-Y, dB) a trained model must show; an untrained or broken one falls below it.
MIN_GAIN_DB = 0.5


def _skimage_photo(name: str) -> np.ndarray:
    """scikit-image's ``data/<name>`` as uint8 (H, W, 3) BGR (gray replicated)."""
    img = cv2.imread(str(Path(skimage.__file__).parent / "data" / name), cv2.IMREAD_COLOR)
    assert img is not None, name
    return img


@pytest.fixture(scope="module")
def network_g() -> dict:
    return network_options_from_yaml(DEFAULT_OPTIONS)


@pytest.fixture(scope="module")
def net(network_g: dict) -> torch.nn.Module:
    net = build_network(network_g)
    load_network(net, DEFAULT_WEIGHTS, strict=True)
    return net.eval()


def test_bundled_weights_load_strictly_and_detect_round_trips(network_g: dict, net: torch.nn.Module) -> None:
    state = load_state_dict(DEFAULT_WEIGHTS)
    assert network_g["type"] == "DLGSANet" and net.scale == SCALE
    assert set(state) == set(net.state_dict())
    assert detect(state) == network_g
    assert DEFAULT_WEIGHTS.stat().st_size < 2 * 1024 * 1024


def test_sample_is_the_documented_held_out_crop() -> None:
    top, bottom, left, right = SAMPLE_ORIGIN["box"]
    crop = _skimage_photo(SAMPLE_ORIGIN["photo"])[top:bottom, left:right]
    expected = round_to_uint8(bicubic_lq(crop.astype(np.float32) / 255.0, SCALE))
    bundled = cv2.imread(str(SAMPLE_IMAGE), cv2.IMREAD_COLOR)
    assert sorted(p.name for p in SAMPLES_DIR.iterdir()) == [SAMPLE_IMAGE.name]
    np.testing.assert_array_equal(bundled, expected)


@pytest.mark.parametrize(
    ("photo", "box"),
    [(SAMPLE_ORIGIN["photo"], SAMPLE_ORIGIN["box"]), ("camera.png", (96, 288, 160, 352))],
    ids=["astronaut_sample_crop", "camera_crop"],
)
def test_bundled_model_beats_bicubic_on_held_out_photos(net: torch.nn.Module, photo: str, box: tuple) -> None:
    top, bottom, left, right = box
    gt = _skimage_photo(photo)[top:bottom, left:right]
    lq = bicubic_lq(gt.astype(np.float32) / 255.0, SCALE)  # BGR, [0, 1], 8-bit values
    bicubic = round_to_uint8(imresize(lq, SCALE))
    rgb = torch.from_numpy(np.ascontiguousarray(lq[..., ::-1])).permute(2, 0, 1)[None]
    output = round_to_uint8(infer(net, rgb)[0].permute(1, 2, 0).numpy()[..., ::-1])
    psnr_bicubic = calculate_psnr(bicubic, gt, crop_border=4, test_y_channel=True)
    psnr_model = calculate_psnr(output, gt, crop_border=4, test_y_channel=True)
    assert psnr_model > psnr_bicubic + MIN_GAIN_DB, (psnr_model, psnr_bicubic)


def test_upscale_without_weights_uses_the_bundled_model(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "restore.cli", "upscale", "-i", str(SAMPLES_DIR), "-o", str(tmp_path)]
    done = subprocess.run([*command, "--no-progress"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(DEFAULT_WEIGHTS) in done.stderr
    lq = cv2.imread(str(SAMPLE_IMAGE), cv2.IMREAD_COLOR)
    out = cv2.imread(str(tmp_path / SAMPLE_IMAGE.name), cv2.IMREAD_COLOR)
    assert out is not None and out.shape == (SCALE * lq.shape[0], SCALE * lq.shape[1], 3)


def test_derain_and_opt_without_weights_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["derain", "-i", str(SAMPLES_DIR), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--weights is required" in err and err.count("\n") == 1
    assert main(["infer", "-i", str(SAMPLES_DIR), "-o", str(tmp_path), "--opt", str(DEFAULT_OPTIONS)]) == 2
    assert "--opt needs --weights" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
