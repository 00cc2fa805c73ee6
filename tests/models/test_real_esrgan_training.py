"""End-to-end Real-ESRGAN-style runs (tiny HAT, tiny crops) on CPU: MSE stage, GAN stage, exact resumption."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from real_helpers import (
    SMALL_PERCEPTUAL,
    TINY_D,
    make_gt_folder,
    random_vgg19_weights,
    real_options,
    tiny_crop,  # noqa: F401 - fixture
)
from train_helpers import deep_update, make_pairs, train_options, write_options

from restore.commands.train import main


def _run(opt_file: Path, *extra: str) -> int:
    return main(["-opt", str(opt_file), *extra])


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_equal_tensors(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        if isinstance(a[key], dict):
            _assert_equal_tensors(a[key], b[key], f"{where}.{key}")
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{where}.{key} differs"


def _resume_and_compare(ref_root: Path, opt: dict, tmp: Path, keep: int, extra_models: tuple[str, ...] = ()) -> Path:
    name = f"resumed_{keep}"
    opt = dict(opt, name=name, path=dict(opt["path"], experiments_root=str(tmp / "experiments" / name)))
    root = tmp / "experiments" / name
    for sub in ("models", "training_states"):
        (root / sub).mkdir(parents=True)
    for prefix in ("net_g", *extra_models):
        shutil.copy(ref_root / "models" / f"{prefix}_{keep}.pth", root / "models")
    shutil.copy(ref_root / "training_states" / f"{keep}.state", root / "training_states")
    assert _run(write_options(tmp, opt, f"{name}.yml"), "--auto_resume") == 0
    assert "resumed from" in (root / f"train_{name}.log").read_text()
    for prefix in ("net_g", *extra_models):
        ours, theirs = root / "models" / f"{prefix}_6.pth", ref_root / "models" / f"{prefix}_6.pth"
        _assert_equal_tensors(_load(ours), _load(theirs), prefix)
    return root


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_crop")
def test_mse_stage_trains_and_resumes_bit_identically(tmp_path: Path) -> None:
    opt = real_options(tmp_path, gan=False, name="mse")
    assert _run(write_options(tmp_path, opt)) == 0
    root = tmp_path / "experiments" / "mse"
    log = (root / "train_mse.log").read_text()
    assert re.search(r"iter:\s+6, .*l_pix: \d", log)
    state = _load(root / "training_states" / "2.state")
    pool = state["model"]["pool"]
    assert pool["filled"] == 4 and pool["lq"]["uint8"].shape == (4, 3, 8, 8)  # LQ on the 8-bit grid: stored as uint8
    assert sorted(p.name for p in (root / "models").iterdir()) == [
        "net_g_2.pth", "net_g_4.pth", "net_g_6.pth", "net_g_latest.pth"
    ]  # fmt: skip
    # the pool is full after 2 batches of 2: the resumed run restores it and replays 4 iterations of swaps
    _resume_and_compare(root, opt, tmp_path, keep=2)


@pytest.fixture(scope="module")
def small_vgg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_vgg19_weights(tmp_path_factory.mktemp("vgg") / "vgg19_small.pth", stages=2)


@pytest.fixture
def gan_reference(tmp_path: Path, small_vgg: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    import restore.data.real_esrgan as data

    monkeypatch.setattr(data, "CROP_PAD_SIZE", 48)
    val_dir = make_gt_folder(tmp_path / "val", count=2, sizes=((12, 10),))
    opt = real_options(
        tmp_path,
        gan=True,
        name="gan",
        datasets={"val": {"name": "real_photos", "type": "SingleImageDataset", "dataroot_lq": str(val_dir)}},
        val={"val_freq": 3, "save_img": True},
    )
    opt["train"]["perceptual_opt"] = dict(SMALL_PERCEPTUAL, vgg_weights=str(small_vgg))
    assert _run(write_options(tmp_path, opt)) == 0
    return tmp_path / "experiments" / "gan", opt


@pytest.mark.slow
def test_gan_stage_logs_checkpoints_validates_and_resumes_bit_identically(
    gan_reference: tuple[Path, dict], tmp_path: Path
) -> None:
    root, opt = gan_reference
    log = (root / "train_gan.log").read_text()
    line = re.findall(r"iter:\s+6, .*", log)[0]
    for term in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "out_d_real", "l_d_fake", "out_d_fake"):
        assert re.search(rf"{term}: -?\d", line), term
    models = sorted(p.name for p in (root / "models").iterdir())
    assert models == [f"net_{n}_{i}.pth" for n in "dg" for i in (2, 4, 6, "latest")]
    net_d = _load(root / "models" / "net_d_6.pth")
    assert set(net_d) == {"params"} and any(k.endswith("weight_orig") for k in net_d["params"])
    _assert_equal_tensors(net_d, _load(root / "models" / "net_d_latest.pth"))
    state = _load(root / "training_states" / "4.state")["model"]
    assert {"net_d", "optimizer_d", "lr_d", "pool", "optimizer"} <= set(state)
    saved = sorted(p.relative_to(root / "visualization").as_posix() for p in (root / "visualization").rglob("*.png"))
    assert saved == [f"{s}/{s}_{i}.png" for s in ("000", "001") for i in (3, 6)]  # SingleImageDataset outputs
    _resume_and_compare(root, opt, tmp_path, keep=2, extra_models=("net_d",))


def _paired_gan_options(tmp: Path, name: str, batch: int, vgg: Path, **extra: object) -> dict:
    opt = train_options(tmp, name=name, scale=2, train={"total_iter": 3, "ema_decay": 0.5}, val={"val_freq": 100})
    opt.update(
        model_type="RealESRGANModel",
        high_order_degradation=False,
        l1_gt_usm=True,
        percep_gt_usm=True,
        gan_gt_usm=False,
        network_d=dict(TINY_D),
    )
    opt["train"].update(
        optim_g={"type": "SGD", "lr": 0.5},
        optim_d={"type": "SGD", "lr": 0.5},
        perceptual_opt=dict(SMALL_PERCEPTUAL, vgg_weights=str(vgg)),
        gan_opt={"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1},
    )
    gt_dir, lq_dir = make_pairs(tmp / "data" / "train_x2_32", 2, count=6, size=32)  # USM needs sides > 25
    opt["datasets"]["train"].update(
        dataroot_gt=str(gt_dir), dataroot_lq=str(lq_dir), gt_size=32, batch_size_per_gpu=batch
    )
    opt["logger"]["save_checkpoint_freq"] = 3
    return deep_update(opt, extra)


@pytest.mark.slow
def test_gan_ddp_two_cpu_processes_match_one_process(tmp_path: Path, small_vgg: Path) -> None:
    """torchrun with 2 CPU processes: D in DDP (frozen in the generator step) gives the single-process result."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    script = Path(__file__).resolve().parents[2] / "restore" / "train.py"
    single = write_options(tmp_path, _paired_gan_options(tmp_path, "single", 2, small_vgg), "single.yml")
    ddp = write_options(tmp_path, _paired_gan_options(tmp_path, "ddp", 1, small_vgg), "ddp.yml")
    runs = (
        [sys.executable, str(script), "-opt", str(single)],
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), "-opt",
         str(ddp), "--launcher", "pytorch"],
    )  # fmt: skip
    for args in runs:
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    root = tmp_path / "experiments"
    assert "l_d_fake" in (root / "ddp" / "train_ddp.log").read_text()
    assert "validation tiny_val at iteration 3:\n\t# psnr: " in (root / "single" / "train_single.log").read_text()
    for prefix, group in (("net_g", "params"), ("net_g", "params_ema"), ("net_d", "params")):
        a = _load(root / "single" / "models" / f"{prefix}_3.pth")[group]
        b = _load(root / "ddp" / "models" / f"{prefix}_3.pth")[group]
        for key in a:  # up to float summation order
            scale = float(a[key].float().norm()) + 1e-6
            assert float((a[key] - b[key]).float().norm()) < 1e-4 * scale, f"{prefix}.{group}.{key}"
