"""End-to-end Real-ESRGAN-style runs (tiny HAT, tiny crops) on CPU: MSE stage, GAN stage, exact resumption."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from real_helpers import real_options, tiny_crop  # noqa: F401 - fixture
from train_helpers import write_options

from restore.models.runner import main


def _run(opt_file: Path, *extra: str) -> int:
    return main(["-opt", str(opt_file), *extra])


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_equal_tensors(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        if isinstance(a[key], dict):
            _assert_equal_tensors(a[key], b[key], f"{where}.{key}")
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{where}.{key} differs"


def _resume_and_compare(ref_root: Path, opt: dict, tmp: Path, keep: int, extra_models: tuple[str, ...] = ()) -> Path:
    name = f"resumed_{keep}"
    opt = dict(opt, name=name, path=dict(opt["path"], experiments_root=str(tmp / "experiments" / name)))
    root = tmp / "experiments" / name
    for sub in ("models", "training_states"):
        (root / sub).mkdir(parents=True)
    for prefix in ("net_g", *extra_models):
        shutil.copy(ref_root / "models" / f"{prefix}_{keep}.pth", root / "models")
    shutil.copy(ref_root / "training_states" / f"{keep}.state", root / "training_states")
    assert _run(write_options(tmp, opt, f"{name}.yml"), "--auto_resume") == 0
    assert "resumed from" in (root / f"train_{name}.log").read_text()
    for prefix in ("net_g", *extra_models):
        ours, theirs = root / "models" / f"{prefix}_6.pth", ref_root / "models" / f"{prefix}_6.pth"
        _assert_equal_tensors(_load(ours), _load(theirs), prefix)
    return root


@pytest.mark.usefixtures("tiny_crop")
def test_mse_stage_trains_and_resumes_bit_identically(tmp_path: Path) -> None:
    opt = real_options(tmp_path, gan=False, name="mse")
    assert _run(write_options(tmp_path, opt)) == 0
    root = tmp_path / "experiments" / "mse"
    log = (root / "train_mse.log").read_text()
    assert re.search(r"iter:\s+6, .*l_pix: \d", log)
    state = _load(root / "training_states" / "2.state")
    pool = state["model"]["pool"]
    assert pool["filled"] == 4 and pool["lq"]["uint8"].shape == (4, 3, 8, 8)  # LQ on the 8-bit grid: stored as uint8
    assert sorted(p.name for p in (root / "models").iterdir()) == [
        "net_g_2.pth", "net_g_4.pth", "net_g_6.pth", "net_g_latest.pth"
    ]  # fmt: skip
    # the pool is full after 2 batches of 2: the resumed run restores it and replays 4 iterations of swaps
    _resume_and_compare(root, opt, tmp_path, keep=2)
