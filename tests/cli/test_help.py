"""The help pages of ``restore infer``/``upscale``/``derain``: each says what it does and its defaults, and
``python restore/infer.py`` is the same program as ``restore infer`` (bundled model without ``--weights``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from restore.assets import DEFAULT_WEIGHTS, SAMPLE_IMAGE, SAMPLES_DIR
from restore.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps to the terminal width, also inside long paths


def _help(command: str, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["infer", "upscale", "derain"])
def test_help_states_purpose_and_defaults(command: str, capsys: pytest.CaptureFixture) -> None:
    text = _help(command, capsys)
    assert f"usage: restore {command}" in text
    assert "[--weights WEIGHTS]" in text  # never shown as a required option
    for default in ("(default: 32)", "(default: fp32)", "(default: png)", "(default: params_ema, else params)"):
        assert default in text
    if command == "derain":
        assert "rain" in text.lower() and "required" in text and "bundled" in text
    else:
        assert f"(default: the bundled x4 demo model, {DEFAULT_WEIGHTS})" in text


def test_each_command_describes_itself_differently(capsys: pytest.CaptureFixture) -> None:
    first_lines = set()
    for command in ("infer", "upscale", "derain"):
        text = _help(command, capsys)
        first_lines.add(text.split("options:")[0].split("]")[-1].strip())
    assert len(first_lines) == 3


def test_infer_script_uses_the_bundled_model_like_the_command(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "restore/infer.py", "-i", str(SAMPLES_DIR), "-o", str(tmp_path), "--no-progress"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(DEFAULT_WEIGHTS) in done.stderr
    lq = cv2.imread(str(SAMPLE_IMAGE), cv2.IMREAD_COLOR)
    out = cv2.imread(str(tmp_path / SAMPLE_IMAGE.name), cv2.IMREAD_COLOR)
    assert out is not None and out.shape == (4 * lq.shape[0], 4 * lq.shape[1], 3)
