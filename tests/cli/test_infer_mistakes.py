"""``restore infer`` on ordinary mistakes: one line, the documented exit status, checked before the compute."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch_threads import one_thread_fixture

from restore.archs import build_network
from restore.checkpoint import save_checkpoint
from restore.commands.infer import main
from restore.data import image_io
from restore.utils.files import is_partial_file

TINY_HAT = {
    "type": "HAT", "upscale": 2, "in_chans": 3, "img_size": 8, "window_size": 4, "compress_ratio": 2,
    "squeeze_factor": 4, "depths": [1], "embed_dim": 8, "num_heads": [2], "mlp_ratio": 2,
    "upsampler": "pixelshuffle", "resi_connection": "1conv",
}  # fmt: skip


one_thread = one_thread_fixture()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    state = build_network(TINY_HAT).state_dict()
    return save_checkpoint(tmp_path_factory.mktemp("w") / "tiny_hat_x2.pth", state)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (8, 9, 3)).astype(np.uint8))
    return folder


def _main(*args: str | Path) -> int:
    return main([*map(str, args), "--no-progress", "--threads", "1"])


def _err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
# (ids without "cuda": conftest skips tests whose keywords name it)
@pytest.mark.parametrize("device", ["cuda", "cuda:1"], ids=["default-gpu", "second-gpu"])
def test_cuda_without_a_gpu_is_refused_before_loading(tmp_path, images, device, capsys):
    status = _main("-i", images, "-o", tmp_path / "out", "--weights", tmp_path / "absent.pth", "--device", device)
    assert status == 2
    assert _err_lines(capsys) == [f"restore infer: error: --device {device}: CUDA is not available on this "
                                  "machine; use --device cpu"]  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_unknown_device_is_refused(tmp_path, images, capsys):
    status = _main("-i", images, "-o", tmp_path / "out", "--weights", tmp_path / "absent.pth", "--device", "foo")
    assert status == 2
    assert _err_lines(capsys) == ["restore infer: error: --device 'foo': expected cpu, cuda or cuda:N"]


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--tile-overlap", "-1"), ("--tile-batch-size", "0"), ("--max-pixels", "0"), ("--max-pixels", "-1"),
     ("--suffix", "../x"), ("--suffix", "a/b"), ("--threads", "0")],
)  # fmt: skip
def test_unusable_flag_values_fail_in_argument_parsing(tmp_path, images, flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        _main("-i", images, "-o", tmp_path / "out", "--weights", tmp_path / "absent.pth", f"{flag}={value}")
    assert exit_.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_output_that_is_a_file_fails_before_loading(tmp_path, images, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert _main("-i", images, "-o", blocker, "--weights", tmp_path / "absent.pth") == 2
    assert _err_lines(capsys) == [f"restore infer: error: -o {blocker}: exists and is not a folder"]
    assert _main("-i", images, "-o", blocker / "sub", "--weights", tmp_path / "absent.pth") == 2
    assert _err_lines(capsys) == [f"restore infer: error: -o {blocker / 'sub'}: cannot create the folder "
                                  f"({blocker} is a file)"]  # fmt: skip


def test_read_only_output_fails_before_loading(tmp_path, images, monkeypatch, capsys):
    out = tmp_path / "out"

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(out / ".x"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert _main("-i", images, "-o", out, "--weights", tmp_path / "absent.pth") == 2
    assert _err_lines(capsys) == [f"restore infer: error: -o {out}: cannot write there (Read-only file system)"]
    assert not out.exists()


def test_fp16_refused_once_before_the_loop(tmp_path, images, weights, capsys):
    out = tmp_path / "out"
    assert _main("-i", images, "-o", out, "--weights", weights, "--precision", "fp16") == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("restore infer: error: --precision 'fp16' refused for HAT")
    assert not out.exists(), "nothing written, and the probed folder removed again"


def test_explicit_param_key_must_exist(tmp_path, images, weights, capsys):
    assert _main("-i", images, "-o", tmp_path / "out", "--weights", weights, "--param-key", "foo") == 2
    assert _err_lines(capsys) == [f"restore infer: error: {weights}: no 'foo' entry (its entries are params); "
                                  "check --param-key"]  # fmt: skip
    # The default still falls back from params_ema to params.
    assert _main("-i", images / "a.png", "-o", tmp_path / "out", "--weights", weights) == 0


def test_outputs_of_an_earlier_run_are_not_inputs_when_o_is_i(images, weights, capsys):
    assert _main("-i", images, "-o", images, "--weights", weights, "--suffix", "_x2") == 0
    assert sorted(p.name for p in images.iterdir()) == ["a.png", "a_x2.png", "b.png", "b_x2.png", "c.jpg", "c_x2.png"]
    capsys.readouterr()
    assert _main("-i", images, "-o", images, "--weights", weights, "--suffix", "_x2") == 0
    captured = capsys.readouterr()
    assert "0 written, 3 skipped, 0 failed of 3 file(s)" in captured.out
    assert "3 file(s) such as" in captured.err and "are outputs of this command" in captured.err
    assert not any("_x2_x2" in p.name for p in images.iterdir())


def test_png_made_from_a_jpeg_is_not_an_input_next_time(tmp_path, weights, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "c.jpg"), np.full((8, 8, 3), 90, np.uint8))
    assert _main("-i", folder, "-o", folder, "--weights", weights) == 0
    capsys.readouterr()
    assert _main("-i", folder, "-o", folder, "--weights", weights) == 0
    out = capsys.readouterr().out
    assert "0 written, 1 skipped, 0 failed of 1 file(s)" in out


def test_output_folder_inside_the_input_is_not_scanned(images, weights, capsys):
    out = images / "results"
    assert _main("-i", images, "-o", out, "--weights", weights, "--recursive") == 0
    assert _main("-i", images, "-o", out, "--weights", weights, "--recursive") == 0
    assert "0 written, 3 skipped, 0 failed of 3 file(s)" in capsys.readouterr().out
    assert not (out / "results").exists()


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_stale_temp_files_are_removed_and_never_taken_as_inputs(images, weights, capsys):
    stale = images / f".a_x2.png.partial-{_dead_pid()}-e3glgblj.png"
    stale.write_bytes(b"left by a killed run")
    live = images / f".b_x2.png.partial-{os.getppid()}-abcdefgh.png"  # a running process's file stays
    live.write_bytes(b"being written")
    assert is_partial_file(stale) and is_partial_file(live)
    assert _main("-i", images, "-o", images, "--weights", weights, "--suffix", "_x2") == 0
    captured = capsys.readouterr()
    assert f"restore infer: removed {stale}, left by an interrupted run" in captured.err
    assert not stale.exists() and live.exists()
    assert "3 written, 0 skipped, 0 failed of 3 file(s)" in captured.out
    assert sorted(p.name for p in images.iterdir() if "partial" not in p.name) == [
        "a.png", "a_x2.png", "b.png", "b_x2.png", "c.jpg", "c_x2.png"]  # fmt: skip


def test_temp_file_names_are_recognisable(tmp_path):
    from restore.data.image_io import write_image

    seen = []
    original = Path.write_bytes

    def spy(self: Path, data: bytes) -> int:
        seen.append(self)
        return original(self, data)

    Path.write_bytes = spy  # type: ignore[method-assign]
    try:
        write_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))
    finally:
        Path.write_bytes = original  # type: ignore[method-assign]
    assert len(seen) == 1 and is_partial_file(seen[0]) and seen[0].name.startswith(".x.png.partial-")
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_dangling_symlink_is_reported(images, weights, tmp_path, capsys):
    link = images / "gone.png"
    link.symlink_to(tmp_path / "nowhere.png")
    status = _main("-i", images, "-o", tmp_path / "out", "--weights", weights)
    captured = capsys.readouterr()
    assert status == 1
    expected = f"{link}: dangling symbolic link (points to {tmp_path / 'nowhere.png'}), skipped"
    assert expected in captured.err.splitlines()
    assert "3 written, 0 skipped, 1 failed of 4 file(s)" in captured.out


def test_empty_folder_given_explicitly_exits_1(tmp_path, weights, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert _main("-i", empty, "-o", tmp_path / "out", "--weights", weights) == 1
    lines = _err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"restore infer: error: {empty}: no image files (use --recursive")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_prints_one_line_and_exits_130(images, weights, tmp_path, monkeypatch, capsys, how):
    calls = []
    real = image_io.atomic_path

    @contextlib.contextmanager
    def write_then_stop(path, suffix=None):
        with real(path, suffix) as tmp:
            yield tmp
            calls.append(tmp)
            if len(calls) == 2:  # the second output is written to its temporary file, not yet renamed
                assert tmp.stat().st_size > 0
                if how == "ctrl-c":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGTERM)  # turned into KeyboardInterrupt by the handler

    monkeypatch.setattr(image_io, "atomic_path", write_then_stop)
    out = tmp_path / "out"
    assert _main("-i", images, "-o", out, "--weights", weights) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "restore infer: interrupted: 1 written, 2 left; rerun the same command to continue"
    ]
    assert [p.name for p in out.iterdir()] == ["a.png"], "nothing half-written"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler is removed afterwards"


def test_ctrl_c_in_a_real_process_exits_130_in_one_line(images, weights, tmp_path):
    script = (
        "import sys, restore.commands.infer as m\n"
        "def stop(*a, **k):\n    raise KeyboardInterrupt\n"
        "m.restore_file = stop\n"
        "sys.exit(m.main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, "-i", str(images), "-o", str(tmp_path / "o"), "--weights", str(weights),
         "--no-progress"], capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 130
    assert done.stderr.strip().splitlines() == [
        "restore infer: interrupted: 0 written, 3 left; rerun the same command to continue"
    ]


def test_wrong_typed_network_g_in_opt_names_file_and_key(tmp_path, images, weights, capsys):
    opt = tmp_path / "net.yml"
    opt.write_text("network_g:\n  type: HAT\n  embed_dim: abc\n")
    assert _main("-i", images, "-o", tmp_path / "out", "--weights", weights, "--opt", opt) == 2
    assert _err_lines(capsys) == [f"restore infer: error: {opt}: network_g.embed_dim: expected int, got str 'abc'"]


def test_unusable_weights_leave_no_output_folder(tmp_path, images, capsys):
    out = tmp_path / "new" / "out"
    assert _main("-i", images, "-o", out, "--weights", tmp_path / "absent.pth") == 2
    assert _err_lines(capsys) == [f"restore infer: error: {tmp_path / 'absent.pth'}: checkpoint file not found"]
    assert not (tmp_path / "new").exists()
