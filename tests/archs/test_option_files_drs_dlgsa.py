"""Option files of DRSformer and DLGSANet: validate, build exactly the official networks, use the dataset layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from restore.archs import build_network
from restore.utils.options import load_options

REPO = Path(__file__).resolve().parents[2]
PARITY_DIR = REPO / "tests" / "fixtures" / "parity"
OPTION_FILES = sorted(  # the official configurations (other files, e.g. demo models, are tested elsewhere)
    p for phase in ("train", "test") for family in ("DRSformer", "DLGSANet")
    for p in (REPO / "options" / phase).glob(f"{phase}_{family}_*.yml")
)  # fmt: skip
DERAINING_SETS = ("Rain200H", "Rain200L", "DID", "DDN", "SPA")
SR_SIZES = {"Tiny": (48, 3, 3), "Light": (48, 4, 3), "Large": (90, 6, 4)}
BENCHMARKS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109")


def _manifests() -> list[dict]:
    return [json.loads(p.read_text()) for p in PARITY_DIR.glob("manifests/*.json") if "index" not in p.name]


def _matching_manifest(network_g: dict) -> dict:
    kwargs = {k: v for k, v in network_g.items() if k not in ("type", "mefc")}
    variant = None if network_g["type"] != "DRSformer" else ("mefc" if network_g.get("mefc", True) else "no_mefc")
    found = [m for m in _manifests() if m["arch"] == network_g["type"] and m["kwargs"] == kwargs
             and m["variant"] == variant]  # fmt: skip
    assert len(found) == 1, f"no single official manifest for {network_g}"
    return found[0]


def test_every_official_configuration_has_train_and_test_files() -> None:
    names = {p.relative_to(REPO / "options").as_posix() for p in OPTION_FILES}
    expected = {f"{phase}/{phase}_DRSformer_{name}.yml" for phase in ("train", "test") for name in DERAINING_SETS}
    expected |= {f"{phase}/{phase}_DLGSANet_{size}_SRx{s}.yml" for phase in ("train", "test") for size in SR_SIZES
                 for s in (2, 3, 4)}  # fmt: skip
    assert names == expected


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: p.stem)
def test_option_file_builds_the_official_network(path: Path) -> None:
    opt = load_options(path, is_train=path.parent.name == "train", root=REPO)
    network_g = opt["network_g"]
    manifest = _matching_manifest(network_g)
    with torch.device("meta"):
        net = build_network(network_g)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(manifest["state_dict"].items())
    assert net.scale == opt["scale"]


@pytest.mark.parametrize("path", [p for p in OPTION_FILES if "DRSformer" in p.name], ids=lambda p: p.stem)
def test_drsformer_files(path: Path) -> None:
    name = re.search(r"DRSformer_(\w+)\.yml", path.name).group(1)
    opt = load_options(path, root=REPO)
    assert opt["network_g"]["mefc"] is (name not in ("Rain200L", "SPA"))  # the official Rain200L / SPA models
    assert opt["model_type"] == "ImageCleanModel" and opt["val"]["window_size"] == 8
    for phase_key, dataset in opt["datasets"].items():
        split = "train" if phase_key == "train" else "test"
        assert dataset["type"] == "Dataset_PairedImage"
        assert dataset["dataroot_lq"] == str(REPO / f"datasets/deraining/{name}/{split}/input")
        assert dataset["dataroot_gt"] == str(REPO / f"datasets/deraining/{name}/{split}/target")


@pytest.mark.parametrize("path", [p for p in OPTION_FILES if "DLGSANet" in p.name], ids=lambda p: p.stem)
def test_dlgsanet_files(path: Path) -> None:
    size, scale = re.search(r"DLGSANet_(\w+)_SRx(\d)\.yml", path.name).groups()
    scale = int(scale)
    opt = load_options(path, root=REPO)
    network_g = opt["network_g"]
    assert (network_g["dim"], network_g["groups"], network_g["blocks"]) == SR_SIZES[size]
    assert network_g["upscale"] == opt["scale"] == scale
    assert network_g["tlc_kernel"] == {2: 96, 3: 72, 4: 48}[scale]
    datasets = opt["datasets"]
    if path.parent.name == "train":
        train = datasets["train"]
        assert train["dataroot_gt"] == str(REPO / "datasets/DF2K/DF2K_HR_sub")
        assert train["dataroot_lq"] == str(REPO / f"datasets/DF2K/DF2K_bicx{scale}_sub")
        assert train["gt_size"] == 48 * scale
    else:
        assert [d["name"] for d in datasets.values()] == list(BENCHMARKS)
        for dataset in datasets.values():
            assert dataset["dataroot_gt"] == str(REPO / f"datasets/{dataset['name']}/GTmod{scale}")
            assert dataset["dataroot_lq"] == str(REPO / f"datasets/{dataset['name']}/LRbicx{scale}")
            assert dataset["filename_tmpl"] == "{}"
