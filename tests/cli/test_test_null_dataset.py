"""``restore test`` with a dataset set to null: skipped, and the log says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_test_py import SCALE, RecordingBicubic, make_benchmark, paired, write_options

from restore.evaluate import run_benchmark
from restore.utils.options import load_options


@pytest.mark.parametrize("how", ["in the file", "with --force_yml"])
def test_null_dataset_is_skipped_and_logged(tmp_path: Path, capsys: pytest.CaptureFixture, how: str) -> None:
    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    datasets = {"test_1": paired("Mini", gt_dir, lr_dir), "test_2": paired("Other", gt_dir, lr_dir)}
    force = ["datasets:test_2=~"]
    if how == "in the file":
        datasets["test_2"], force = None, []
    options = load_options(write_options(tmp_path / "o.yml", tmp_path / "r", datasets), force_yml=force)
    results = run_benchmark(options, net=RecordingBicubic(SCALE))
    assert [r.name for r in results] == ["Mini"]
    assert "datasets.test_2: null, skipped" in capsys.readouterr().out.splitlines()
    log = next((tmp_path / "r").glob("test_*.log")).read_text()
    assert "datasets.test_2: null, skipped" in log
