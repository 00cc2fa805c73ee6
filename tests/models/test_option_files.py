"""Every shipped training option file is accepted by the training code (without building the full networks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import restore.data.loader  # noqa: F401 - registers the datasets
from restore.models.batch_augment import ProgressivePatches, build_mixup
from restore.models.criteria import Criteria
from restore.models.lr_schedule import LRController, build_schedule
from restore.models.optim import build_optimizer
from restore.models.restoration import TrainSettings
from restore.utils.options import load_options
from restore.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

OPTION_FILES = sorted((Path(__file__).resolve().parents[2] / "options" / "train").glob("*.yml"))


@pytest.mark.parametrize("path", OPTION_FILES, ids=[p.stem for p in OPTION_FILES])
def test_training_sections_build(path: Path) -> None:
    opt = load_options(path, is_train=True)
    assert opt["model_type"] in MODEL_REGISTRY
    if opt["model_type"].startswith("Real"):  # built end to end in tests/models/test_real_option_files.py
        assert opt["datasets"]["train"]["type"] == "RealESRGANDataset"
        return
    train = opt["train"]
    settings = TrainSettings.from_options(train)
    Criteria(train)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], train["optim_g"])
    lr = LRController(optimizer, build_schedule(train["scheduler"], settings.total_iter), train["warmup_iter"])
    assert all(v > 0 for t in (1, settings.total_iter) for v in lr.lrs_at(t))
    build_mixup(train)
    for name, dataset in opt["datasets"].items():
        assert dataset["type"] in DATASET_REGISTRY, name
    if ProgressivePatches.enabled(opt["datasets"]["train"]):
        ProgressivePatches(opt["datasets"]["train"], opt["scale"])


def test_there_are_option_files() -> None:
    assert any(p.stem.startswith("demo_") for p in OPTION_FILES)
