"""End-to-end training runs of a tiny HAT on CPU: checkpoints, exact resumption, accumulation, fine-tuning."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import TINY_HAT, train_options, write_options

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.train import main
from restore.data.image_io import read_image
from restore.engine import infer
from restore.metrics import calculate_psnr
from restore.models.runner import load_train_options
from restore.models.validation import to_uint8_bgr


def _run(opt_file: Path, *extra: str) -> int:
    return main(["-opt", str(opt_file), *extra])


def _weights(root: Path, name: str) -> dict:
    return torch.load(root / "models" / name, weights_only=True)


def _assert_same(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for group in a:
        for key in a[group]:
            if exact:
                assert torch.equal(a[group][key], b[group][key]), f"{group}.{key} differs"
            else:
                torch.testing.assert_close(a[group][key], b[group][key], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An uninterrupted 6-iteration run (checkpoints at 2, 4, 6; 3 batches per epoch)."""
    tmp = tmp_path_factory.mktemp("reference")
    opt = train_options(tmp, name="ref", logger={"use_tb_logger": True})
    assert _run(write_options(tmp, opt)) == 0
    return tmp / "experiments" / "ref", opt


def test_run_writes_checkpoints_logs_and_validation(reference: tuple[Path, dict]) -> None:
    root, opt = reference
    names = sorted(p.name for p in (root / "models").iterdir())
    assert names == ["net_g_2.pth", "net_g_4.pth", "net_g_6.pth", "net_g_latest.pth"]
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["2.state", "4.state", "6.state"]
    latest = _weights(root, "net_g_latest.pth")
    assert set(latest) == {"params", "params_ema"}
    _assert_same(latest, _weights(root, "net_g_6.pth"))
    state = torch.load(root / "training_states" / "6.state", weights_only=True)
    assert (state["iter"], state["epoch"], state["epoch_batches"]) == (6, 1, 3)
    log = (root / "train_ref.log").read_text()
    if importlib.util.find_spec("tensorboard") is None:
        assert "tensorboard is not installed" in log
    else:
        assert any((root / "tb_logger").iterdir())
    assert re.search(r"iter:\s+6, lr:\(1\.000e-03,\)\].*l_pix: \d", log)  # milestone 3 halves 2e-3 from iter 4
    # the logged PSNR equals an independent evaluation of the saved EMA weights
    logged = float(re.findall(r"validation tiny_val at iteration 6:\n\t# psnr: ([\d.]+)", log)[-1])
    net = build_network(opt["network_g"])
    net.load_state_dict(latest["params_ema"])
    values = []
    for gt_path in sorted(Path(opt["datasets"]["val"]["dataroot_gt"]).iterdir()):
        lq = read_image(Path(opt["datasets"]["val"]["dataroot_lq"]) / gt_path.name).rgb
        sr = infer(net, torch.from_numpy(lq.transpose(2, 0, 1).copy())[None])
        gt = (read_image(gt_path).rgb * 255).round().astype(np.uint8)[..., ::-1]
        values.append(calculate_psnr(to_uint8_bgr(sr), gt, crop_border=2, test_y_channel=True))
    assert logged == pytest.approx(float(np.mean(values)), abs=1e-4)


def _resume_copy(reference_root: Path, tmp: Path, keep: tuple[int, ...], opt: dict, name: str) -> tuple[Path, Path]:
    opt = dict(opt, name=name, path=dict(opt["path"], experiments_root=str(tmp / "experiments" / name)))
    root = tmp / "experiments" / name
    for sub in ("models", "training_states"):
        (root / sub).mkdir(parents=True)
    for it in keep:
        shutil.copy(reference_root / "models" / f"net_g_{it}.pth", root / "models")
        shutil.copy(reference_root / "training_states" / f"{it}.state", root / "training_states")
    return write_options(tmp, opt, f"{name}.yml"), root


def test_resume_mid_epoch_is_bit_identical(reference: tuple[Path, dict], tmp_path: Path) -> None:
    ref_root, opt = reference
    opt_file, root = _resume_copy(ref_root, tmp_path, (2,), opt, "resumed")
    assert _run(opt_file, "--auto_resume") == 0
    _assert_same(_weights(root, "net_g_6.pth"), _weights(ref_root, "net_g_6.pth"))
    ours = torch.load(root / "training_states" / "6.state", weights_only=True)
    theirs = torch.load(ref_root / "training_states" / "6.state", weights_only=True)
    for a, b in zip(ours["model"]["optimizer"]["state"].values(), theirs["model"]["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert ours["rng"][0]["python"] == theirs["rng"][0]["python"]
    assert "resumed from" in (root / "train_resumed.log").read_text()


def test_resume_restores_the_global_random_state(tmp_path: Path) -> None:
    """MixUp (python ``random`` and torch's global generator) and drop-path (torch's global generator) draw every
    iteration, so a resume that does not restore the random states diverges from the uninterrupted run."""
    network = dict(TINY_HAT, drop_path_rate=0.3)
    mixing = {"mixing_augs": {"mixup": True, "mixup_beta": 1.2, "use_identity": True}, "total_iter": 4}
    opt = train_options(tmp_path, name="rng_ref", network_g=network, train=mixing, val={"val_freq": 100})
    assert _run(write_options(tmp_path, opt)) == 0
    ref_root = tmp_path / "experiments" / "rng_ref"
    opt_file, root = _resume_copy(ref_root, tmp_path, (2,), opt, "rng_resumed")
    assert _run(opt_file, "--auto_resume") == 0
    _assert_same(_weights(root, "net_g_4.pth"), _weights(ref_root, "net_g_4.pth"))


def test_auto_resume_skips_truncated_state_and_interrupted_save(reference: tuple[Path, dict], tmp_path: Path) -> None:
    ref_root, opt = reference
    opt_file, root = _resume_copy(ref_root, tmp_path, (2, 4), opt, "crashed")
    newest = root / "training_states" / "4.state"
    newest.write_bytes(newest.read_bytes()[:1000])  # killed while writing without atomic rename
    (root / "training_states" / ".6.state.x1y2z3.state").write_bytes(b"PK\x03\x04")  # temp file of a killed save
    assert _run(opt_file, "--auto_resume") == 0
    log = (root / "train_crashed.log").read_text()
    assert "skipping unusable training state" in log and "4.state" in log and "iteration 2," in log
    _assert_same(_weights(root, "net_g_6.pth"), _weights(ref_root, "net_g_6.pth"))


def test_explicit_resume_state_and_finished_run(reference: tuple[Path, dict], tmp_path: Path) -> None:
    ref_root, opt = reference
    opt_file, root = _resume_copy(ref_root, tmp_path, (4,), opt, "explicit")
    forced = f"path:resume_state={root / 'training_states' / '4.state'}"
    assert _run(opt_file, "--force_yml", forced) == 0
    _assert_same(_weights(root, "net_g_6.pth"), _weights(ref_root, "net_g_6.pth"))
    assert _run(opt_file, "--auto_resume") == 0  # already at total_iter: nothing to do
    assert "nothing to do" in (root / "train_explicit.log").read_text()


def test_workers_and_prefetch_do_not_change_the_result(reference: tuple[Path, dict], tmp_path: Path) -> None:
    ref_root, opt = reference
    opt = dict(opt, name="workers", path=dict(opt["path"], experiments_root=str(tmp_path / "workers")))
    opt["datasets"] = dict(
        opt["datasets"], train=dict(opt["datasets"]["train"], num_worker_per_gpu=2, prefetch_mode="cpu")
    )
    assert _run(write_options(tmp_path, opt)) == 0
    _assert_same(_weights(tmp_path / "workers", "net_g_6.pth"), _weights(ref_root, "net_g_6.pth"))


def test_gradient_accumulation_matches_the_larger_batch(tmp_path: Path) -> None:
    """Two micro-batches of 1 give the gradient of one batch of 2 (plain SGD, so any scaling error would show)."""
    finals = []
    for name, batch, accumulate in (("big", 2, 1), ("accum", 1, 2)):
        train = {"total_iter": 2, "accumulate_grad_batches": accumulate, "ema_decay": 0}
        opt = train_options(tmp_path, name=name, train=train, val={"val_freq": 100})
        opt["train"]["optim_g"] = {"type": "SGD", "lr": 0.5}
        opt["datasets"]["train"]["batch_size_per_gpu"] = batch
        assert _run(write_options(tmp_path, opt, f"{name}.yml")) == 0
        finals.append(_weights(tmp_path / "experiments" / name, "net_g_latest.pth")["params"])
    torch.manual_seed(opt["manual_seed"])  # the runner seeds, then builds the network first
    start = build_network(opt["network_g"]).state_dict()
    moved = torch.cat([(finals[0][k] - start[k]).flatten() for k in start])
    gap = torch.cat([(finals[0][k] - finals[1][k]).flatten() for k in start])
    assert moved.norm() > 1e-3
    assert gap.norm() < 1e-4 * moved.norm()


def test_non_finite_loss_aborts_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    opt = train_options(tmp_path, name="diverge", train={"ema_decay": 0})
    opt["train"]["optim_g"] = {"type": "SGD", "lr": 1e30}
    assert _run(write_options(tmp_path, opt)) == 1
    err = capsys.readouterr().err
    assert re.search(r"restore train: error: non-finite loss at iteration \d+ \(l_pix=(nan|inf)\); training stopped",
                     err)  # fmt: skip
    assert "non-finite loss" in (tmp_path / "experiments" / "diverge" / "train_diverge.log").read_text()


def test_fine_tune_across_scales_reports_skipped_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """x2 weights into an x4 HAT: every shared key loads, the extra upsampling stage is reported (HAT#90)."""
    x2 = build_network(dict(TINY_HAT, upscale=2))
    pretrained = tmp_path / "x2.pth"
    save_checkpoint(pretrained, x2, x2)
    opt = train_options(tmp_path, name="x4", scale=4, train={"total_iter": 1}, val={"val_freq": 100})
    opt["path"].update(pretrain_network_g=str(pretrained), strict_load_g=False, param_key_g="params")
    assert _run(write_options(tmp_path, opt)) == 0
    log = (tmp_path / "experiments" / "x4" / "train_x4.log").read_text()
    x4_keys = set(build_network(dict(TINY_HAT, upscale=4)).state_dict())
    missing = sorted(x4_keys - set(x2.state_dict()))
    assert missing and all(k.startswith("upsample.") for k in missing)
    for key in missing:
        assert re.search(rf"missing\s+{re.escape(key)}", log)
    assert f"loaded {len(x4_keys) - len(missing)} tensors from {pretrained}" in log
    strict_path = dict(opt["path"], strict_load_g=True, experiments_root=str(tmp_path / "strict"))
    opt = dict(opt, name="strict", path=strict_path)
    assert _run(write_options(tmp_path, opt, "strict.yml")) == 2
    err = capsys.readouterr().err
    pattern = r"restore train: error: .*x2\.pth: does not fit HAT: .*missing key.*set path\.strict_load_g: false"
    assert re.search(pattern, err)


def test_debug_flag_and_overrides(tmp_path: Path) -> None:
    opt_file = write_options(tmp_path, train_options(tmp_path, name="dbg"))
    opt = load_train_options(str(opt_file), ["train:total_iter=50"], debug=True)
    assert opt["name"] == "debug_dbg" and opt["train"]["total_iter"] == 50
    assert (opt["logger"]["print_freq"], opt["logger"]["save_checkpoint_freq"], opt["val"]["val_freq"]) == (1, 8, 8)
