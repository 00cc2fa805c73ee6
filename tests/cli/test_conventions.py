"""Every ``restore`` sub-command follows the same conventions (``restore.commands.common``).

One usage line plus one error line for a flag mistake, the nearest command for a mistyped one, every default and
the exit statuses in each ``--help``, one meaning of ``--param-key``, a folder given as ``--weights`` named as a
folder. The real command runs in a subprocess where the wording reaches the user through the console script's path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from restore.cli import COMMANDS
from restore.cli import main as cli_main
from restore.commands.compare import build_parser as compare_parser
from restore.commands.export import build_parser as export_parser
from restore.commands.infer import build_parser as infer_parser
from restore.commands.info import build_parser as info_parser
from restore.commands.lam import build_parser as lam_parser
from restore.commands.test import build_parser as benchmark_parser
from restore.commands.train import build_parser as train_parser

REPO = Path(__file__).resolve().parents[2]
PARSERS = {
    "infer": infer_parser, "info": info_parser, "export": export_parser, "test": benchmark_parser,
    "train": train_parser, "compare": compare_parser, "lam": lam_parser,
}  # fmt: skip


def restore(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "restore.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_help_shows_every_default_and_the_exit_statuses(name: str) -> None:
    parser = PARSERS[name]()
    text = parser.format_help()
    assert "Exit status: 0 " in text and "2 unusable" in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        default = action.default
        if action.help == argparse.SUPPRESS or action.required or isinstance(action, argparse._HelpAction):
            continue
        if default is None or default is False or default == [] or default == "":
            continue  # no default value, a switch, or an empty list (said in the help where it matters)
        shown = formatter._expand_help(action) if action.help else ""
        assert "default" in shown, (name, action.dest, shown)


def test_help_of_every_command_through_the_dispatcher(capsys: pytest.CaptureFixture[str]) -> None:
    for name in COMMANDS:
        with pytest.raises(SystemExit) as stopped:
            cli_main([name, "-h"])
        assert stopped.value.code == 0
        assert "Exit status:" in " ".join(capsys.readouterr().out.split()), name


def test_flag_mistake_is_one_usage_line_and_one_error_line() -> None:
    done = restore("infer", "-i", "x.png", "-o", "out", "--tile", "abc")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == "usage: restore infer [options]; 'restore infer -h' lists them"
    assert lines[1] == "restore infer: error: argument --tile: expected a positive integer or 'auto', got 'abc'"


def test_unknown_command_suggests_the_nearest() -> None:
    done = restore("upscal", "-i", "x.png")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1] == "restore: error: unknown command 'upscal'; did you mean 'upscale'?"


def test_folder_as_weights_says_it_is_a_folder(tmp_path: Path) -> None:
    done = restore("info", tmp_path)
    assert done.returncode == 2
    expected = f"restore info: error: {tmp_path}: is a folder, expected a checkpoint file"
    assert done.stderr.strip().splitlines() == [expected]


@pytest.mark.parametrize("command", ["info", "export", "infer"])
def test_named_param_key_must_exist(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from restore.archs import build_network
    from restore.checkpoint import save_checkpoint

    net = build_network({"type": "HAT", "upscale": 2, "img_size": 8, "window_size": 4, "embed_dim": 8,
                         "depths": [1], "num_heads": [2], "upsampler": "pixelshuffle", "compress_ratio": 2,
                         "squeeze_factor": 4})  # fmt: skip
    weights = save_checkpoint(tmp_path / "w.pth", net)  # params only
    images = tmp_path / "in"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((8, 8, 3), np.uint8))
    args = {
        "info": [str(weights)],
        "export": ["--weights", str(weights), "-o", str(tmp_path / "m.onnx")],
        "infer": ["--weights", str(weights), "-i", str(images), "-o", str(tmp_path / "out")],
    }[command]
    assert cli_main([command, *args, "--param-key", "params_ema"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"restore {command}: error: {weights}: no 'params_ema' entry (its entries are params); check --param-key"
    ]


def test_defaults_that_were_missing_from_help_are_shown() -> None:
    assert "(default: 0)" in " ".join(compare_parser().format_help().split())  # --crop-border
    lam_help = " ".join(lam_parser().format_help().split())
    assert "(default: 1)" in lam_help and "(default size: 16)" in lam_help  # --batch, the --window size
