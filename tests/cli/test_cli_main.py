"""The ``restore`` command: sub-command dispatch, ``info``, the upscale/derain guards, delegation to test/train."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from restore.archs import build_network, detect
from restore.checkpoint import save_checkpoint
from restore.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _checkpoint(fixtures: Path, folder: Path, fixture: str) -> tuple[Path, dict]:
    fx = torch.load(fixtures / "parity" / f"{fixture}.pt", weights_only=True)
    return save_checkpoint(folder / f"{fixture}.pth", fx["state_dict"]), fx


@pytest.fixture(scope="module")
def hat(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _checkpoint(fixtures, tmp_path_factory.mktemp("hat"), "hat_tiny_x3_pipeline")


@pytest.fixture(scope="module")
def drsformer(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _checkpoint(fixtures, tmp_path_factory.mktemp("drs"), "drsformer_tiny_nomefc_pipeline")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8))
    return path


def test_info_prints_architecture_config_and_parameters(hat: tuple[Path, dict], capsys) -> None:
    path, fx = hat
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "architecture: HAT (detected from the weights)" in text
    assert "scale:        3" in text and "pad multiple: 8" in text
    expected = sum(p.numel() for p in build_network({"type": "HAT", **fx["kwargs"]}).parameters())
    assert f"parameters:   {expected:,}" in text
    network_g = yaml.safe_load(text.split("network_g:\n", 1)[1])
    assert network_g == detect(fx["state_dict"])


def test_info_on_a_bad_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    assert main(["info", str(tmp_path / "junk.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"restore info: error: {tmp_path / 'junk.pth'}: ")


def test_upscale_refuses_a_scale_one_model(drsformer: tuple[Path, dict], image: Path, tmp_path: Path, capsys) -> None:
    status = main(["upscale", "-i", str(image), "-o", str(tmp_path / "o"), "--weights", str(drsformer[0])])
    assert status == 2
    assert "(DRSformer) is a scale-1 model, not an upscaler" in capsys.readouterr().err


def test_upscale_runs_an_sr_model(hat: tuple[Path, dict], image: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["upscale", "-i", str(image), "-o", str(out), "--weights", str(hat[0]), "--no-progress"]) == 0
    assert cv2.imread(str(out / "in.png")).shape == (48, 48, 3)


def test_derain_refuses_an_sr_model(hat: tuple[Path, dict], image: Path, tmp_path: Path, capsys) -> None:
    assert main(["derain", "-i", str(image), "-o", str(tmp_path / "o"), "--weights", str(hat[0])]) == 2
    assert "(HAT) is not a deraining model" in capsys.readouterr().err


def test_derain_runs_a_deraining_model(drsformer: tuple[Path, dict], image: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["derain", "-i", str(image), "-o", str(out), "--weights", str(drsformer[0]), "--no-progress"]) == 0
    assert cv2.imread(str(out / "in.png")).shape == (16, 16, 3)


@pytest.mark.parametrize("command", ["test", "train"])
def test_test_and_train_forward_their_arguments(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    fake = types.ModuleType(f"restore.commands.{command}")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, f"restore.commands.{command}", fake)
    assert main([command, "-opt", "options/x.yml", "--force_yml", "a:b=1"]) == 3
    assert seen == [["-opt", "options/x.yml", "--force_yml", "a:b=1"]]


def test_usage_version_and_unknown_commands(capsys) -> None:
    assert main([]) == 2
    assert "restore <command>" in capsys.readouterr().out
    assert main(["--help"]) == 0
    capsys.readouterr()
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith("restore ")
    assert main(["upsacle"]) == 2
    assert "unknown command 'upsacle'; did you mean 'upscale'?" in capsys.readouterr().err


def test_console_script(hat: tuple[Path, dict]) -> None:
    assert "restore = restore.cli:main" in (REPO_ROOT / "setup.py").read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "restore.cli", "info", str(hat[0])], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "architecture: HAT" in done.stdout
