"""``restore compare``: stem matching, the auto box, figure contents, metrics, bad input and atomic writes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from compare_data import make_folders

from restore.analysis import compare as cmp
from restore.analysis.compare import Box, auto_box, compare_folders, main, make_figure, match_results
from restore.cli import main as cli_main
from restore.metrics import calculate_psnr, calculate_ssim


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Reference PSNR (peak 255) written out here, independent of restore.metrics."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def test_match_results_by_stem(tmp_path: Path) -> None:
    for name in ("img_2_HAT.png", "img_HAT.png", "babyx4_SwinIR.png", "babyfoo.png", "bird.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    matched, notes = match_results(["img", "img_2", "baby", "bird", "butterfly"], tmp_path)
    assert {k: v.name for k, v in matched.items()} == {
        "img": "img_HAT.png",
        "img_2": "img_2_HAT.png",  # the longest GT stem wins over "img"
        "baby": "babyx4_SwinIR.png",
        "bird": "bird.jpg",
    }
    assert notes == []
    (tmp_path / "bird_other.png").write_bytes(b"")
    matched, notes = match_results(["bird"], tmp_path)
    assert matched["bird"].name == "bird.jpg" and len(notes) == 1 and "bird_other.png" in notes[0]


def test_auto_box_finds_where_methods_differ() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a = np.clip(gt.astype(int) + 3, 0, 255).astype(np.uint8)  # uniform small error everywhere
    b = a.copy()
    b[24:40, 40:56] = 255 - gt[24:40, 40:56]  # method B fails in one 16x16 patch
    assert auto_box(gt, [a, b], 16) == Box(40, 24, 16, 16)
    # one method: the window of largest error; windows keep away from a crop border
    c = gt.copy()
    c[0:16, 0:16] = 0
    c[30:46, 10:26] = 255 - gt[30:46, 10:26]
    assert auto_box(gt, [c], 16) == Box(10, 30, 16, 16)
    box = auto_box(gt, [c], 16, crop_border=4)
    assert box.x >= 4 and box.y >= 4 and box.x + 16 <= 76 and box.y + 16 <= 56


def test_figure_holds_the_zoomed_crops() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    methods = {"one": np.flipud(gt).copy(), "two": rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)}
    box = Box(5, 7, 16, 12)
    scores = cmp._scores(gt, methods, box, 0, False)
    figure = make_figure(gt, methods, box, scores)
    zoom = 192 // 16
    for img in (gt, *methods.values()):
        crop = img[7:19, 5:21]
        expected = np.kron(crop, np.ones((zoom, zoom, 1), np.uint8))  # nearest-neighbour, built differently
        found = cv2.matchTemplate(figure, expected, cv2.TM_SQDIFF)
        y, x = np.unravel_index(np.argmin(found), found.shape)
        assert np.array_equal(figure[y : y + expected.shape[0], x : x + expected.shape[1]], expected)
    # the box drawn on the GT panel (at the figure's left, 8 pixels in, scaled to the figure's height) lies where
    # the box is: x = 5..21, y = 7..19 of the 50x40 GT, within the line thickness
    gap = 8
    scale = (figure.shape[0] - 2 * gap) / gt.shape[0]
    panel = figure[gap:-gap, gap : gap + round(gt.shape[1] * scale)]
    red = (panel[..., 2] == 255) & (panel[..., 0] == 0) & (panel[..., 1] == 0)
    ys, xs = np.nonzero(red)
    thickness = max(2, round(panel.shape[0] / 200))
    found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / scale
    assert np.abs(found - [5, 7, 5 + 16, 7 + 12]).max() <= thickness / scale + 0.5, found


def test_metrics_are_those_of_restore_test() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
    noisy = np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    box = Box(3, 5, 20, 14)
    (score,) = cmp._scores(gt, {"noisy": noisy}, box, 4, True)
    options = {"crop_border": 4, "test_y_channel": True}
    assert (score.psnr, score.ssim) == (calculate_psnr(noisy, gt, **options), calculate_ssim(noisy, gt, **options))
    a, b = noisy[5:19, 3:23], gt[5:19, 3:23]
    assert score.crop_psnr == calculate_psnr(a, b, 0, test_y_channel=True)
    assert score.crop_ssim == calculate_ssim(a, b, 0, test_y_channel=True)


def test_compare_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = make_folders(tmp_path)
    out = tmp_path / "figs"
    args = [str(folders[k]) for k in ("bicubic", "nearest", "linear")]
    status = main(["--gt", str(folders["gt"]), *args, "-o", str(out), "--box", "20,10,24,16", "--crop-border", "4"])
    assert status == 0, capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png", "coffee.png", "images", "index.html"]
    assert not list(out.rglob(".*"))  # no temporary files left
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    for image in ("astronaut", "coffee"):
        gt = cv2.imread(str(folders["gt"] / f"{image}.png"))
        shown = cv2.imread(str(out / "images" / image / "GT.png"))
        assert np.array_equal(shown, gt)
        for name, file in (("bicubic", f"{image}_Bicubic"), ("nearest", f"{image}_x4"), ("linear", image)):
            result = cv2.imread(str(folders[name] / f"{file}.png"))
            assert np.array_equal(cv2.imread(str(out / "images" / image / f"{name}.png")), result)
            whole = _psnr(result[4:-4, 4:-4], gt[4:-4, 4:-4])
            crop = _psnr(result[10:26, 20:44], gt[10:26, 20:44])
            section = page.split(f"<h2>{image}</h2>")[1].split("</section>")[0]
            row = re.search(rf"<tr><td data-v=\"{name}\">.*?</tr>", section).group(0)
            values = [float(v) for v in re.findall(r'data-v="([-0-9.e]+)"', row)]
            assert values[0] == pytest.approx(whole, abs=1e-9)
            assert values[2] == pytest.approx(crop, abs=1e-9)
        for href in re.findall(r'(?:src|href)="([^"#:]+)"', page):
            assert (out / href).is_file(), href


def test_mismatched_size_is_skipped_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = make_folders(tmp_path)
    wrong = folders["nearest"] / "coffee_x4.png"
    cv2.imwrite(str(wrong), np.zeros((70, 96, 3), np.uint8))
    out = tmp_path / "figs"
    status = main(["--gt", str(folders["gt"]), str(folders["bicubic"]), str(folders["nearest"]), "-o", str(out)])
    captured = capsys.readouterr().out.splitlines()
    assert status == 1
    skipped = [line for line in captured if "skipped" in line and line.startswith("coffee")]
    assert len(skipped) == 1 and str(wrong) in skipped[0] and "70x96" in skipped[0] and "72x96" in skipped[0]
    assert (out / "astronaut.png").is_file() and not (out / "coffee.png").exists()
    assert "coffee" not in (out / "index.html").read_text(encoding="utf-8").split("</section>", 1)[1]


def test_missing_results_folder_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = make_folders(tmp_path)
    missing = tmp_path / "no_such_results"
    argv = ["compare", "--gt", str(folders["gt"]), str(folders["bicubic"]), str(missing), "-o", str(tmp_path / "o")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and str(missing) in err and "not a folder" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--names", "a"], "--names: 1 names for 2 result folders"),
        (["--box", "0,0,8,8"], "--box: width and height must be at least 11"),
        (["--names", "a", "GT"], "--names: names must be distinct and not 'GT'"),
        (["--gt", "/nonexistent/gt"], "/nonexistent/gt: --gt is not a folder"),
    ],
)
def test_unusable_flags_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    folders = make_folders(tmp_path)
    argv = ["--gt", str(folders["gt"]), str(folders["bicubic"]), str(folders["linear"]), "-o", str(tmp_path / "o")]
    assert main(argv + flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0


def test_box_outside_the_images(tmp_path: Path) -> None:
    folders = make_folders(tmp_path)
    lines: list[str] = []
    with pytest.raises(cmp.CompareError, match="no figure written") as err:
        compare_folders(folders["gt"], [folders["linear"]], tmp_path / "o", box=Box(90, 0, 16, 16), log=lines.append)
    assert len(lines) == 2 and all("--box 90,0,16,16 does not fit in 96x72" in line for line in lines)
    assert "astronaut" in str(err.value) and "coffee" in str(err.value)
    assert not (tmp_path / "o" / "index.html").exists()


def test_report_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folders = make_folders(tmp_path)
    out = tmp_path / "figs"
    out.mkdir()
    (out / "index.html").write_text("previous report", encoding="utf-8")
    real_write_text = Path.write_text

    def half_write(self: Path, text: str, *args, **kwargs) -> int:
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(OSError, match="disk full"):
        compare_folders(folders["gt"], [folders["linear"]], out)
    monkeypatch.undo()
    assert (out / "index.html").read_text(encoding="utf-8") == "previous report"
    assert not list(out.rglob(".*"))
