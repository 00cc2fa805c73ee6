"""``restore/test.py``: a mini benchmark built from scikit-image photos (HR -> MATLAB-bicubic LR), run end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import torch
import yaml
from torch import nn

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.test import main
from restore.data.imresize import imresize
from restore.evaluate import run_benchmark
from restore.metrics import calculate_niqe, calculate_psnr, calculate_ssim
from restore.utils.options import load_options

REPO = Path(__file__).resolve().parents[2]
PHOTOS = Path(skimage.__file__).resolve().parent / "data"
SCALE = 2
# HR crops whose sides are not all multiples of SCALE: GT must be cropped to SCALE x LR before comparing.
CROPS = {"astronaut": (100, 100, 51, 41), "chelsea": (60, 150, 40, 47), "coffee": (120, 200, 45, 50)}
TINY_HAT = {
    "type": "HAT", "upscale": SCALE, "img_size": 16, "window_size": 4, "embed_dim": 12, "depths": [1],
    "num_heads": [2], "squeeze_factor": 4, "mlp_ratio": 2, "upsampler": "pixelshuffle",
}  # fmt: skip
SR_METRICS = {
    "psnr": {"type": "calculate_psnr", "crop_border": SCALE, "test_y_channel": True},
    "ssim": {"type": "calculate_ssim", "crop_border": SCALE, "test_y_channel": True},
}


def to_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """Benchmark LR: mod-crop, MATLAB bicubic by 1/scale in float64, rounded to 8 bits."""
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    return np.clip(np.round(imresize(hr.astype(np.float64) / 255, 1 / scale) * 255), 0, 255).astype(np.uint8)


def make_benchmark(root: Path, lr_template: str = "{}") -> tuple[Path, Path]:
    """``root/GT/<name>.png`` and ``root/LR/<lr_template(name)>.png``; returns the two folders."""
    gt_dir, lr_dir = root / "GT", root / "LR"
    gt_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for name, (y0, x0, h, w) in CROPS.items():
        hr = cv2.imread(str(PHOTOS / f"{name}.png"), cv2.IMREAD_COLOR)[y0 : y0 + h, x0 : x0 + w]
        cv2.imwrite(str(gt_dir / f"{name}.png"), hr)
        cv2.imwrite(str(lr_dir / f"{lr_template.format(name)}.png"), to_lr(hr, SCALE))
    return gt_dir, lr_dir


def write_options(target: Path, results: Path, datasets: dict, network: dict | None = None, **extra) -> Path:
    """A test option file; ``extra`` holds further top-level keys, ``path``/``metrics`` entries are merged in."""
    opt = {
        "name": "mini",
        "scale": SCALE,
        "num_gpu": 0,
        "datasets": datasets,
        "path": {"results_root": str(results), **extra.pop("path", {})},
        "val": {"save_img": True, "suffix": "sr", "pbar": False, "metrics": extra.pop("metrics", SR_METRICS)},
        **extra,
    }
    if network is not None:
        opt["network_g"] = network
    target.write_text(yaml.safe_dump(opt, sort_keys=False))
    return target


def paired(name: str, gt: Path, lq: Path, **kwargs) -> dict:
    return {"name": name, "type": "PairedImageDataset", "dataroot_gt": str(gt), "dataroot_lq": str(lq),
            "io_backend": {"type": "disk"}, **kwargs}  # fmt: skip


def read_gt(path: Path, scale: int = SCALE) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return img[: img.shape[0] - img.shape[0] % scale, : img.shape[1] - img.shape[1] % scale]


def test_end_to_end_subprocess(tmp_path: Path) -> None:
    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    _, lr_tmpl_dir = make_benchmark(tmp_path / "mini_tmpl", lr_template="{}x2")
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny_hat.pth"
    net = build_network(TINY_HAT)
    save_checkpoint(checkpoint, net, params_ema=net)
    datasets = {
        "test_1": paired("Mini", gt_dir, lr_dir),
        "test_2": paired("MiniTmpl", tmp_path / "mini_tmpl" / "GT", lr_tmpl_dir, filename_tmpl="{}x2"),
    }
    results = tmp_path / "results"
    options = write_options(tmp_path / "mini.yml", results, datasets, TINY_HAT,
                            path={"pretrain_network_g": str(checkpoint), "param_key_g": "params_ema"})  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the script must find the package itself
    proc = subprocess.run(
        [sys.executable, str(REPO / "restore" / "test.py"), "-opt", str(options), "--force_yml", "val:suffix=hat"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout

    report = json.loads((results / "metrics.json").read_text())
    with open(results / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    layouts = (("Mini", "{}"), ("MiniTmpl", "{}x2"))  # images are named after their LR files
    assert [(r["dataset"], r["image"]) for r in rows] == [
        (ds, img) for ds, tmpl in layouts for img in [*(tmpl.format(n) for n in sorted(CROPS)), "average"]
    ]
    for dataset, _ in layouts:
        entry = report["datasets"][dataset]
        assert entry["count"] == len(CROPS)
        for image in entry["images"]:
            stem = image["image"]
            saved = cv2.imread(str(results / "visualization" / dataset / f"{stem}_hat.png"), cv2.IMREAD_COLOR)
            gt = read_gt(Path(image["gt_path"]))
            assert saved.shape == gt.shape  # GT cropped to SCALE x LR (odd-sized HR)
            assert image["psnr"] == calculate_psnr(saved, gt, SCALE, test_y_channel=True)
            assert image["ssim"] == calculate_ssim(saved, gt, SCALE, test_y_channel=True)
            csv_row = next(r for r in rows if r["dataset"] == dataset and r["image"] == stem)
            assert float(csv_row["psnr"]) == image["psnr"]
        for metric in ("psnr", "ssim"):
            mean = float(np.mean([img[metric] for img in entry["images"]]))
            assert entry["average"][metric] == pytest.approx(mean, rel=1e-12)
            assert f"{metric} {mean:.4f}" in out  # the per-dataset line
            assert f"{mean:.4f}" in out.split("| dataset")[1]  # the final table
    # same images and weights: the template only renames the LR files
    assert report["datasets"]["Mini"]["average"] == report["datasets"]["MiniTmpl"]["average"]
    assert "| dataset" in out and "psnr (↑)" in out and "| Mini " in out and "| MiniTmpl " in out
    log = next(results.glob("test_*.log")).read_text()
    assert "| MiniTmpl " in log and f"loaded {checkpoint}" in log


class BicubicUpsampler(nn.Module):
    """MATLAB bicubic upscaling as a 'network' (float64 inside); the engine attributes make it a drop-in."""

    pad_multiple = 1
    clamp_output = False

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x.double(), float(self.scale)).float()


def load_prepare_script():
    spec = importlib.util.spec_from_file_location("prepare_benchmark", REPO / "scripts" / "prepare_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepared_benchmark_and_bicubic_psnr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """scripts/prepare_benchmark.py builds GTmod/LRbicx; bicubic upsampling then scores exactly the direct PSNR."""
    prepare = load_prepare_script()
    hr_dir = tmp_path / "datasets" / "Mini" / "HR"
    hr_dir.mkdir(parents=True)
    for name, (y0, x0, h, w) in CROPS.items():
        photo = cv2.imread(str(PHOTOS / f"{name}.png"), cv2.IMREAD_COLOR)
        cv2.imwrite(str(hr_dir / f"{name}.bmp"), photo[y0 : y0 + h, x0 : x0 + w])
    root = tmp_path / "datasets"
    assert prepare.main(["--root", str(root), "--datasets", "Mini", "--scales", "2", "3"]) == 0
    assert "Mini x3: 3 pairs ok" in capsys.readouterr().out
    for scale in (2, 3):
        for name in CROPS:
            hr = cv2.imread(str(hr_dir / f"{name}.bmp"), cv2.IMREAD_COLOR)
            gt = cv2.imread(str(root / "Mini" / f"GTmod{scale}" / f"{name}.png"), cv2.IMREAD_COLOR)
            lr = cv2.imread(str(root / "Mini" / f"LRbicx{scale}" / f"{name}.png"), cv2.IMREAD_COLOR)
            np.testing.assert_array_equal(gt, read_gt(hr_dir / f"{name}.bmp", scale))
            np.testing.assert_array_equal(lr, to_lr(hr, scale))

    gt_dir, lr_dir = root / "Mini" / "GTmod2", root / "Mini" / "LRbicx2"
    options = write_options(tmp_path / "bicubic.yml", tmp_path / "results", {"test_1": paired("Mini", gt_dir, lr_dir)})
    results = run_benchmark(load_options(options), net=BicubicUpsampler(SCALE))
    for row in results[0].images:
        lr = cv2.imread(str(lr_dir / f"{row['image']}.png"), cv2.IMREAD_COLOR)
        lr_unit = (lr.astype(np.float32) / 255).astype(np.float64)  # as datasets deliver it: float32 in [0, 1]
        up = imresize(lr_unit, float(SCALE))  # direct: bicubic of the LR file
        sr = np.round(np.clip(up.astype(np.float32), 0, 1) * np.float32(255)).astype(np.uint8)  # saved-PNG rounding
        direct = calculate_psnr(sr, cv2.imread(str(gt_dir / f"{row['image']}.png")), SCALE, test_y_channel=True)
        assert row["psnr"] == direct
    assert results[0].averages["psnr"] == float(np.mean([r["psnr"] for r in results[0].images]))


def test_prepare_benchmark_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prepare = load_prepare_script()
    root = tmp_path / "datasets"
    assert prepare.main(["--root", str(root), "--datasets", "Set5", "--check"]) == 1
    err = capsys.readouterr().err.strip()
    assert str(root / "Set5") in err and "datasets/README.md" in err and "\n" not in err
    gt_dir, lr_dir = make_benchmark(root / "Mini")
    (gt_dir.parent / "GTmod2").mkdir()
    for path in gt_dir.iterdir():  # not mod-cropped: astronaut is 51 pixels high
        path.rename(gt_dir.parent / "GTmod2" / path.name)
    lr_dir.rename(gt_dir.parent / "LRbicx2")
    assert prepare.main(["--root", str(root), "--datasets", "Mini", "--scales", "2", "--check"]) == 1
    assert "astronaut.png: 51x41 (HxW) is not a multiple of scale 2" in capsys.readouterr().err
    (gt_dir.parent / "LRbicx2" / "coffee.png").unlink()
    assert prepare.main(["--root", str(root), "--datasets", "Mini", "--scales", "2", "--check"]) == 1
    assert "only in GT: ['coffee']" in capsys.readouterr().err


def test_lq_only_dataset_with_niqe(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``niqe_params_path`` and no environment variable: the pristine model shipped with the package is used."""
    monkeypatch.delenv("RESTORE_NIQE_PARAMS", raising=False)
    lq_dir = tmp_path / "lq"
    lq_dir.mkdir()
    photo = cv2.imread(str(PHOTOS / "chelsea.png"), cv2.IMREAD_COLOR)
    cv2.imwrite(str(lq_dir / "cat.png"), to_lr(photo[:200, :220], SCALE))  # 100 x 110 -> 200 x 220 SR
    metrics = {**SR_METRICS, "niqe": {"type": "calculate_niqe", "crop_border": 0, "better": "lower"}}
    dataset = {"name": "Wild", "type": "SingleImageDataset", "dataroot_lq": str(lq_dir), "io_backend": {"type": "disk"}}
    options = write_options(tmp_path / "wild.yml", tmp_path / "results", {"test_1": dataset}, metrics=metrics)
    (result,) = run_benchmark(load_options(options), net=BicubicUpsampler(SCALE))
    out = capsys.readouterr().out
    assert "Wild: no ground truth, skipping psnr, ssim" in out
    assert result.metrics == ["niqe"]
    saved = cv2.imread(str(tmp_path / "results" / "visualization" / "Wild" / "cat_sr.png"), cv2.IMREAD_COLOR)
    expected = calculate_niqe(saved, 0)
    assert result.images[0]["niqe"] == expected and math.isfinite(expected)
    assert "niqe (↓)" in out and "| Wild " in out and " - " in out  # psnr/ssim columns are empty for this set


class RecordingBicubic(BicubicUpsampler):
    """Bicubic upsampler that remembers the input sizes it was called with."""

    def __init__(self, scale: int) -> None:
        super().__init__(scale)
        self.input_sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.input_sizes.append(tuple(x.shape[-2:]))
        return super().forward(x)


def test_tiled_run_through_options(tmp_path: Path) -> None:
    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    datasets = {"test_1": paired("Mini", gt_dir, lr_dir)}
    whole_net, tiled_net = RecordingBicubic(SCALE), RecordingBicubic(SCALE)
    whole = run_benchmark(load_options(write_options(tmp_path / "a.yml", tmp_path / "a", datasets)), net=whole_net)
    tiled_opt = write_options(tmp_path / "b.yml", tmp_path / "b", datasets, tile={"tile_size": 8, "tile_pad": 4})
    tiled = run_benchmark(load_options(tiled_opt), net=tiled_net)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["tile"]["tile_size"] == 8
    assert len(whole_net.input_sizes) == len(CROPS)
    assert len(tiled_net.input_sizes) > 3 * len(CROPS) and max(map(max, tiled_net.input_sizes)) <= 8 + 2 * 4
    # bicubic x2 reads 2 LR pixels around each output: 4 context pixels make the tiles seamless
    for a, b in zip(whole[0].images, tiled[0].images):
        assert b["psnr"] == pytest.approx(a["psnr"], abs=1e-9)


def _run_main(options: Path, capsys: pytest.CaptureFixture, status: int = 2) -> str:
    """stderr of a failing run: one ``restore test: error:`` line. Exit 2 when the pre-flight finds the problem
    (nothing is created under the results folder), 1 when an image fails while running."""
    assert main(["-opt", str(options), "--allow-random-weights"]) == status
    err = capsys.readouterr().err.strip()
    assert err.startswith("restore test: error: ") and "\n" not in err
    if status == 2:
        assert not (options.parent / "r").exists()
    return err


def test_error_missing_dataroot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gt_dir, _ = make_benchmark(tmp_path / "mini")
    missing = tmp_path / "nowhere" / "LRbicx2"
    options = write_options(tmp_path / "o.yml", tmp_path / "r", {"test_1": paired("Mini", gt_dir, missing)}, TINY_HAT)
    assert str(missing) in _run_main(options, capsys)


def test_error_count_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    options = write_options(tmp_path / "o.yml", tmp_path / "r", {"test_1": paired("Mini", gt_dir, lr_dir)}, TINY_HAT)
    extra = lr_dir / "zebra.png"
    cv2.imwrite(str(extra), np.zeros((8, 8, 3), np.uint8))
    assert "zebra.png" in _run_main(options, capsys)  # an LQ image without GT
    extra.unlink()
    (lr_dir / "coffee.png").unlink()
    assert str(lr_dir / "coffee.png") in _run_main(options, capsys)  # a GT image without LQ


def test_error_sr_size_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    x4 = {**TINY_HAT, "upscale": 4}  # the option file says scale 2
    options = write_options(tmp_path / "o.yml", tmp_path / "r", {"test_1": paired("Mini", gt_dir, lr_dir)}, x4)
    err = _run_main(options, capsys, status=1)
    assert str(lr_dir / "astronaut.png") in err and str(gt_dir / "astronaut.png") in err
    assert "100x80" in err and "50x40" in err  # restored vs GT, HxW
    log = next((tmp_path / "r").glob("test_*.log")).read_text()
    assert err.removeprefix("restore test: ") in log  # the failure is in the run's log as well


def test_prepare_checks_deraining_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prepare = load_prepare_script()
    root = tmp_path / "datasets"
    test_dir = root / "deraining" / "Rain200H" / "test"
    for side in ("input", "target"):
        (test_dir / side).mkdir(parents=True)
        for i, name in enumerate(CROPS, start=1):
            photo = cv2.imread(str(PHOTOS / f"{name}.png"), cv2.IMREAD_COLOR)[:32, :40]
            cv2.imwrite(str(test_dir / side / f"{i}.png"), photo)
    assert prepare.main(["--root", str(root), "--deraining", "--datasets", "Rain200H"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Rain200H/train: absent", "Rain200H/test: 3 pairs ok"]
    cv2.imwrite(str(test_dir / "input" / "2.png"), np.zeros((32, 38, 3), np.uint8))
    assert prepare.main(["--root", str(root), "--deraining", "--datasets", "Rain200H"]) == 1
    assert f"{test_dir / 'input' / '2.png'}: 32x38 (HxW), expected 32x40" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--device", "foo"], "--device 'foo': expected cpu, cuda or cuda:N"),
        (["--force_yml", "network_g:embed_dim=abc"], "network_g.embed_dim: expected int, got str 'abc'"),
    ],
)
def test_unusable_device_or_option_value_exits_2_in_one_line(
    extra: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    if extra[0] == "--device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    options = Path(__file__).resolve().parents[2] / "options" / "test" / "HAT_SRx4.yml"
    assert main(["-opt", str(options), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("restore test: error: ") for line in lines)
    assert expected in lines[0]
    if extra[0] == "--device":
        assert len(lines) == 1  # checked before the option file is read
    else:  # the pre-flight goes on: the weights are missing too (and the datasets, unless prepared)
        weights = "restore test: error: path.pretrain_network_g: "
        assert any(line.startswith(weights) and line.endswith(": checkpoint file not found") for line in lines[1:])


def test_image_out_of_memory_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Out of memory even after the engine's re-tiling: exit 1, one line naming the image, in the log too."""
    import restore.engine

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nsee the allocator's notes")

    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    options = write_options(tmp_path / "o.yml", tmp_path / "r", {"test_1": paired("Mini", gt_dir, lr_dir)}, TINY_HAT)
    monkeypatch.setattr(restore.engine, "infer", no_memory)
    err = _run_main(options, capsys, status=1)
    assert err == f"restore test: error: {lr_dir / 'astronaut.png'}: CUDA out of memory. Tried to allocate 2.00 GiB"
    log = next((tmp_path / "r").glob("test_*.log")).read_text()
    assert err.removeprefix("restore test: ") in log


def test_an_unexpected_runtime_error_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only machine limits become one-line errors; anything else is a bug to report, raised as it is."""
    import restore.engine

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    gt_dir, lr_dir = make_benchmark(tmp_path / "mini")
    options = write_options(tmp_path / "o.yml", tmp_path / "r", {"test_1": paired("Mini", gt_dir, lr_dir)}, TINY_HAT)
    monkeypatch.setattr(restore.engine, "infer", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["-opt", str(options), "--allow-random-weights"])
