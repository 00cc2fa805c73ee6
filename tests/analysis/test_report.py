"""HTML reports: ``restore test`` with ``val: {report: true}``, and both reports rendered in headless Chromium.

The browser tests load ``index.html`` through the DevTools protocol and check that the page really works: tables
present, every image decoded (``naturalWidth > 0``), no console errors or failed loads, sorting, and the slider
(moving it changes the clip; choosing other images loads them at full resolution). They are skipped, with the
reason, where no Chromium is installed (``.ci/run`` installs Debian's ``chromium`` when apt can reach its mirror).
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from compare_data import make_folders
from headless_chromium import Browser, find_chromium
from skimage import data
from torch import nn

from restore.commands.compare import main as compare_main
from restore.evaluate import run_benchmark
from restore.utils.options import load_options

SCALE = 2


class NearestUpsampler(nn.Module):
    """x2 nearest-neighbour 'network' for a fast, deterministic benchmark run."""

    scale = SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=SCALE, mode="nearest")


def run_test_with_report(root: Path, save_img: bool = True) -> Path:
    """A two-image benchmark through ``run_benchmark`` with ``val.report``; returns the results folder."""
    gt_dir, lq_dir = root / "GT", root / "LQ"
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for name, rgb in (("astronaut", data.astronaut()), ("chelsea", data.chelsea())):
        gt = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (64, 48), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(gt_dir / f"{name}.png"), gt)
        cv2.imwrite(str(lq_dir / f"{name}.png"), cv2.resize(gt, (32, 24), interpolation=cv2.INTER_AREA))
    results = root / "results" / "mini"
    opt = {
        "name": "mini",
        "scale": SCALE,
        "num_gpu": 0,
        "datasets": {
            "test_1": {
                "name": "Mini",
                "type": "PairedImageDataset",
                "dataroot_gt": str(gt_dir),
                "dataroot_lq": str(lq_dir),
                "io_backend": {"type": "disk"},
            },
        },
        "path": {"results_root": str(results)},
        "val": {
            "save_img": save_img,
            "report": True,
            "pbar": False,
            "metrics": {
                "psnr": {"type": "calculate_psnr", "crop_border": SCALE, "test_y_channel": True},
                "ssim": {"type": "calculate_ssim", "crop_border": SCALE, "test_y_channel": True},
            },
        },
    }
    options = root / "mini.yml"
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    run_benchmark(load_options(options, is_train=False), net=NearestUpsampler())
    return results


def test_test_report_beside_metrics_csv(tmp_path: Path) -> None:
    results = run_test_with_report(tmp_path)
    page = (results / "index.html").read_text(encoding="utf-8")
    assert (results / "metrics.csv").is_file()
    with open(results / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["image"] == "average":
            continue
        html_row = re.search(rf'<tr><td data-v="{row["image"]}">.*?</tr>', page.split("<h2>Mini</h2>")[1]).group(0)
        assert re.findall(r'data-v="([-0-9.e]+)"', html_row)[:2] == [row["psnr"], row["ssim"]]  # repr in both
        links = dict((text, href) for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', html_row))
        assert links["result"] == f"visualization/Mini/{row['image']}_mini.png"
        for href in links.values():
            assert (results / html.unescape(href)).resolve().is_file(), href
    assert "http://" not in page and "https://" not in page


def test_test_report_without_saved_images(tmp_path: Path) -> None:
    results = run_test_with_report(tmp_path, save_img=False)
    page = (results / "index.html").read_text(encoding="utf-8")
    assert "val.save_img is false" in page and ">result<" not in page and ">GT<" in page


# --- in a real browser --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium on PATH: install Debian's chromium (.ci/run does so when apt can reach its mirror)")
    with Browser(executable) as chromium:
        yield chromium


IMAGES_LOADED = """
Promise.all(Array.from(document.images).map(i => i.complete ? null
    : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })))
  .then(() => Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight]))
"""

SLIDER_STATE = """
(() => { const s = document.querySelectorAll('div.slider')[%d];
  const top = s.querySelector('.top'), base = s.querySelector('img.base'), over = s.querySelector('.top img');
  return {clip: getComputedStyle(top).clipPath, value: s.querySelector('input').value,
          base: base.getAttribute('src'), over: over.getAttribute('src'),
          width: s.querySelector('.stage').getBoundingClientRect().width, natural: base.naturalWidth}; })()
"""

MOVE_SLIDER = """
(() => { const r = document.querySelectorAll('div.slider')[%d].querySelector('input');
  r.value = %s; r.dispatchEvent(new Event('input')); return r.value; })()
"""


def check_page(browser: Browser, page: Path, shot: Path) -> list[list]:
    """Open ``page``; assert tables, decoded images and no errors; save a screenshot; returns the images."""
    browser.open(page.as_uri())
    assert browser.evaluate("document.querySelectorAll('table.sortable tbody tr').length") > 0
    images = browser.evaluate(IMAGES_LOADED)
    assert images and all(width > 0 and height > 0 for _, width, height in images), images
    browser.screenshot(shot)
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[1] >= 1000 and pixels.std() > 10  # something was drawn
    assert browser.errors() == []
    return images


def test_compare_report_in_browser(browser: Browser, tmp_path: Path) -> None:
    folders = make_folders(tmp_path)
    out = tmp_path / "figs"
    args = ["--gt", str(folders["gt"]), *(str(folders[k]) for k in ("bicubic", "nearest", "linear")), "-o", str(out)]
    assert compare_main(args) == 0
    images = check_page(browser, out / "index.html", tmp_path / "compare.png")
    assert {"astronaut.png", "coffee.png", "images/astronaut/GT.png"} <= {src for src, _, _ in images}

    before = browser.evaluate(SLIDER_STATE % 0)
    assert before["natural"] == 96 and before["width"] == pytest.approx(96)  # drawn at full resolution
    assert browser.evaluate(MOVE_SLIDER % (0, 20)) == "20"
    after = browser.evaluate(SLIDER_STATE % 0)
    assert after["clip"] != before["clip"] and "80%" in after["clip"]
    # any two methods: pick others in the selects
    browser.evaluate("""(() => { const s = document.querySelector('div.slider');
        const l = s.querySelector('select.left'), r = s.querySelector('select.right');
        l.value = 'nearest'; l.dispatchEvent(new Event('change'));
        r.value = 'linear'; r.dispatchEvent(new Event('change')); })()""")
    browser.evaluate(IMAGES_LOADED)
    picked = browser.evaluate(SLIDER_STATE % 0)
    assert (picked["over"], picked["base"]) == ("images/astronaut/nearest.png", "images/astronaut/linear.png")
    assert picked["natural"] == 96

    # sorting: click the PSNR header of the first per-image table, twice
    column = """Array.from(document.querySelectorAll('section')[1].querySelectorAll('tbody tr'))
        .map(r => parseFloat(r.cells[1].getAttribute('data-v')))"""
    browser.evaluate("document.querySelectorAll('section')[1].querySelectorAll('th')[1].click()")
    ascending = browser.evaluate(column)
    assert ascending == sorted(ascending)
    browser.evaluate("document.querySelectorAll('section')[1].querySelectorAll('th')[1].click()")
    assert browser.evaluate(column) == sorted(ascending, reverse=True)
    assert browser.errors() == []


def test_test_report_in_browser(browser: Browser, tmp_path: Path) -> None:
    results = run_test_with_report(tmp_path)
    check_page(browser, results / "index.html", tmp_path / "test_report.png")
    first = browser.evaluate(SLIDER_STATE % 0)
    assert first["over"].endswith("_mini.png") and first["natural"] == 64
    # the second image's "compare" button loads it into the slider
    browser.evaluate("document.querySelectorAll('button.load')[1].click()")
    browser.evaluate(IMAGES_LOADED)
    second = browser.evaluate(SLIDER_STATE % 0)
    assert second["over"] != first["over"] and second["over"].startswith("visualization/Mini/")
    assert browser.evaluate(MOVE_SLIDER % (0, 75)) == "75"
    # the LQ input is stretched to the result's resolution
    browser.evaluate("""(() => { const r = document.querySelector('div.slider select.right');
        r.value = 'LQ'; r.dispatchEvent(new Event('change')); })()""")
    browser.evaluate(IMAGES_LOADED)
    lq = browser.evaluate(SLIDER_STATE % 0)
    assert lq["base"].endswith("LQ/chelsea.png") and lq["natural"] == 32 and lq["width"] == pytest.approx(64)
    assert "25%" in browser.evaluate(SLIDER_STATE % 0)["clip"]
    assert browser.errors() == []


def test_errors_are_detected(browser: Browser, tmp_path: Path) -> None:
    """The checks above could fail: a broken image and a script error are both reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><link rel="icon" href="data:,"><img src="missing.png"><script>nope()</script>')
    browser.open(page.as_uri())
    images = browser.evaluate(IMAGES_LOADED)
    assert images == [["missing.png", 0, 0]]
    errors = browser.errors()
    assert any("nope" in e for e in errors) and any("missing.png" in e or "network" in e for e in errors)
