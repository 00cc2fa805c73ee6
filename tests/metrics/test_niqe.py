"""NIQE against ``tests/fixtures/metrics`` (every record) and the lookup of the pristine model file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from metric_refs import image as reference_image
from metric_refs import index, npz

from restore.data.color import to_y_channel
from restore.metrics import METRIC_REGISTRY, calculate_niqe
from restore.metrics import niqe as niqe_module

RECORDS = index()["niqe"]


def _id(r: dict) -> str:
    source = r["input"].get("key", "full")
    return f"{r['image']}-{source}"


def _input(record: dict) -> np.ndarray:
    spec = record["input"]
    return reference_image(spec["image"]) if "image" in spec else npz(spec["file"])[spec["key"]]


@pytest.fixture(scope="module")
def params_path() -> Path:
    """The pristine model shipped as package data; the reference's sha256 says it is the file the values used."""
    path = niqe_module.PACKAGE_PARAMS
    assert path.name == index()["niqe_params"]["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == index()["niqe_params"]["sha256_file"]
    return path


def test_shipped_model_is_the_default(monkeypatch: pytest.MonkeyPatch, params_path: Path) -> None:
    """A fresh install needs no download: without overrides the packaged file is used and gives the reference."""
    monkeypatch.delenv(niqe_module.PARAMS_ENV, raising=False)
    assert niqe_module.find_params_file() == params_path
    record = RECORDS[0]
    assert calculate_niqe(_input(record), 0) == pytest.approx(record["value"], abs=record["atol"], rel=0)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No environment variable and an empty package data folder; returns that folder's would-be file."""
    monkeypatch.delenv(niqe_module.PARAMS_ENV, raising=False)
    missing = tmp_path / "data" / niqe_module.PARAMS_FILENAME
    monkeypatch.setattr(niqe_module, "PACKAGE_PARAMS", missing)
    return missing


@pytest.mark.parametrize("record", RECORDS, ids=_id)
def test_matches_reference(record: dict, params_path: Path) -> None:
    value = calculate_niqe(_input(record), record["crop_border"], input_order=record["input_order"],
                           convert_to=record["convert_to"], niqe_params_path=params_path)  # fmt: skip
    assert value == pytest.approx(record["value"], abs=record["atol"], rel=0)


def test_layouts_agree(params_path: Path) -> None:
    img = reference_image("chelsea")
    hwc = calculate_niqe(img, 0, niqe_params_path=params_path)
    chw = calculate_niqe(img.transpose(2, 0, 1), 0, input_order="CHW", niqe_params_path=params_path)
    y_only = calculate_niqe(to_y_channel(img)[..., 0], 0, input_order="HW", niqe_params_path=params_path)
    assert chw == hwc == y_only
    cropped = calculate_niqe(img, 8, niqe_params_path=params_path)
    assert cropped != hwc and np.isfinite(cropped)


def test_registered_with_option_keys(params_path: Path) -> None:
    fn = METRIC_REGISTRY.get("calculate_niqe")
    img = reference_image("coffee")
    # the benchmark and validation pass the option keys by name and no reference image
    value = fn(img=img, crop_border=0, niqe_params_path=str(params_path))
    assert value == calculate_niqe(img, 0, niqe_params_path=params_path)
    with pytest.raises(TypeError, match="crop_bordr"):  # no **kwargs: a misspelt option key cannot be swallowed
        fn(img=img, crop_bordr=0, niqe_params_path=str(params_path))


def test_params_from_environment(params_path: Path, no_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = reference_image("camera")
    expected = calculate_niqe(img, 0, niqe_params_path=params_path)
    monkeypatch.setenv(niqe_module.PARAMS_ENV, str(params_path))
    assert calculate_niqe(img, 0) == expected


def test_explicit_path_wins_over_environment(params_path: Path, no_env: Path, monkeypatch) -> None:
    monkeypatch.setenv(niqe_module.PARAMS_ENV, str(no_env.parent / "elsewhere.npz"))
    assert niqe_module.find_params_file(params_path) == params_path
    with pytest.raises(FileNotFoundError, match="RESTORE_NIQE_PARAMS"):
        niqe_module.find_params_file()


def test_params_from_package_folder(params_path: Path, no_env: Path) -> None:
    no_env.parent.mkdir()
    shutil.copy(params_path, no_env)
    assert niqe_module.find_params_file() == no_env


def test_missing_params_message(no_env: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        calculate_niqe(reference_image("camera"), 0)
    message = str(err.value)
    assert "\n" not in message
    for needle in (str(no_env), "BasicSR", "basicsr/metrics/niqe_pris_params.npz", "RESTORE_NIQE_PARAMS",
                   "niqe_params_path"):  # fmt: skip
        assert needle in message


def test_too_small_image(params_path: Path) -> None:
    with pytest.raises(ValueError, match="96x96"):
        calculate_niqe(np.zeros((64, 200), np.uint8), 0, input_order="HW", niqe_params_path=params_path)
