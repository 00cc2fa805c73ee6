"""Training states: what a resumed run needs beyond the weights, saved atomically, found newest-complete-first.

Layout under ``experiments/<name>/`` (BasicSR's): ``models/net_g_<iter>.pth`` (``params`` and ``params_ema``)
and ``training_states/<iter>.state``. The weights are written first and the state last, each through a temporary
file renamed into place, so an existing ``<iter>.state`` always has its complete weights beside it. A run killed
while saving leaves at most a hidden temporary file, which :func:`find_resume_point` ignores; a damaged newest
state (e.g. truncated by a full disk) is skipped with a warning in favour of the previous one.

State contents (plain containers and tensors, loadable with ``torch.load(weights_only=True)``): ``iter``,
``epoch``, ``epoch_batches`` (loader batches already consumed in that epoch), ``seed``, optimizer, learning-rate
and grad-scaler states, best validation metrics, and the random states (Python, NumPy, torch CPU and CUDA) of
every rank.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restore.checkpoint import CheckpointError, read_checkpoint
from restore.utils.files import atomic_path

__all__ = [
    "FORMAT",
    "ResumePoint",
    "capture_rng",
    "find_resume_point",
    "load_resume_point",
    "network_path",
    "restore_rng",
    "save_state",
    "state_path",
]

FORMAT = "restore-training-state-v1"
_STATE_NAME = re.compile(r"^(\d+)\.state$")


def state_path(states_dir: str | Path, iteration: int) -> Path:
    return Path(states_dir) / f"{iteration}.state"


def network_path(models_dir: str | Path, iteration: int | str) -> Path:
    return Path(models_dir) / f"net_g_{iteration}.pth"


def capture_rng() -> dict[str, Any]:
    """The global random states of this process (Python, NumPy legacy, torch CPU, and CUDA when available)."""
    version, words, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": (version, list(words), gauss),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (the CUDA state is restored only when CUDA is available)."""
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": int(np_state["pos"])},
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a training state atomically (a temporary file in the same folder, fsynced, then renamed)."""
    payload = {"format": FORMAT, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


@dataclass
class ResumePoint:
    """A loadable training state and the weights saved with it."""

    state: dict[str, Any]
    state_path: Path
    network: dict[str, Any]
    network_path: Path

    @property
    def iteration(self) -> int:
        return int(self.state["iter"])


def load_resume_point(path: str | Path, models_dir: str | Path | None = None) -> ResumePoint:
    """Read ``<iter>.state`` and its ``net_g_<iter>.pth`` (from ``models_dir``, default ``../models``).

    Raises:
        CheckpointError: either file missing, truncated or not a training state.
    """
    path = Path(path)
    state = read_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT or "iter" not in state:
        raise CheckpointError(f"{path}: not a training state written by restore ({FORMAT})")
    models = Path(models_dir) if models_dir is not None else path.parent.parent / "models"
    net_path = network_path(models, int(state["iter"]))
    network = read_checkpoint(net_path)
    if not isinstance(network, dict) or "params" not in network:
        raise CheckpointError(f"{net_path}: expected BasicSR weights with 'params'")
    return ResumePoint(state, path, network, net_path)


def find_resume_point(
    states_dir: str | Path, models_dir: str | Path, on_skip: Callable[[str], None] | None = None
) -> ResumePoint | None:
    """The newest complete training state in ``states_dir`` (``None`` if there is none).

    States are tried from the highest iteration down; one that cannot be read (or whose weights cannot) is
    skipped, and ``on_skip`` receives a one-line reason. Temporary files of interrupted saves never match the
    ``<iter>.state`` pattern.
    """
    folder = Path(states_dir)
    if not folder.is_dir():
        return None
    candidates = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _STATE_NAME.match(p.name)) and p.is_file()
    )
    for _, path in reversed(candidates):
        try:
            return load_resume_point(path, models_dir)
        except CheckpointError as err:
            if on_skip is not None:
                on_skip(f"skipping unusable training state: {err}")
    return None
