"""CPU thread defaults: environment first, then the idle cores shared among ranks and workers; OpenCV follows torch,
one thread in workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize(("cores", "load", "expected"), [
    (1, 0.0, 1), (2, 0.1, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 7.0, 1), (4, 1.2, 3), (16, 0.0, 16), (16, 3.6, 12),
])  # fmt: skip
def test_default_takes_the_idle_cores(monkeypatch, cores, load, expected):
    monkeypatch.setattr(threads_module, "_usable_cores", lambda: cores)
    monkeypatch.setattr(threads_module, "_busy_cores", lambda: load)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads() == expected


@pytest.mark.parametrize(("cores", "ranks", "workers", "load", "expected"), [
    (16, 4, 0, 0.0, 4), (16, 4, 2, 0.0, 2), (16, 4, 0, 8.0, 2), (2, 4, 0, 0.0, 1), (8, 1, 3, 0.0, 5),
    (2, 1, 4, 0.0, 1),
])  # fmt: skip
def test_processes_times_threads_stay_within_the_cores(monkeypatch, cores, ranks, workers, load, expected):
    monkeypatch.setattr(threads_module, "_usable_cores", lambda: cores)
    monkeypatch.setattr(threads_module, "_busy_cores", lambda: load)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks))
    threads = default_threads(workers)
    assert threads == expected
    assert ranks * (threads + workers) <= cores or threads == 1


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
    assert set_threads(2, allocator=False) == 2
    assert torch.get_num_threads() == 2 and cv2.getNumThreads() == 2
    assert set_threads(1, allocator=False) == 1
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


@pytest.mark.parametrize(("average", "now", "expected"), [
    (1.9, 0.0, 0.0),  # the command before this one has just ended: the load average still counts it
    (0.2, 1.0, 0.2),  # work that paused over the last minute but runs now
    (None, 1.0, 1.0), (1.5, None, 1.5), (None, None, 0.0),
])  # fmt: skip
def test_busy_cores_are_the_smaller_of_the_load_average_and_the_runnable_tasks(monkeypatch, average, now, expected):
    monkeypatch.setattr(threads_module, "_load_average", lambda: average)
    monkeypatch.setattr(threads_module, "_runnable_now", lambda: now)
    assert threads_module._busy_cores() == expected


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="reads /proc/loadavg (Linux)")
def test_runnable_now_counts_a_spinning_process():
    spinner = subprocess.Popen(
        [sys.executable, "-c", "import sys\nprint(flush=True)\nwhile True: pass"], stdout=subprocess.PIPE
    )
    try:
        spinner.stdout.readline()  # spinning from here on: always runnable, whether or not it has a core
        assert threads_module._runnable_now() >= 1.0
    finally:
        spinner.kill()
        spinner.wait()


def test_runnable_now_leaves_out_this_process_s_own_threads(monkeypatch, tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 0.40 0.30 4/200 12345\n")  # 4 runnable tasks on the machine...
    monkeypatch.setattr(threads_module, "_LOADAVG", str(loadavg))
    monkeypatch.setattr(threads_module, "_own_running_threads", lambda: 3)  # ...3 of them ours
    assert threads_module._runnable_now(samples=2, interval_s=0.0) == 1.0


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc/self/task (Linux)")
def test_own_running_threads_counts_the_caller():
    assert threads_module._own_running_threads() >= 1  # the thread reading its own state is running
