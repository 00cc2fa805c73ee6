"""``restore test`` loads the weights BasicSR loads and runs what it says it runs.

Covered: ``param_key_g`` (default ``params``, absent key -> ``params`` with BasicSR's log line), ``manual_seed``,
refusal of random weights and of unsafe fp16 (before the checkpoint is read), archived results folders, the
tiling report, and no metrics files when nothing is measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.test import main
from restore.engine.loading import load_model
from restore.evaluate import run_benchmark
from restore.utils.options import load_options

SCALE = 2
TINY_HAT = {
    "type": "HAT", "upscale": SCALE, "img_size": 16, "window_size": 4, "embed_dim": 12, "depths": [1],
    "num_heads": [2], "squeeze_factor": 4, "mlp_ratio": 2, "upsampler": "pixelshuffle",
}  # fmt: skip
METRICS = {
    "psnr": {"type": "calculate_psnr", "crop_border": SCALE, "test_y_channel": True},
    "ssim": {"type": "calculate_ssim", "crop_border": SCALE, "test_y_channel": True},
}


def make_pairs(root: Path, sizes: tuple[tuple[int, int], ...] = ((24, 28), (20, 32))) -> tuple[Path, Path]:
    """``root/GT`` and ``root/LR`` with random images: GT (h*2, w*2), LR (h, w)."""
    rng = np.random.default_rng(0)
    gt_dir, lr_dir = root / "GT", root / "LR"
    gt_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        gt = rng.integers(0, 256, (h * SCALE, w * SCALE, 3), dtype=np.uint8)
        cv2.imwrite(str(gt_dir / f"img{i}.png"), gt)
        cv2.imwrite(str(lr_dir / f"img{i}.png"), cv2.resize(gt, (w, h), interpolation=cv2.INTER_AREA))
    return gt_dir, lr_dir


def write_options(target: Path, gt_dir: Path | None, lr_dir: Path, checkpoint: Path | None, **extra) -> Path:
    dataset = {"name": "Mini", "type": "PairedImageDataset", "dataroot_gt": str(gt_dir), "dataroot_lq": str(lr_dir)}
    if gt_dir is None:
        dataset = {"name": "Mini", "type": "SingleImageDataset", "dataroot_lq": str(lr_dir)}
    opt = {
        "name": "fidelity",
        "scale": SCALE,
        "num_gpu": 0,
        "datasets": {"test_1": dataset},
        "network_g": TINY_HAT,
        "path": {"results_root": str(target.parent / "results"), "pretrain_network_g": checkpoint and str(checkpoint),
                 **extra.pop("path", {})},
        "val": {"save_img": False, "pbar": False, "metrics": METRICS},
        **extra,
    }  # fmt: skip
    target.write_text(yaml.safe_dump(opt, sort_keys=False))
    return target


@pytest.fixture(scope="module")
def two_nets() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(1)
    plain = build_network(TINY_HAT)
    torch.manual_seed(2)
    ema = build_network(TINY_HAT)
    return plain.eval(), ema.eval()


@pytest.fixture
def checkpoint(tmp_path: Path, two_nets) -> Path:
    """``params`` and ``params_ema`` hold different weights."""
    path = tmp_path / "net.pth"
    save_checkpoint(path, two_nets[0], params_ema=two_nets[1])
    return path


def psnrs(results: list) -> list[float]:
    return [img["psnr"] for img in results[0].images]


def test_param_key_follows_basicsr(tmp_path: Path, checkpoint: Path, two_nets, capsys) -> None:
    gt_dir, lr_dir = make_pairs(tmp_path / "data")
    plain, ema = two_nets
    reference = write_options(tmp_path / "ref.yml", gt_dir, lr_dir, None, path={"results_root": str(tmp_path / "r")})
    expected_plain = psnrs(run_benchmark(load_options(reference), net=plain))
    expected_ema = psnrs(run_benchmark(load_options(reference), net=ema))
    assert expected_plain != expected_ema
    capsys.readouterr()

    cases = [(None, "params", expected_plain), ("params_ema", "params_ema", expected_ema),
             ("params_missing", "params", expected_plain)]  # fmt: skip
    for i, (key, loaded, expected) in enumerate(cases):
        paths = {"results_root": str(tmp_path / f"run{i}"), **({"param_key_g": key} if key else {})}
        options = write_options(tmp_path / f"o{i}.yml", gt_dir, lr_dir, checkpoint, path=paths)
        assert psnrs(run_benchmark(load_options(options))) == expected
        out = capsys.readouterr().out
        assert f"Loading HAT model from {checkpoint}, with param key: [{loaded}]." in out
        assert ("Loading: params_missing does not exist, use params." in out) == (key == "params_missing")
        log = next((tmp_path / f"run{i}").glob("test_*.log")).read_text()
        assert f"with param key: [{loaded}]" in log

    # restore infer --weights keeps its params_ema-first rule
    model = load_model(checkpoint)
    for name, value in model.net.state_dict().items():
        torch.testing.assert_close(value, ema.state_dict()[name], rtol=0, atol=0)


def test_manual_seed_makes_random_weight_runs_repeatable(tmp_path: Path, capsys) -> None:
    gt_dir, lr_dir = make_pairs(tmp_path / "data")
    options = write_options(tmp_path / "o.yml", gt_dir, lr_dir, None, manual_seed=7)
    runs = []
    for force in ([], [], ["--force_yml", "manual_seed=8"]):
        assert main(["-opt", str(options), "--allow-random-weights", *force]) == 0
        runs.append(json.loads((tmp_path / "results" / "metrics.json").read_text())["datasets"]["Mini"]["average"])
    assert runs[0] == runs[1]
    assert runs[2] != runs[0]
    assert "manual_seed 7" in capsys.readouterr().out


def test_empty_pretrain_network_g_is_refused(tmp_path: Path, capsys) -> None:
    gt_dir, lr_dir = make_pairs(tmp_path / "data")
    options = write_options(tmp_path / "o.yml", gt_dir, lr_dir, None)
    assert main(["-opt", str(options)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(options) in err
    assert "path.pretrain_network_g is empty" in err and "--allow-random-weights" in err
    assert not (tmp_path / "results").exists()  # refused before anything is written


def test_fp16_is_refused_before_the_checkpoint_is_read(tmp_path: Path, capsys) -> None:
    gt_dir, lr_dir = make_pairs(tmp_path / "data")
    garbage = tmp_path / "broken.pth"
    garbage.write_bytes(b"not a checkpoint")  # reading it would fail with a different message
    options = write_options(tmp_path / "o.yml", gt_dir, lr_dir, garbage, precision="fp16")
    assert main(["-opt", str(options)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "precision 'fp16' refused for HAT" in err and "bf16" in err
    assert main(["-opt", str(options), "--force_yml", "precision=fp32"]) == 2  # unusable weights
    assert "broken.pth" in capsys.readouterr().err  # with fp32 the checkpoint is read (and rejected)


def test_rerun_archives_the_previous_results(tmp_path: Path, checkpoint: Path, capsys) -> None:
    gt_dir, lr_dir = make_pairs(tmp_path / "data")
    options = write_options(tmp_path / "o.yml", gt_dir, lr_dir, checkpoint, val={"save_img": True, "pbar": False,
                                                                                    "metrics": METRICS})  # fmt: skip
    results = tmp_path / "results"
    assert main(["-opt", str(options)]) == 0
    first = (results / "metrics.csv").read_text()
    capsys.readouterr()
    assert main(["-opt", str(options), "--force_yml", "val:save_img=false"]) == 0
    out = capsys.readouterr().out
    (archived,) = tmp_path.glob("results_archived_*")
    assert sum("previous results moved to" in line for line in out.splitlines()) == 1
    assert f"{results} already exists: previous results moved to {archived}" in out
    assert (archived / "metrics.csv").read_text() == first  # the first run is kept whole, images and log included
    assert len(list(archived.glob("test_*.log"))) == 1 and len(list(results.glob("test_*.log"))) == 1
    assert (archived / "visualization" / "Mini" / "img0_fidelity.png").is_file()
    assert not (results / "visualization").exists()


@pytest.mark.parametrize(("tile", "tiled"), [(64, 0), (8, 2)])
def test_log_says_whether_tiles_ran(tmp_path: Path, checkpoint: Path, tile: int, tiled: int, capsys) -> None:
    gt_dir, lr_dir = make_pairs(tmp_path / "data")
    options = write_options(tmp_path / "o.yml", gt_dir, lr_dir, checkpoint, tile={"tile_size": tile, "tile_pad": 4})
    assert main(["-opt", str(options)]) == 0
    out = capsys.readouterr().out
    assert f"tile_size {tile} with tile_pad 4" in out
    assert "Mini: 2 images" in out and f"tiled {tiled}, whole {2 - tiled}" in out
    report = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert report["datasets"]["Mini"]["tiled"] == tiled


def test_nothing_to_measure_writes_no_metrics_files(tmp_path: Path, checkpoint: Path, capsys) -> None:
    _, lr_dir = make_pairs(tmp_path / "data")
    options = write_options(tmp_path / "o.yml", None, lr_dir, checkpoint)  # LQ only, full-reference metrics
    assert main(["-opt", str(options), "--force_yml", "val:save_img=true"]) == 0
    results = tmp_path / "results"
    assert not (results / "metrics.csv").exists() and not (results / "metrics.json").exists()
    assert len(list((results / "visualization" / "Mini").glob("*.png"))) == 2
    assert "no metrics.csv/metrics.json written" in capsys.readouterr().out
