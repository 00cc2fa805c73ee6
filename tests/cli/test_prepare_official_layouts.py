"""``scripts/prepare_benchmark.py`` prepares every folder the official and the shipped test option files read.

The official repositories' folder layouts are written below as path patterns (facts about those layouts, read from
their test option files). A fake checkout ``repo/`` gets tiny HR images, the script is run in both layouts, and
every pattern, resolved from the checkout as those files resolve it, must exist and pair up; so must every
``dataroot_gt``/``dataroot_lq`` of every shipped ``options/test/*.yml`` file, commented-out datasets included
(users uncomment them).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest
import yaml

import restore.data.datasets  # noqa: F401  (registers the dataset types)
from restore.utils.registry import DATASET_REGISTRY

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "options" / "test").glob("*.yml"))
DATAROOT = re.compile(r"^\s*#?\s*dataroot_(?:gt|lq):\s*(\S+)", re.M)
#: LQ-only folders of the shipped files: the user's own images, not a benchmark the script prepares.
USER_FOLDERS = ("datasets/custom",)


class Layout(NamedTuple):
    """One official folder layout: ``{set}`` and ``{s}`` (scale) are filled in, paths are relative to the
    folder the official scripts run from."""

    gt: str
    lq: str
    filename_tmpl: str
    sets: tuple[str, ...]


OFFICIAL_LAYOUTS = {
    # XPixelGroup/HAT options/test/*.yml (HAT, HAT-S, HAT-L, HAT_tile_example) and ming053l/DRCT options/test/*.yml:
    # BasicSR's layout, with Urban100, BSD100 and Manga109 spelt urban100, BSDS100 and manga109.
    "basicsr": Layout(
        "./datasets/{set}/GTmod{s}",
        "./datasets/{set}/LRbicx{s}",
        "{}",
        ("Set5", "Set14", "urban100", "BSDS100", "manga109"),
    ),
    # NeonLeexiang/DLGSANet options/DLGSANet_SISR/test_*.yml: EDSR's benchmark layout one folder up, set name B100,
    # LR files named <name>x{s}.png.
    "edsr": Layout(
        "../data/benchmark/{set}/HR",
        "../data/benchmark/{set}/LR_bicubic/X{s}",
        "{}x{s}",
        ("Set5", "Set14", "B100", "Urban100"),
    ),
}
SCALES = (2, 3, 4)


def load_prepare_script():
    spec = importlib.util.spec_from_file_location("prepare_benchmark", REPO / "scripts" / "prepare_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_hr(folder: Path, count: int = 1) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(count):
        cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 256, (26, 25, 3), dtype=np.uint8))


@pytest.fixture
def prepared(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """``tmp/repo/datasets`` (default layout, deraining sets added) and ``tmp/data/benchmark`` (EDSR layout),
    prepared by the script; returns ``tmp/repo``."""
    prepare = load_prepare_script()
    datasets, benchmark = tmp_path / "repo" / "datasets", tmp_path / "data" / "benchmark"
    for name in prepare.SR_BENCHMARKS:
        write_hr(datasets / name / "HR")
    for name in prepare.EDSR_BENCHMARKS:
        write_hr(benchmark / name / "HR")
    assert prepare.main(["--root", str(datasets)]) == 0
    assert "urban100 -> Urban100 (name used by the official HAT/DRCT option files)" in capsys.readouterr().out
    assert prepare.main(["--root", str(datasets)]) == 0  # a second run keeps the links
    assert prepare.main(["--root", str(datasets), "--check"]) == 0
    out = capsys.readouterr().out
    assert {"urban100 -> Urban100: ok", "BSDS100 -> BSD100: ok", "manga109 -> Manga109: ok"} <= set(out.splitlines())
    assert prepare.main(["--layout", "edsr", "--root", str(benchmark)]) == 0
    assert prepare.main(["--layout", "edsr", "--root", str(benchmark), "--check"]) == 0
    for name in prepare.DERAINING_SETS:  # deraining sets are downloaded as they are; the script only checks them
        for side in ("input", "target"):
            write_hr(datasets / "deraining" / name / "test" / side)
    assert prepare.main(["--deraining", "--root", str(datasets)]) == 0
    return tmp_path / "repo"


def official_datasets() -> list[tuple[str, dict]]:
    """Every (layout, dataset options) an official file of that layout can name: each set at x2, x3 and x4."""
    return [
        (
            layout,
            {
                "dataroot_gt": spec.gt.format(set=name, s=s),
                "dataroot_lq": spec.lq.format(set=name, s=s),
                "filename_tmpl": spec.filename_tmpl.format("{}", s=s),
                "scale": s,
            },
        )
        for layout, spec in OFFICIAL_LAYOUTS.items()
        for name in spec.sets
        for s in SCALES
    ]


def assert_pairs_up(prepared: Path, dataset: dict, scale: int) -> None:
    """The paired dataset of ``dataset``'s folders, resolved from ``prepared``, has one GT of ``scale`` x LQ size."""
    resolved = {**dataset, "phase": "test", "scale": scale, "io_backend": {"type": "disk"}}
    for key in ("dataroot_gt", "dataroot_lq"):
        resolved[key] = str((prepared / dataset[key]).resolve())
    images = DATASET_REGISTRY.get("PairedImageDataset")(resolved)
    assert len(images) == 1
    item = images[0]
    assert item["gt"].shape[-2:] == tuple(scale * n for n in item["lq"].shape[-2:])


def test_every_official_layout_exists_and_pairs_up_after_preparing(prepared: Path) -> None:
    for layout, dataset in official_datasets():
        for key in ("dataroot_gt", "dataroot_lq"):
            assert (prepared / dataset[key]).resolve().is_dir(), f"{layout}: {dataset[key]} missing after preparing"
        assert_pairs_up(prepared, dataset, dataset["scale"])


def test_every_shipped_dataroot_exists_after_preparing(prepared: Path) -> None:
    checked = set()
    for option_file in SHIPPED:
        for root in DATAROOT.findall(option_file.read_text(encoding="utf-8")):
            if root in USER_FOLDERS:
                continue
            assert (prepared / root).resolve().is_dir(), f"{option_file.name}: {root} missing in a prepared folder"
            checked.add(root)
    # the five SR sets at x2, x3 and x4 (GT and LR), and the five deraining sets (input and target)
    assert len({r for r in checked if "/deraining/" not in r}) == 5 * 3 * 2
    assert len({r for r in checked if "/deraining/" in r}) == 5 * 2


def test_shipped_paired_datasets_pair_up_in_prepared_folders(prepared: Path) -> None:
    for option_file in SHIPPED:
        opt = yaml.safe_load(option_file.read_text(encoding="utf-8"))
        for dataset in opt["datasets"].values():
            if dataset["type"] == "PairedImageDataset":
                assert_pairs_up(prepared, dataset, opt["scale"])


def test_edsr_layout_names_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prepare = load_prepare_script()
    benchmark = tmp_path / "benchmark"
    hr = benchmark / "Set5" / "HR"
    write_hr(hr)
    cv2.imwrite(str(hr / "bird.bmp"), np.full((13, 17, 3), 90, np.uint8))
    assert prepare.main(["--layout", "edsr", "--root", str(benchmark), "--datasets", "Set5", "--scales", "3"]) == 0
    lr = benchmark / "Set5" / "LR_bicubic" / "X3"
    assert sorted(p.name for p in lr.iterdir()) == ["birdx3.bmp", "img0x3.png"]
    assert cv2.imread(str(lr / "birdx3.bmp")).shape == (4, 5, 3)  # 13x17 mod-cropped to 12x15, / 3
    cv2.imwrite(str(hr / "photo.jpg"), np.zeros((12, 12, 3), np.uint8))
    capsys.readouterr()
    assert prepare.main(["--layout", "edsr", "--root", str(benchmark), "--datasets", "Set5"]) == 1
    err = capsys.readouterr().err
    assert "photo.jpg is not lossless" in err and err.count("\n") == 1
