"""``restore train`` on ordinary mistakes and interruptions: one line, the right exit status, no leftover folders."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from torch_threads import one_thread_fixture
from train_helpers import TINY_HAT, train_options, write_options

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.train import main
from restore.models.restoration import RestorationModel

one_thread = one_thread_fixture()


def _options(tmp_path: Path, name: str = "run", **extra) -> Path:
    opt = train_options(tmp_path, name=name, train={"total_iter": 2}, val={"val_freq": 100, "metrics": None},
                        logger={"print_freq": 100, "save_checkpoint_freq": 1}, **extra)  # fmt: skip
    opt["datasets"].pop("val")
    return write_options(tmp_path, opt, f"{name}.yml")


def _errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Error lines on stderr (the training log goes there too); the error is also the last line."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line.removeprefix("restore train: ") for line in lines if line.startswith("restore train: error")]
    assert errors and f"restore train: {errors[-1]}" == lines[-1]
    return errors


def _siblings(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "experiments").iterdir())


def test_rerun_without_auto_resume_says_where_the_old_run_went(tmp_path, capsys):
    opt_file = _options(tmp_path)
    assert main(["-opt", str(opt_file)]) == 0
    capsys.readouterr()
    assert main(["-opt", str(opt_file)]) == 0
    err = capsys.readouterr().err
    root = tmp_path / "experiments" / "run"
    archived = [name for name in _siblings(tmp_path) if name.startswith("run_archived_")]
    assert len(archived) == 1
    lines = [line for line in err.splitlines() if "already existed" in line]
    assert len(lines) == 1 and lines[0].endswith(
        f"{root} already existed: moved to {root.parent / archived[0]} (it holds a resumable state at "
        "iteration 2; to continue it instead, rerun with --auto_resume)"
    )
    assert "already existed" in (root / "train_run.log").read_text()


def test_option_error_before_the_first_iteration_leaves_no_folder(tmp_path, capsys):
    opt_file = _options(tmp_path)
    status = main(["-opt", str(opt_file), "--force_yml", "network_g:embed_dim=abc"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"restore train: error: {opt_file}: network_g.embed_dim: expected int, got str 'abc' "
                   "(set by --force_yml network_g:embed_dim=abc)"]  # fmt: skip
    assert not (tmp_path / "experiments").exists()


def test_data_error_puts_the_earlier_run_back(tmp_path, capsys):
    opt_file = _options(tmp_path)
    assert main(["-opt", str(opt_file)]) == 0
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "experiments").rglob("*"))
    capsys.readouterr()
    status = main(["-opt", str(opt_file), "--force_yml", f"datasets:train:dataroot_gt={tmp_path / 'nowhere'}"])
    assert status == 2  # the pre-flight finds it: nothing is archived or created
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("restore train: error: ") and "nowhere" in err[0]
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "experiments").rglob("*")) == before
    assert _siblings(tmp_path) == ["run"]


def test_pretrain_that_loads_nothing_is_an_error(tmp_path, capsys):
    other = build_network({"type": "DLGSANet", "dim": 12, "groups": 1, "blocks": 1, "idynamic_num_heads": 2,
                           "restormer_num_heads": 2, "upscale": 2, "upsampler": "pixelshuffledirect"})  # fmt: skip
    weights = save_checkpoint(tmp_path / "dlgsa.pth", other)
    opt_file = _options(tmp_path, path={"pretrain_network_g": str(weights), "strict_load_g": False,
                                        "param_key_g": "params"})  # fmt: skip
    assert main(["-opt", str(opt_file)]) == 2
    err = _errors(capsys)
    assert len(err) == 1
    assert err[0].startswith(f"error: path.pretrain_network_g: no tensor of {weights} [params] fits HAT (")
    assert "training would start from random weights" in err[0]
    assert not (tmp_path / "experiments" / "run").exists()


def test_missing_pretrain_does_not_suggest_strict_load_g(tmp_path, capsys):
    opt_file = _options(tmp_path, path={"pretrain_network_g": str(tmp_path / "absent.pth")})
    assert main(["-opt", str(opt_file)]) == 2
    err = _errors(capsys)
    assert err == [f"error: path.pretrain_network_g: {tmp_path / 'absent.pth'}: checkpoint file not found"]


def test_strict_mismatch_still_suggests_strict_load_g(tmp_path, capsys):
    weights = save_checkpoint(tmp_path / "x4.pth", build_network(dict(TINY_HAT, upscale=4)))
    opt_file = _options(tmp_path, path={"pretrain_network_g": str(weights), "param_key_g": "params"})
    assert main(["-opt", str(opt_file)]) == 2
    err = _errors(capsys)
    assert len(err) == 1 and err[0].startswith(f"error: {weights}: does not fit HAT")
    assert err[0].endswith("set path.strict_load_g: false")


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_interrupt_during_training_exits_130_in_one_line(tmp_path, capsys, monkeypatch, how):
    real = RestorationModel.train_step

    def step(self, batches, iteration):
        if iteration == 2:
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return real(self, batches, iteration)

    monkeypatch.setattr(RestorationModel, "train_step", step)
    opt_file = _options(tmp_path)
    assert main(["-opt", str(opt_file)]) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == ("restore train: interrupted at iteration 1 (last saved state: iteration 1); "
                    "rerun the same command with --auto_resume to continue")  # fmt: skip
    states = tmp_path / "experiments" / "run" / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["1.state"], "nothing half-written"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(RestorationModel, "train_step", real)
    assert main(["-opt", str(opt_file), "--auto_resume"]) == 0
    assert (states / "2.state").is_file()


def test_null_dataset_is_skipped_and_logged(tmp_path, capsys):
    opt = train_options(tmp_path, name="nulls", train={"total_iter": 1}, val={"val_freq": 100, "metrics": None})
    opt_file = write_options(tmp_path, opt)
    assert main(["-opt", str(opt_file), "--force_yml", "datasets:val=~"]) == 0
    log = (tmp_path / "experiments" / "nulls" / "train_nulls.log").read_text()
    assert "datasets.val: null, skipped" in log
    assert "validation set" not in log
