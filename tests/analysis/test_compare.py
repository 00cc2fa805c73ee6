"""``restore compare``: stem matching, the auto box, figure contents, metrics, bad input and atomic writes."""

from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from compare_data import make_folders

from restore.analysis import compare as cmp
from restore.analysis.compare import Box, auto_box, compare_folders, figure_layout, match_results, plan_zoom
from restore.analysis.figure_doc import write_figure
from restore.cli import main as cli_main
from restore.commands.compare import main
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


def _find(figure: np.ndarray, expected: np.ndarray) -> tuple[int, int]:
    """(x, y) where ``expected`` lies in ``figure`` exactly (asserts it does)."""
    found = cv2.matchTemplate(figure, expected, cv2.TM_SQDIFF)
    y, x = np.unravel_index(np.argmin(found), found.shape)
    assert np.array_equal(figure[y : y + expected.shape[0], x : x + expected.shape[1]], expected)
    return int(x), int(y)


def test_figure_geometry_on_an_off_diagonal_box() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    methods = {"zeta": np.flipud(gt).copy(), "alpha": rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)}
    box = Box(38, 4, 16, 12)  # right of the centre, near the top: x and y differ
    scores = cmp._scores(gt, methods, box, 0, False)
    layout, geometry = figure_layout(gt, methods, box, scores, panel_size=256)
    figure = cv2.cvtColor(layout.raster(), cv2.COLOR_RGB2BGR)
    assert geometry.zoom == 16 and geometry.panel_size == 256  # 256 // 16, nearest-neighbour
    places = []
    for img in (gt, *methods.values()):
        expected = np.kron(img[4:16, 38:54], np.ones((16, 16, 1), np.uint8))  # built differently from the code
        places.append(_find(figure, expected))
    assert [x for x, _ in places] == sorted(x for x, _ in places)  # GT, then the command line's order
    assert places == [geometry.panels[k] for k in ("GT", "zeta", "alpha")]
    assert len({y for _, y in places}) == 1 and places[1][0] - places[0][0] >= 256  # one row of 256-px panels
    ox, oy, ow, oh = geometry.overview
    assert oh >= 256 and ow == round(60 * oh / 40)
    # the box on the overview: a red frame just outside the scaled window, the pixels inside left as they are
    s = oh / 40
    x0, y0, x1, y1 = (round(ox + 38 * s), round(oy + 4 * s), round(ox + 54 * s), round(oy + 16 * s))
    red = (figure[..., 2] == 255) & (figure[..., 1] == 0) & (figure[..., 0] == 0)
    assert red[y0 - 1, x0:x1].all() and red[y1, x0:x1].all() and red[y0:y1, x0 - 1].all() and red[y0:y1, x1].all()
    assert not red[y0:y1, x0:x1].any()
    assert red.sum() == red[y0 - 8 : y1 + 8, x0 - 8 : x1 + 8].sum()  # nowhere else
    # text grows with the panel
    _, big = figure_layout(gt, methods, box, scores, panel_size=512)
    assert big.zoom == 32 and big.text_size == pytest.approx(2 * geometry.text_size)


def test_one_zoom_for_every_image_of_a_run() -> None:
    assert plan_zoom([(512, 512)]) == (64, 4)  # 512 / 8 = 64 px shown 4x in a 256-px panel
    assert plan_zoom([(1024, 1536), (512, 512), (2040, 1356)]) == (64, 4)
    assert plan_zoom([(72, 96)]) == (16, 16)
    assert plan_zoom([(512, 512)], panel_size=300) == (60, 5)
    assert plan_zoom([(512, 512)], box=Box(1, 2, 40, 30)) == (40, 6)
    assert plan_zoom([(512, 512)], box_size=100) == (100, 2)


def test_auto_box_prefers_structure() -> None:
    """Two regions where the methods differ equally: the box goes to the textured one, not the flat one."""
    rng = np.random.default_rng(3)
    gt = np.full((64, 128), 128, np.uint8)
    gt[16:48, 80:112] = rng.integers(0, 256, (32, 32), dtype=np.uint8)  # texture on the right
    a = gt.copy()
    b = gt.astype(int)
    b[16:48, 16:48] += 30  # same error on the flat left square...
    b[16:48, 80:112] += np.where(rng.random((32, 32)) < 0.5, 30, -30)  # ...and on the texture
    b = np.clip(b, 0, 255).astype(np.uint8)
    box = auto_box(gt, [a, b], 16)
    assert 80 <= box.x <= 96 and 16 <= box.y <= 32
    # and keeps away from the edges even when they differ most
    c = a.copy()
    c[:, :3] = 0
    d = auto_box(gt, [a, c], 16)
    assert d.x >= 64 // 16


def test_figure_as_svg_and_pdf(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    methods = {"a (x)": gt[::-1].copy()}
    box = Box(20, 10, 16, 16)
    layout, _ = figure_layout(gt, methods, box, cmp._scores(gt, methods, box, 0, False))
    svg = ET.parse(write_figure(tmp_path / "f.svg", layout, "svg")).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in svg.iter(ns + "text")]
    assert texts[:2] == ["GT", "box 20,10,16,16"] and "a (x)" in texts  # text stays text
    crops = []
    for image in svg.iter(ns + "image"):
        data = base64.b64decode(image.get("href").split(",", 1)[1])
        crops.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    expected = np.kron(gt[10:26, 20:36], np.ones((16, 16, 1), np.uint8))
    assert any(c.shape == expected.shape and np.array_equal(c, expected) for c in crops)
    pdf = write_figure(tmp_path / "f.pdf", layout, "pdf").read_bytes()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    xref = int(re.search(rb"startxref\n(\d+)", pdf).group(1))
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", pdf[xref:])]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())  # the cross-reference table is right
    streams = re.findall(rb"/Width (\d+) /Height (\d+) .*?/Length (\d+) >>\nstream\n", pdf)
    found = False
    for w, h, n in streams:
        start = pdf.index(b"stream\n", pdf.index(b"/Width " + w + b" /Height " + h)) + 7
        pixels = np.frombuffer(zlib.decompress(pdf[start : start + int(n)]), np.uint8).reshape(int(h), int(w), 3)
        found |= pixels.shape == expected.shape and np.array_equal(pixels[..., ::-1], expected)  # RGB in the PDF
    assert found
    assert b"(a \\(x\\)) Tj" in zlib.decompress(pdf[pdf.rindex(b">>\nstream\n") + 10 : pdf.rindex(b"\nendstream")])


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
        section = page.split(f"<h2>{image}</h2>")[1].split("</section>")[0]
        assert re.findall(r'<tr><td data-v="([^"]+)">', section) == ["bicubic", "nearest", "linear"]  # as given
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


def test_vector_format_and_panel_size_cli(tmp_path: Path) -> None:
    folders = make_folders(tmp_path)
    out = tmp_path / "figs"
    argv = ["--gt", str(folders["gt"]), str(folders["linear"]), str(folders["bicubic"]), "-o", str(out)]
    assert main([*argv, "--format", "svg", "--panel-size", "128"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.svg", "coffee.svg", "images", "index.html"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'src="images/astronaut/figure.png"' in page and 'href="astronaut.svg"' in page
    assert cv2.imread(str(out / "images" / "astronaut" / "figure.png")) is not None
    # the default box of a 96x72 image is 16 px, enlarged 8x into 128-px panels, for both images of the run
    svg = ET.parse(out / "coffee.svg").getroot()
    sizes = {(i.get("width"), i.get("height")) for i in svg.iter("{http://www.w3.org/2000/svg}image")}
    assert ("128", "128") in sizes
    assert "crops enlarged x8 (nearest neighbour) in 128-pixel panels" in page
    assert main([*argv, "--panel-size", "32"]) == 2
