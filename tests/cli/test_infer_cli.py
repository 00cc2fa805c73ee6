"""``restore/infer.py`` end to end on tiny images with a tiny random-weights HAT (the x3 parity fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import torch

from restore.archs import build_network, detect
from restore.checkpoint import save_checkpoint
from restore.commands.infer import main
from restore.data.image_io import read_image
from restore.engine import infer
from restore.engine.inference import VARIANTS

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "restore" / "infer.py"


@pytest.fixture(scope="module")
def weights(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fx = torch.load(fixtures / "parity" / "hat_tiny_x3_pipeline.pt", weights_only=True)
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "hat_x3.pth", fx["state_dict"], fx["state_dict"])


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 256, (12, 17, 3)).astype(np.uint8))
    cv2.imwrite(str(folder / "b.jpg"), rng.integers(0, 256, (9, 10, 3)).astype(np.uint8))
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 256, (9, 10)).astype(np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 256, (9, 10, 4)).astype(np.uint8))
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65536, (9, 10, 3)).astype(np.uint16))
    cv2.imwrite(str(folder / "sub" / "s.png"), rng.integers(0, 256, (8, 8, 3)).astype(np.uint8))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    return folder


def _run(*args: str | Path, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, *launcher, str(SCRIPT), *map(str, args), "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT)


def test_folder_run_reports_bad_files_and_writes_the_rest(weights: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run("-i", inputs, "-o", out, "--weights", weights)
    assert done.returncode == 1, done.stderr
    errors = done.stderr.strip().splitlines()
    assert errors == [f"{inputs / 'empty.png'}: empty file (0 bytes)",
                      f"{inputs / 'notes.png'}: not an image (unknown format); decoding failed"]  # fmt: skip
    assert "5 written, 0 skipped, 2 failed of 7 file(s)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "deep.png", "gray.png", "rgba.png"]
    stored = {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in out.iterdir()}
    assert stored["a"].shape == (36, 51, 3) and stored["a"].dtype == np.uint8
    assert stored["gray"].shape == (27, 30), "gray in, gray out"
    assert stored["rgba"].shape == (27, 30, 4), "alpha kept (bicubic)"
    assert stored["deep"].dtype == np.uint16, "16-bit in, 16-bit out"
    # The file path runs exactly the engine's official path.
    fx_net = build_network(detect(torch.load(weights, weights_only=True)["params_ema"]))
    fx_net.load_state_dict(torch.load(weights, weights_only=True)["params_ema"])
    lq = torch.from_numpy(read_image(inputs / "a.png").rgb).permute(2, 0, 1)[None]
    expected = np.rint(infer(fx_net, lq)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(stored["a"][:, :, ::-1], expected)


def test_existing_outputs_are_skipped_unless_overwrite(weights: Path, inputs: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    base = ["-i", str(inputs / "a.png"), "-o", str(out), "--weights", str(weights), "--no-progress"]
    assert main(base) == 0
    target = out / "a.png"
    target.write_bytes(b"stale")
    capsys.readouterr()
    assert main(base) == 0
    captured = capsys.readouterr()
    assert "exists, skipped (use --overwrite to replace)" in captured.err
    assert "0 written, 1 skipped" in captured.out and target.read_bytes() == b"stale"
    assert main([*base, "--overwrite"]) == 0
    assert read_image(target).rgb.shape == (36, 51, 3)


def test_suffix_same_extension_and_recursive(weights: Path, inputs: Path, tmp_path: Path) -> None:
    (inputs / "empty.png").unlink()
    (inputs / "notes.png").unlink()
    out = tmp_path / "out"
    status = main(["-i", str(inputs), "-o", str(out), "--weights", str(weights), "--ext", "same", "--suffix", "_x3",
                   "--recursive", "--no-progress"])  # fmt: skip
    assert status == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a_x3.png", "b_x3.jpg", "deep_x3.png", "gray_x3.png", "rgba_x3.png", "sub/s_x3.png"]


def test_tiled_run_is_the_engine_tiling_with_several_tiles_per_axis(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's tile options reach the engine: its output is ``infer(..., tile=...)`` written as 8-bit PNG
    (to rounding), with at least three tiles along each axis, and it stays close to the untiled run."""
    from restore.engine import inference
    from restore.engine.loading import load_model

    rng = np.random.default_rng(1)
    source = tmp_path / "in" / "photo.png"
    source.parent.mkdir()
    crop = cv2.imread(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))[180:212, 200:240]  # 32 x 40
    cv2.imwrite(str(source), np.clip(crop + rng.integers(-3, 4, crop.shape), 0, 255).astype(np.uint8))
    plans: list[int] = []
    original = inference.plan_blended_axis
    monkeypatch.setattr(inference, "plan_blended_axis", lambda *a: plans.append(len(p := original(*a))) or p)
    tiled_args = ["--tile", "8", "--tile-overlap", "8", "--tile-batch-size", "2"]
    assert main(["-i", str(source), "-o", str(tmp_path / "tiled"), "--weights", str(weights), "--no-progress",
                 *tiled_args]) == 0  # fmt: skip
    assert len(plans) == 2 and min(plans) >= 3, f"tiles per axis: {plans}"
    assert main(["-i", str(source), "-o", str(tmp_path / "whole"), "--weights", str(weights), "--no-progress"]) == 0

    net = load_model(weights).net.eval()
    lq = torch.from_numpy(read_image(source).rgb).permute(2, 0, 1)[None]
    with torch.no_grad():
        engine = infer(net, lq, tile=8, tile_overlap=8, tile_batch_size=2, **VARIANTS["model_class"])
    expected = np.round(engine[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255)
    tiled = read_image(tmp_path / "tiled" / "photo.png").rgb * 255
    whole = read_image(tmp_path / "whole" / "photo.png").rgb * 255
    assert tiled.shape == expected.shape == (96, 120, 3)
    np.testing.assert_allclose(tiled, expected, rtol=0, atol=1.0 + 1e-4)  # 8-bit rounding of the same values
    assert np.mean(tiled != expected) < 1e-3
    assert np.abs(tiled - whole).max() > 0, "the tile options had no effect"
    assert np.abs(tiled - whole).mean() < 0.02 * 255


def test_output_may_not_replace_its_input(weights: Path, inputs: Path, capsys) -> None:
    status = main(["-i", str(inputs / "a.png"), "-o", str(inputs), "--weights", str(weights), "--overwrite",
                   "--no-progress"])  # fmt: skip
    assert status == 1
    assert "the output would replace the input" in capsys.readouterr().err


def test_unusable_weights_or_options_fail_in_one_line(weights: Path, inputs: Path, tmp_path: Path, capsys) -> None:
    missing = _run("-i", inputs, "-o", tmp_path / "o", "--weights", tmp_path / "nope.pth")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"restore infer: error: {tmp_path / 'nope.pth'}: checkpoint file not found"
    yml = tmp_path / "net.yml"
    yml.write_text("network_g: {type: HAT, upscale: 3, window_size: 8, embed_dim: 32, depths: [2], num_heads: [4],"
                   " upsampler: pixelshuffle}\n")  # fmt: skip
    status = main(["-i", str(inputs), "-o", str(tmp_path / "o"), "--weights", str(weights), "--opt", str(yml)])
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"restore infer: error: {weights}: does not fit HAT")
    assert "expected [32, 3, 3, 3], got [24, 3, 3, 3]" in lines[0]
    yml.write_text("network_g: {type: HAT, upscale: 3, embed_dimm: 24}\n")
    assert main(["-i", str(inputs), "-o", str(tmp_path / "o"), "--weights", str(weights), "--opt", str(yml)]) == 2
    assert "did you mean 'embed_dim'?" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_torchrun_shards_files_across_ranks(weights: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    done = _run("-i", inputs, "-o", out, "--weights", weights, "--device", "cpu", launcher=launcher)
    assert "5 written, 0 skipped, 2 failed of 7 file(s)" in done.stdout, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "deep.png", "gray.png", "rgba.png"]
    assert done.stderr.count("empty file (0 bytes)") == 1, "each file is handled by exactly one rank"
