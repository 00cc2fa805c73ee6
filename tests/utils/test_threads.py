"""CPU thread defaults: environment first, then one core left free; OpenCV follows torch, one thread in workers."""

from __future__ import annotations

import cv2
import pytest
import torch

from restore.utils import threads as threads_module
from restore.utils.threads import THREADS_ENV, default_threads, set_threads, worker_threads


@pytest.fixture(autouse=True)
def _restore_pools(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (4, 3), (16, 15)])
def test_default_leaves_one_core_free(monkeypatch, cores, expected):
    monkeypatch.setattr(threads_module, "_usable_cores", lambda: cores)
    assert default_threads() == expected


def test_environment_wins(monkeypatch):
    monkeypatch.setattr(threads_module, "_usable_cores", lambda: 16)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert default_threads() is None  # torch already follows OMP_NUM_THREADS
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_environment_value_is_named(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=rf"^\$RESTORE_THREADS: expected a positive integer, got '{value}'$"):
        default_threads()


def test_set_threads_sizes_both_pools():
    assert set_threads(2) == 2
    assert torch.get_num_threads() == 2 and cv2.getNumThreads() == 2
    assert set_threads(1) == 1
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1


def test_worker_init_uses_one_opencv_thread():
    cv2.setNumThreads(2)
    worker_threads(0)
    assert cv2.getNumThreads() == 1


def test_training_loader_workers_get_the_init(tmp_path):
    from restore.data.loader import build_train_loader, build_val_loader

    dataset = list(range(8))
    loader, _ = build_train_loader(dataset, {"batch_size_per_gpu": 2, "num_worker_per_gpu": 2})
    assert loader.worker_init_fn is worker_threads
    assert build_val_loader(dataset, {"num_worker_per_gpu": 1}).worker_init_fn is worker_threads
    assert build_val_loader(dataset, {}).worker_init_fn is None


def test_bad_environment_value_is_a_usage_error_for_the_commands(monkeypatch, capsys, tmp_path):
    from restore.cli import main as cli_main
    from restore.commands.train import main as train_main

    monkeypatch.setenv(THREADS_ENV, "many")
    assert train_main(["-opt", str(tmp_path / "x.yml")]) == 2
    assert capsys.readouterr().err.strip() == (
        "restore train: error: $RESTORE_THREADS: expected a positive integer, got 'many'"
    )
    assert cli_main(["test", "-opt", str(tmp_path / "x.yml")]) == 2
    assert capsys.readouterr().err.strip() == (
        "restore test: error: $RESTORE_THREADS: expected a positive integer, got 'many'"
    )
