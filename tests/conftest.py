"""Shared test setup: Triton in interpreter mode, the ``fixtures`` data folder, deterministic CPU math."""

from __future__ import annotations

import os

# Triton reads this when ``@triton.jit`` runs, i.e. at import of the kernels: set it before importing restore.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Commands run in-process here would make the whole test session keep freed memory (restore.utils.malloc);
# tests/utils/test_malloc.py checks that setting in subprocesses of its own.
os.environ.setdefault("RESTORE_MALLOC", "default")

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def _worker_threads() -> int | None:
    """Torch threads for one pytest-xdist worker: the usable cores shared between the workers (None: not a worker).
    Workers that each use every core would make every operator wait for descheduled threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not os.environ.get("PYTEST_XDIST_WORKER") or workers < 1:
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


if (_threads := _worker_threads()) is not None:
    torch.set_num_threads(_threads)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """``tests/fixtures``: reference data shipped with the repository (parity/, metrics/, realworld/, lam/, ...;
    see their READMEs)."""
    return FIXTURES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
