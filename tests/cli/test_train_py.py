"""``restore/train.py`` as a user runs it: a subprocess, single-process and under torchrun with 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from train_helpers import photo, train_options, write_options, write_rgb

from restore.archs import build_network
from restore.train import main as train_main

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "restore" / "train.py"


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the script must find the package by itself
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _sgd_options(tmp: Path, name: str, batch: int) -> dict:
    opt = train_options(tmp, name=name, train={"total_iter": 3, "ema_decay": 0.5}, val={"val_freq": 100})
    opt["train"]["optim_g"] = {"type": "SGD", "lr": 0.5}  # gradients show unscaled in the weights
    opt["datasets"]["train"]["batch_size_per_gpu"] = batch
    opt["logger"]["save_checkpoint_freq"] = 3
    return opt


def test_ddp_two_cpu_processes_match_one_process_with_the_global_batch(tmp_path: Path) -> None:
    single = write_options(tmp_path, _sgd_options(tmp_path, "single", batch=2), "single.yml")
    ddp = write_options(tmp_path, _sgd_options(tmp_path, "ddp", batch=1), "ddp.yml")
    done = _run([sys.executable, str(SCRIPT), "-opt", str(single)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = _run([*torchrun, str(SCRIPT), "-opt", str(ddp), "--launcher", "pytorch"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    root = tmp_path / "experiments"
    log = (root / "ddp" / "train_ddp.log").read_text()
    assert log.count("start training") == 1 and "2 process(es)" in log  # only rank 0 logs
    state = torch.load(root / "ddp" / "training_states" / "3.state", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    a = torch.load(root / "single" / "models" / "net_g_latest.pth", weights_only=True)
    b = torch.load(root / "ddp" / "models" / "net_g_latest.pth", weights_only=True)
    torch.manual_seed(7)  # manual_seed of the options: the network the runs started from
    start = build_network(_sgd_options(tmp_path, "x", 1)["network_g"]).state_dict()
    for group in ("params", "params_ema"):
        moved = torch.cat([(a[group][k] - start[k]).flatten() for k in start])
        gap = torch.cat([(a[group][k] - b[group][k]).flatten() for k in start])
        assert moved.norm() > 1e-3 and gap.norm() < 1e-4 * moved.norm(), group


def test_deraining_run_with_progressive_patches(tmp_path: Path) -> None:
    """DRSformer option names end to end: Dataset_PairedImage, mini-batch/patch stages, cyclic cosine, grad clip."""
    img = photo()
    for i in range(4):
        clean = img[40 * i : 40 * i + 24, 30 * i : 30 * i + 24]
        rainy = clean.astype(np.int16)
        rainy[:, ::5] += 60  # vertical streaks
        write_rgb(tmp_path / "target" / f"{i}.png", clean)
        write_rgb(tmp_path / "input" / f"{i}.png", np.clip(rainy, 0, 255).astype(np.uint8))
    opt = {
        "name": "derain",
        "model_type": "ImageCleanModel",
        "scale": 1,
        "num_gpu": 0,
        "manual_seed": 100,
        "datasets": {
            "train": {
                "name": "TrainSet",
                "type": "Dataset_PairedImage",
                "dataroot_gt": str(tmp_path / "target"),
                "dataroot_lq": str(tmp_path / "input"),
                "geometric_augs": True,
                "filename_tmpl": "{}",
                "io_backend": {"type": "disk"},
                "use_shuffle": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 2,
                "mini_batch_sizes": [1, 2],
                "iters": [2, 2],
                "gt_size": 16,
                "gt_sizes": [8, 16],
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
            },
            "val": {
                "name": "ValSet",
                "type": "Dataset_PairedImage",
                "dataroot_gt": str(tmp_path / "target"),
                "dataroot_lq": str(tmp_path / "input"),
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": {
            "type": "DRSformer",
            "inp_channels": 3,
            "out_channels": 3,
            "dim": 8,
            "num_blocks": [1, 1, 1, 1],
            "heads": [1, 2, 4, 8],
            "ffn_expansion_factor": 2.66,
            "bias": False,
            "LayerNorm_type": "WithBias",
        },
        "path": {"experiments_root": str(tmp_path / "exp"), "pretrain_network_g": None, "strict_load_g": True},
        "train": {
            "total_iter": 4,
            "warmup_iter": -1,
            "use_grad_clip": True,
            "scheduler": {
                "type": "CosineAnnealingRestartCyclicLR",
                "periods": [2, 2],
                "restart_weights": [1, 1],
                "eta_mins": [3e-4, 1e-6],
            },
            "mixing_augs": {"mixup": True, "mixup_beta": 1.2, "use_identity": True},
            "optim_g": {"type": "AdamW", "lr": 3e-4, "weight_decay": 1e-4, "betas": [0.9, 0.999]},
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1, "reduction": "mean"},
        },
        "val": {
            "window_size": 8,
            "val_freq": 4,
            "save_img": True,
            "rgb2bgr": True,
            "use_image": True,
            "max_minibatch": 8,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": True}},
        },
        "logger": {"print_freq": 2, "save_checkpoint_freq": 4, "use_tb_logger": False},
    }
    done = _run([sys.executable, str(SCRIPT), "-opt", str(write_options(tmp_path, opt))], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    root = tmp_path / "exp"
    log = (root / "train_derain.log").read_text()
    assert "validation ValSet at iteration 4" in log and (root / "models" / "net_g_4.pth").is_file()
    assert (root / "visualization" / "0" / "0_4.png").is_file()
    assert (root / "train.yml").is_file()  # the option file is kept with the run


def test_size_mismatch_fails_with_one_line_naming_the_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    opt = train_options(tmp_path, name="bad")
    gt_dir = Path(opt["datasets"]["train"]["dataroot_gt"])
    write_rgb(gt_dir / "002.png", photo()[:30, :30])  # LQ stays 12x12, GT is now 30x30 at scale 2
    assert train_main(["-opt", str(write_options(tmp_path, opt))]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("restore train: error: size mismatch at scale 2: GT ") and "002.png is 30x30" in last
    assert "lq/002.png is 12x12" in last


@pytest.mark.parametrize("flag", ["--launcher=slurm", "--bogus"])
def test_bad_arguments_exit_with_usage(flag: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_main(["-opt", "x.yml", flag])
    assert exit_info.value.code == 2 and "usage: restore train" in capsys.readouterr().err


def test_missing_option_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train_main(["-opt", str(tmp_path / "none.yml")]) == 2
    assert capsys.readouterr().err.strip() == f"restore train: error: {tmp_path / 'none.yml'}: option file not found"
