"""``restore test`` and ``restore train`` check everything first: every problem in one run, nothing created.

The real commands run in a subprocess from a scratch folder (so ``results/`` and ``experiments/`` would appear
there): each failing case checks the exit status, the number of error lines, their prefix and the key facts, and
that no run folder was created or archived. A tiny successful training checks that the terminal stays short before
the first iteration while the log file holds the full option dump.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from train_helpers import train_options, write_options

REPO = Path(__file__).resolve().parents[2]
REAL_GAN = REPO / "options" / "train" / "train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml"


def restore(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RESTORE_VGG_WEIGHTS"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "restore.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def error_lines(done: subprocess.CompletedProcess[str], prog: str) -> list[str]:
    """The stderr lines, each checked to be one ``<prog>: error:`` line (no traceback, no log output)."""
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{prog}: error: ") for line in lines), done.stderr
    return [line.removeprefix(f"{prog}: error: ") for line in lines]


def test_real_world_file_reports_data_size_weights_and_vgg_in_one_run(tmp_path: Path) -> None:
    data = tmp_path / "my_photos"
    data.mkdir()
    cv2.imwrite(str(data / "one.png"), np.zeros((300, 300, 3), np.uint8))
    done = restore(tmp_path, "train", "-opt", REAL_GAN, "--force_yml", f"datasets:train:dataroot_gt={data}")
    assert done.returncode == 2
    lines = error_lines(done, "restore train")
    assert len(lines) == 3, lines
    assert lines[0] == f"path.pretrain_network_g: {tmp_path / 'experiments/pretrained_models/Real_HAT_x4.pth'}: " \
        "checkpoint file not found"  # fmt: skip
    assert lines[1].startswith("train.perceptual_opt: vgg19 weights not found") and "dcbb9e9d" in lines[1]
    assert lines[2].startswith("datasets.train: 1 sample(s) per process per epoch (1 image(s)), fewer than ")
    assert "batch_size_per_gpu=4" in lines[2]
    assert not (tmp_path / "experiments").exists()


def test_train_typos_and_missing_folders_together_and_no_archive(tmp_path: Path) -> None:
    opt = train_options(tmp_path, name="run")
    opt["train"]["pixel_opt"]["loss_weigth"] = opt["train"]["pixel_opt"].pop("loss_weight")
    opt["val"]["metrics"]["psnr"]["crop_bordr"] = opt["val"]["metrics"]["psnr"].pop("crop_border")
    opt["datasets"]["val"]["dataroot_lq"] = str(tmp_path / "nowhere")
    opt["path"].pop("experiments_root")
    opt_file = write_options(tmp_path, opt)
    earlier = tmp_path / "experiments" / "run"
    (earlier / "models").mkdir(parents=True)
    done = restore(tmp_path, "train", "-opt", opt_file)
    assert done.returncode == 2
    lines = error_lines(done, "restore train")
    assert lines == [
        f"{opt_file}: val.metrics.psnr.crop_bordr: unknown key; did you mean 'crop_border'?",
        f"{opt_file}: train.pixel_opt.loss_weigth: unknown key; did you mean 'loss_weight'?",
        f"{tmp_path / 'nowhere'}: dataroot_lq folder not found",
    ]
    assert sorted(p.name for p in (tmp_path / "experiments").iterdir()) == ["run"]  # not archived


def test_test_reports_every_problem_and_creates_no_results(tmp_path: Path) -> None:
    opt = {
        "name": "bench",
        "scale": 2,
        "datasets": {"test_1": {"name": "A", "type": "PairedImageDataset", "dataroot_gt": "gone/gt"},
                     "test_2": {"name": "B", "type": "PairedImageDataset", "dataroot_gt": "gone/b",
                                "dataroot_lq": "gone/lq"}},
        "network_g": {"type": "HAT", "upscale": 2, "embed_dim": 12, "depths": [1], "num_heads": [2]},
        "path": {"pretrain_network_g": "weights"},
        "val": {"metrics": {"psnr": {"type": "calculate_psnr", "crop_bordr": 2},
                            "lpips": {"type": "calculate_lpip"}}},
    }  # fmt: skip
    (tmp_path / "weights").mkdir()
    (tmp_path / "o.yml").write_text(yaml.safe_dump(opt, sort_keys=False), encoding="utf-8")
    done = restore(tmp_path, "test", "-opt", "o.yml")
    assert done.returncode == 2
    lines = error_lines(done, "restore test")
    assert lines == [
        "o.yml: val.metrics.psnr.crop_bordr: unknown key; did you mean 'crop_border'?",
        "o.yml: val.metrics.lpips.type: unknown metric type 'calculate_lpip'; did you mean 'calculate_lpips'?",
        f"path.pretrain_network_g: {tmp_path / 'weights'}: is a folder, expected a checkpoint file",
        f"{tmp_path / 'gone/gt'}: dataroot_gt folder not found",
        f"{tmp_path / 'gone/b'}: dataroot_gt folder not found",
    ]
    assert not (tmp_path / "results").exists()


def test_train_terminal_is_short_and_the_log_holds_the_options(tmp_path: Path) -> None:
    opt = train_options(tmp_path, name="short", train={"total_iter": 1}, logger={"print_freq": 1})
    opt["path"].pop("experiments_root")
    done = restore(tmp_path, "train", "-opt", write_options(tmp_path, opt))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    first = next(i for i, line in enumerate(lines) if "iter:" in line)
    assert first <= 10, lines[:first]
    head = "\n".join(lines[:first])
    assert "model_type HATModel, network_g HAT" in head and "device cpu" in head
    assert str(tmp_path / "experiments" / "short" / "train_short.log") in head
    assert "options:" not in done.stderr and "dataroot_gt" not in done.stderr
    log = (tmp_path / "experiments" / "short" / "train_short.log").read_text()
    assert "options:" in log and "dataroot_gt" in log


def test_test_script_errors_carry_the_command_prefix(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "restore" / "test.py"), "-opt", "none.yml"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["restore test: error: none.yml: option file not found"]


def test_test_without_dataroot_lq_says_how_the_lq_is_made(tmp_path: Path) -> None:
    gt = tmp_path / "gt"
    gt.mkdir()
    cv2.imwrite(str(gt / "a.png"), np.full((16, 16, 3), 128, np.uint8))
    opt = {
        "name": "gt_only",
        "scale": 2,
        "datasets": {"test_1": {"name": "G", "type": "PairedImageDataset", "dataroot_gt": "gt"}},
        "network_g": {"type": "HAT", "upscale": 2, "img_size": 8, "window_size": 4, "embed_dim": 8,
                      "depths": [1], "num_heads": [2], "upsampler": "pixelshuffle", "compress_ratio": 2,
                      "squeeze_factor": 4},
        "val": {"pbar": False, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2}}},
    }  # fmt: skip
    (tmp_path / "o.yml").write_text(yaml.safe_dump(opt, sort_keys=False), encoding="utf-8")
    done = restore(tmp_path, "test", "-opt", "o.yml", "--allow-random-weights")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    said = [line for line in lines if "no dataroot_lq" in line]
    assert said == ["datasets.test_1: no dataroot_lq: the LQ images are made from the GT by MATLAB bicubic "
                    "downscaling by 2"]  # fmt: skip
    assert lines.index(said[0]) < 3  # before the network runs
    first_result = next(i for i, line in enumerate(lines) if line.startswith("G: 1 images"))
    assert first_result <= 10 and f"results and log go to {tmp_path / 'results' / 'gt_only'}" in lines[:first_result]


def test_custom_fine_tuning_file_as_shipped_lists_what_to_provide(tmp_path: Path) -> None:
    done = restore(tmp_path, "train", "-opt", REPO / "options" / "train" / "finetune_Real_HAT_GAN_custom.yml")
    assert done.returncode == 2
    lines = error_lines(done, "restore train")
    assert len(lines) == 3, lines
    assert lines[0].startswith("path.pretrain_network_g: ") and lines[0].endswith("checkpoint file not found")
    assert "vgg19 weights not found" in lines[1]
    assert lines[2] == f"{tmp_path / 'datasets/MyPhotos/HR_sub'}: datasets.MyPhotos.dataroot_gt folder not found"
    assert not (tmp_path / "experiments").exists()
