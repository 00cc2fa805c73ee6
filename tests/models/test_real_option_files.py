"""The official Real-HAT / Real-DRCT option files (and our fine-tuning recipe) run through the training CLI.

Each file is used as shipped; ``--force_yml`` only points it at a tiny GT folder and tiny weights and shrinks the
networks, the batch and the pool, as a user would for a smoke test. Bad input stops before the first iteration with
one line naming the key or file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from real_helpers import (
    make_gt_folder,
    random_vgg19_weights,
    tiny_crop,  # noqa: F401 - fixture
)

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.train import main
from restore.utils.options import load_options

OPTIONS = Path(__file__).resolve().parents[2] / "options" / "train"
REAL_FILES = [
    "train_Real_HAT_SRx4_mse_model.yml",
    "train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml",
    "train_Real_DRCT_SRx4_mse_model.yml",
    "train_Real_DRCT_SRx4_finetune_from_mse_model.yml",
    "finetune_Real_HAT_GAN_custom.yml",
]
TINY_NETWORKS = [
    "network_g:img_size=8",
    "network_g:window_size=4",
    "network_g:depths=[1]",
    "network_g:num_heads=[2]",
    "network_g:embed_dim=8",
    "network_g:compress_ratio=2",
    "network_g:squeeze_factor=4",
]


@pytest.fixture(scope="module")
def vgg19(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights with the shapes of torchvision's vgg19 features (the official layers reach conv5_4)."""
    return random_vgg19_weights(tmp_path_factory.mktemp("vgg") / "vgg19-random.pth")


def _overrides(tmp: Path, name: str, filename: str) -> list[str]:
    gt = make_gt_folder(tmp / name / "data", count=4)
    gan = "network_d" in yaml.safe_load((OPTIONS / filename).read_text())
    return [
        f"name={name}",
        "num_gpu=0",
        f"path:experiments_root={tmp / 'experiments' / name}",
        f"datasets:train:dataroot_gt={gt}",
        "datasets:train:num_worker_per_gpu=0",
        "datasets:train:batch_size_per_gpu=2",
        "queue_size=4",
        "gt_size=32",
        "train:total_iter=2",
        "logger:save_checkpoint_freq=2",
        "logger:use_tb_logger=false",
        *TINY_NETWORKS,
        *(["network_d:num_feat=4"] if gan else []),
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_crop")
@pytest.mark.parametrize("filename", REAL_FILES)
def test_real_option_file_runs_two_iterations(
    filename: str, tmp_path: Path, vgg19: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTORE_VGG_WEIGHTS", str(vgg19))
    path = OPTIONS / filename
    name = path.stem.replace("train_", "t_")
    overrides = _overrides(tmp_path, name, filename)
    opt = load_options(path, force_yml=overrides, is_train=True)
    gan = "network_d" in opt
    if opt["path"].get("pretrain_network_g"):  # the GAN stage starts from the MSE stage's EMA weights
        net = build_network(opt["network_g"])
        weights = save_checkpoint(tmp_path / "g.pth", net, net)
        overrides.append(f"path:pretrain_network_g={weights}")
    assert main(["-opt", str(path), "--force_yml", *overrides]) == 0
    root = tmp_path / "experiments" / name
    log = (root / f"train_{name}.log").read_text()
    d_only = opt["train"].get("net_d_init_iters", 0) >= 2  # the fine-tuning recipe trains D alone at first
    g_terms = () if d_only else ("l_g_pix", "l_g_percep", "l_g_gan")
    terms = (*g_terms, "l_d_real", "l_d_fake", "out_d_real", "out_d_fake") if gan else ("l_pix",)
    last = [line for line in log.splitlines() if "iter:" in line][-1]
    assert all(f"{t}: " in last for t in terms) and (not gan or ("l_g_pix" in last) != d_only), last
    if d_only:
        start = torch.load(tmp_path / "g.pth", weights_only=True)["params"]
        after = torch.load(root / "models" / "net_g_2.pth", weights_only=True)["params"]
        assert all(torch.equal(start[k], after[k]) for k in start)
    assert (root / "models" / "net_g_2.pth").is_file()
    assert (root / "models" / "net_d_2.pth").is_file() == gan
    state = torch.load(root / "training_states" / "2.state", weights_only=True)
    assert state["model"]["pool"]["filled"] == 4


def _bad_run(tmp: Path, filename: str, capsys: pytest.CaptureFixture, *extra: str, count: int = 1) -> str:
    """The first error line of a run stopped by the pre-flight, which reports ``count`` problems."""
    name = "bad"
    assert main(["-opt", str(OPTIONS / filename), "--force_yml", *_overrides(tmp, name, filename), *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("restore train: error")]
    assert len(err) == count, err
    assert not (tmp / "experiments").exists()  # the pre-flight stopped it before anything was created
    return err[0]


GAN_FILE = "train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml"
MSE_FILE = "train_Real_HAT_SRx4_mse_model.yml"


def test_missing_vgg_weights_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.delenv("RESTORE_VGG_WEIGHTS", raising=False)
    missing = tmp_path / "nowhere" / "vgg19-dcbb9e9d.pth"
    line = _bad_run(
        tmp_path, GAN_FILE, capsys, "path:pretrain_network_g=~", f"train:perceptual_opt:vgg_weights={missing}"
    )
    assert str(missing) in line and "dcbb9e9d" in line and "perceptual_opt.vgg_weights" in line


def test_queue_size_must_divide_by_the_batch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = _bad_run(tmp_path, MSE_FILE, capsys, "queue_size=5")
    expected = "restore train: error: queue_size: 5 is not divisible by datasets.train.batch_size_per_gpu 2"
    assert line.startswith(expected)


def test_gt_size_above_the_400_pixel_crop(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = _bad_run(tmp_path, MSE_FILE, capsys, "gt_size=512")
    assert line.startswith("restore train: error: gt_size: 512 is larger than the 400-pixel GT crop")


def test_network_d_type_typo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # the pre-flight goes on to the files: the generator and the VGG weights are missing too
    line = _bad_run(tmp_path, GAN_FILE, capsys, "network_d:type=UNetDiscriminatorSM", count=3)
    assert "network_d.type" in line and "'UNetDiscriminatorSN'" in line  # suggests the right name


def test_official_files_differ_from_upstream_only_in_dataset_paths() -> None:
    """The upstream keys, minus ``meta_info_file`` (ignored by the official dataset), with our ``dataroot_gt``."""
    for filename in REAL_FILES[:4]:
        opt = load_options(OPTIONS / filename, is_train=True)
        train = opt["datasets"]["train"]
        assert train["dataroot_gt"].endswith("datasets/DF2K/DF2K_HR_sub") and "meta_info_file" not in train
        assert (opt["gt_size"], opt["queue_size"], train["batch_size_per_gpu"]) == (256, 180, 4)
        assert opt["train"]["total_iter"] == (400000 if "GAN" in opt["model_type"] else 1000000)
