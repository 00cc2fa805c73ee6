"""``restore.models.preflight.train_problems``: what stops a training run, found without building anything."""

from __future__ import annotations

from pathlib import Path

from train_helpers import train_options, write_options

from restore.models.preflight import train_problems
from restore.utils.options import load_options


def _problems(tmp_path: Path, scheduler: dict | None = None, **extra) -> list[str]:
    opt = train_options(tmp_path, **extra)
    if scheduler is not None:
        opt["train"]["scheduler"] = scheduler
    return train_problems(load_options(write_options(tmp_path, opt), is_train=True))


def test_a_valid_file_has_no_problem(tmp_path: Path) -> None:
    assert _problems(tmp_path) == []


def test_training_images_smaller_than_the_crop(tmp_path: Path) -> None:
    problems = _problems(tmp_path, datasets={"train": {"gt_size": 30}})  # the GT images are 24x24
    assert len(problems) == 1
    assert problems[0].startswith("datasets.train.gt_size: 6 of 6 GT image(s) are smaller than 30 pixels, e.g. ")
    assert problems[0].endswith("(24x24, WxH); lower gt_size or remove them")


def test_every_problem_of_the_train_block_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        model_type="ESRGANModel",
        datasets={"train": {"batch_size_per_gpu": 7}},
        train={"total_iter": 6, "optim_g": {"lr": None}},
        scheduler={"type": "CosineAnnealingRestartLR", "periods": [2], "restart_weights": [1]},
    )
    assert len(problems) == 4, problems
    assert problems[0].startswith("model_type ESRGANModel: not implemented")
    assert problems[1] == "train.optim_g.lr: missing learning rate"
    assert problems[2] == "train.scheduler.periods: sum to 2 steps but train.total_iter=6 needs 5"
    assert problems[3].startswith("datasets.train: 6 sample(s) per process per epoch (6 image(s)), fewer than ")
