"""Every shipped test option file runs unchanged through ``restore test`` and reports what the README promises.

Each file in ``options/test/`` (HAT, DRCT, DLGSANet, DRSformer: our versions of the official test files, with the
official ``network_g``) is run through :func:`restore.commands.test.main`, the function behind
``python restore/test.py``, with its own full-size ``network_g``. Only paths are redirected, with ``--force_yml``:
the SR datasets to folders made by ``scripts/prepare_benchmark.py`` from one tiny HR image per set (24x24: LR 12x12
at x2, 6x6 at x4), the deraining sets to one 16x16 pair each, the LQ-only folders to one 12x12 image, the checkpoint
to a random one of the right ``network_g`` whose ``params`` and ``params_ema`` differ (built once per distinct
``network_g`` and shared by the files that use it), and the results to a temporary folder.

Checked per file: exit status 0; the log names the key the file asks for (BasicSR's ``params`` when it names
none); the paper-style table, ``metrics.csv`` and ``metrics.json`` with PSNR and SSIM on the Y channel and the
README's protocol (Benchmarking): SR ``crop_border`` = scale, 4 for DLGSANet, unrounded Y; DRSformer no crop and the
per-set ``y_channel_uint8``/``auto_downsample`` of the README's table; the values recomputed from the saved images;
for the LQ-only files, the saved images and no metrics files.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from readme_tables import drsformer_protocol
from torch_threads import one_thread_fixture

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.test import main
from restore.metrics import calculate_psnr, calculate_ssim

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "options" / "test"
FILES = sorted(p.name for p in SHIPPED.glob("*.yml"))
HR_SIZE = 24  # SR: one HR image per set; LR 12x12 (x2), 8x8 (x3), 6x6 (x4); SSIM keeps 16x16 after crop 4
DERAIN_SIZE = 16  # DRSformer: one pair per set, a multiple of its 8-pixel padding
LQ_SIZE = 12  # LQ-only folders (SingleImageDataset)
#: Files that finish in a few seconds on one thread (small networks); the others are ``slow``.
QUICK = ("test_DLGSANet_Tiny_", "test_DLGSANet_Light_")

one_thread = one_thread_fixture()


def _load_prepare_script():
    spec = importlib.util.spec_from_file_location("prepare_benchmark", REPO / "scripts" / "prepare_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options(name: str) -> dict:
    return yaml.safe_load((SHIPPED / name).read_text(encoding="utf-8"))


def _write(path: Path, size: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake checkout ``repo/`` whose ``datasets/`` holds every folder the shipped files read."""
    repo = tmp_path_factory.mktemp("shipped") / "repo"
    datasets = repo / "datasets"
    prepare = _load_prepare_script()
    rng = np.random.default_rng(0)
    for name in prepare.SR_BENCHMARKS:
        _write(datasets / name / "HR" / "img.png", HR_SIZE, rng)
    assert prepare.main(["--root", str(datasets)]) == 0
    for name in prepare.DERAINING_SETS:
        for side in ("input", "target"):
            _write(datasets / "deraining" / name / "test" / side / "1.png", DERAIN_SIZE, rng)
    assert prepare.main(["--deraining", "--root", str(datasets)]) == 0
    for file in FILES:
        for dataset in _options(file)["datasets"].values():
            if dataset["type"] == "SingleImageDataset":
                _write(repo / dataset["dataroot_lq"] / "photo.png", LQ_SIZE, rng)
    return repo


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """A cache of random checkpoints, one per distinct ``network_g``, and the folder holding them."""
    return {}, tmp_path_factory.mktemp("checkpoints")


def checkpoint_for(network_g: dict, checkpoints: tuple[dict[str, Path], Path]) -> Path:
    """The cached checkpoint of ``network_g``; built on first use with ``params_ema`` = ``params`` + 0.01."""
    cache, folder = checkpoints
    key = yaml.safe_dump(network_g, sort_keys=True)
    if key not in cache:
        torch.manual_seed(0)
        net = build_network(network_g)
        ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in net.state_dict().items()}
        path = folder / f"net{len(cache)}.pth"
        save_checkpoint(path, net, params_ema=ema)
        cache[key] = path
    return cache[key]


def redirects(opt: dict, checkout: Path, checkpoint: Path, results: Path) -> list[str]:
    """``--force_yml`` items: every dataroot to the prepared folder it names, the checkpoint, the results."""
    items = [f"path:pretrain_network_g={checkpoint}", f"path:results_root={results}"]
    for key, dataset in opt["datasets"].items():
        for root in ("dataroot_gt", "dataroot_lq"):
            if root in dataset:
                items.append(f"datasets:{key}:{root}={(checkout / dataset[root]).resolve()}")
    return items


def expected_protocol(name: str, opt: dict, dataset: str) -> dict:
    """What README.md (Benchmarking) promises for ``dataset`` in the shipped file ``name``."""
    if opt["network_g"]["type"] == "DRSformer":
        return {"crop_border": 0, **drsformer_protocol()[dataset]}
    crop = 4 if name.startswith("test_DLGSANet_") else opt["scale"]  # README: DLGSANet crops 4 at every scale
    return {"crop_border": crop, "y_channel_uint8": False, "y_channel_float64": False, "auto_downsample": False}


def test_every_family_is_shipped() -> None:
    families = {_options(name)["network_g"]["type"] for name in FILES}
    assert families == {"HAT", "DRCT", "DLGSANet", "DRSformer"}


def test_dlgsanet_files_load_the_weights_the_official_pipeline_loads() -> None:
    """The official DLGSANet test files set no ``param_key_g``, so BasicSR's SRModel loads ``params``."""
    keys = {name: _options(name)["path"]["param_key_g"] for name in FILES if name.startswith("test_DLGSANet_")}
    assert len(keys) == 9 and set(keys.values()) == {"params"}, keys


@pytest.mark.parametrize("name", [n if n.startswith(QUICK) else pytest.param(n, marks=pytest.mark.slow) for n in FILES])
def test_shipped_file_runs_unchanged(
    name: str, checkout: Path, checkpoints: tuple[dict[str, Path], Path], tmp_path: Path, capsys
) -> None:
    option_file = SHIPPED / name
    opt = _options(name)
    checkpoint = checkpoint_for(opt["network_g"], checkpoints)
    results = tmp_path / "results"
    assert main(["-opt", str(option_file), "--force_yml", *redirects(opt, checkout, checkpoint, results)]) == 0
    out = capsys.readouterr().out

    key = opt.get("path", {}).get("param_key_g") or "params"
    assert f"with param key: [{key}]." in out
    scale = opt["scale"]
    datasets = [d["name"] for d in opt["datasets"].values()]
    suffix = opt["val"].get("suffix") or opt["name"]
    if opt.get("tile"):
        assert f"tile_size {opt['tile']['tile_size']} with tile_pad {opt['tile']['tile_pad']}" in out
        assert all("tiled 0, whole 1" in line for line in out.splitlines() if line.startswith(tuple(datasets)))

    if all(d["type"] == "SingleImageDataset" for d in opt["datasets"].values()):
        assert not (results / "metrics.csv").exists() and not (results / "metrics.json").exists()
        assert "nothing to measure" in out
        saved = cv2.imread(str(results / "visualization" / datasets[0] / f"photo_{suffix}.png"))
        assert saved.shape == (LQ_SIZE * scale, LQ_SIZE * scale, 3)
        return

    assert opt["val"]["metrics"].keys() == {"psnr", "ssim"}
    header = next(line for line in out.splitlines() if line.startswith("| dataset"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["dataset", "psnr (↑)", "ssim (↑)"]
    for dataset in datasets:
        assert any(line.startswith(f"| {dataset} ") for line in out.splitlines())

    report = json.loads((results / "metrics.json").read_text())
    protocols = [expected_protocol(name, opt, d) for d in datasets]
    protocol = protocols[0]
    assert all(p == protocol for p in protocols)  # one metric set-up per file
    for metric, kind in (("psnr", "calculate_psnr"), ("ssim", "calculate_ssim")):
        entry = report["metrics"][metric]
        assert (entry["type"], entry["better"], entry["crop_border"]) == (kind, "higher", protocol["crop_border"])
        assert entry["test_y_channel"] is True and entry["y_channel_uint8"] is protocol["y_channel_uint8"]
        assert bool(entry.get("y_channel_float64")) is protocol["y_channel_float64"]
    assert bool(report["metrics"]["ssim"].get("auto_downsample")) is protocol["auto_downsample"]

    with open(results / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["dataset", "image", "psnr", "ssim"]
    image = "1" if opt["network_g"]["type"] == "DRSformer" else "img"
    size = DERAIN_SIZE if image == "1" else HR_SIZE
    assert [(r["dataset"], r["image"]) for r in rows] == [(d, i) for d in datasets for i in (image, "average")]
    crop = protocol["crop_border"]
    y_options = {"test_y_channel": True, "y_channel_uint8": protocol["y_channel_uint8"]}
    y_options["y_channel_float64"] = protocol["y_channel_float64"]
    for dataset in datasets:
        entry = report["datasets"][dataset]
        (measured,) = entry["images"]
        saved = cv2.imread(str(results / "visualization" / dataset / f"{image}_{suffix}.png"))
        gt = cv2.imread(measured["gt_path"])[: saved.shape[0], : saved.shape[1]]
        assert saved.shape == gt.shape == (size, size, 3)
        assert measured["psnr"] == calculate_psnr(saved, gt, crop, **y_options)
        assert measured["ssim"] == calculate_ssim(
            saved, gt, crop, **y_options, auto_downsample=protocol["auto_downsample"]
        )
        assert entry["average"] == {"psnr": measured["psnr"], "ssim": measured["ssim"]}


def test_shipped_names_differ_from_the_official_ones() -> None:
    """A run of an official file and of ours never share ``results/<name>/`` (nor do two of ours).

    The official HAT and DRCT test files name their run after the file (``name: HAT_SRx4`` in ``HAT_SRx4.yml``;
    ``HAT_tile_example.yml`` runs as ``HAT_SRx4_ImageNet-pretrain``), and ours keep the official file names.
    """
    ours = [_options(name)["name"] for name in FILES]
    assert len(ours) == len(set(ours))
    official = {Path(name).stem for name in FILES if not name.startswith("test_")} | {"HAT_SRx4_ImageNet-pretrain"}
    assert len(official) > 20
    assert not official & set(ours)
