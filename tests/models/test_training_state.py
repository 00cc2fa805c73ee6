"""Training states: random-state round trip, atomic saving under SIGKILL, newest-complete-state selection."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from restore.checkpoint import save_checkpoint
from restore.models.training_state import (
    capture_rng,
    find_resume_point,
    network_path,
    restore_rng,
    save_state,
    state_path,
)

REPO = Path(__file__).resolve().parents[2]


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1)), float(np.random.randn())


def test_rng_round_trip_survives_weights_only_loading(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's legacy state
    state = capture_rng()
    expected = _draws()
    save_state(tmp_path / "1.state", {"iter": 1, "rng": [state]})
    loaded = torch.load(tmp_path / "1.state", weights_only=True)
    _draws()
    restore_rng(loaded["rng"][0])
    assert _draws() == expected


def _checkpoint(folder: Path, iteration: int) -> None:
    save_checkpoint(network_path(folder / "models", iteration), {"w": torch.full((2,), float(iteration))})
    save_state(state_path(folder / "training_states", iteration), {"iter": iteration, "epoch": 0})


def test_newest_complete_state_wins_and_damaged_ones_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for it in (2, 4, 6, 8):
        _checkpoint(tmp_path, it)
    states, models = tmp_path / "training_states", tmp_path / "models"
    assert find_resume_point(states, models).iteration == 8
    data = state_path(states, 8).read_bytes()
    state_path(states, 8).write_bytes(data[: len(data) // 2])  # truncated newest state
    network_path(models, 6).unlink()  # a state whose weights are gone
    (states / ".10.state.abc123.state").write_bytes(b"PK\x03\x04partial")  # leftover of an interrupted save
    notes: list[str] = []
    point = find_resume_point(states, models, notes.append)
    assert point.iteration == 4 and torch.equal(point.network["params"]["w"], torch.full((2,), 4.0))
    assert len(notes) == 2 and "8.state" in notes[0] and "net_g_6.pth" in notes[1]
    assert find_resume_point(tmp_path / "missing", models) is None


_KILLED_WRITER = """
import sys, time
sys.path.insert(0, {repo!r})
import torch
from restore.models.training_state import save_state

class SlowToPickle:
    def __reduce__(self):
        print("saving", flush=True)
        time.sleep(120)
        return (int, (0,))

save_state({path!r}, {{"iter": 4, "epoch": 0, "blob": torch.zeros(10000), "slow": SlowToPickle()}})
"""


def test_sigkill_during_save_leaves_previous_state_usable(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 2)
    save_checkpoint(network_path(tmp_path / "models", 4), {"w": torch.zeros(2)})  # weights are saved first
    target = state_path(tmp_path / "training_states", 4)
    script = _KILLED_WRITER.format(repo=str(REPO), path=str(target))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saving"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in (tmp_path / "training_states").iterdir() if p.name != "2.state"]
    assert not target.exists() and leftovers  # only the interrupted save's temporary file
    assert find_resume_point(tmp_path / "training_states", tmp_path / "models").iteration == 2
