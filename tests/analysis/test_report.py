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
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
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


def test_test_report_is_self_contained_states_its_protocol_and_ranks_nothing(tmp_path: Path) -> None:
    results = run_test_with_report(tmp_path)
    page = (results / "index.html").read_text(encoding="utf-8")
    assert 'class="best"' not in page  # neither datasets nor images of one dataset compete
    protocol = re.search(r'<p class="protocol">(.*?)</p>', page).group(1)
    assert protocol == (
        "protocol: psnr: crop border 2, Y channel (unrounded, y_channel_uint8 false); ssim: crop border 2, Y channel "
        "(unrounded, y_channel_uint8 false), full size; whole images (no tiling); precision fp32"
    )
    for name in ("astronaut", "chelsea"):
        for label, folder in (("GT", "GT"), ("LQ", "LQ")):
            copy = cv2.imread(str(results / "report" / "Mini" / f"{name}_{label}.png"))
            assert np.array_equal(copy, cv2.imread(str(tmp_path / folder / f"{name}.png")))
    assert "../" not in page


def test_test_report_copies_within_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from restore.analysis import report

    monkeypatch.setattr(report, "REPORT_MAX_SIDE", 40)  # the 64 x 48 GT images are downscaled to 40 x 30
    monkeypatch.setattr(report, "REPORT_BUDGET_BYTES", 1)  # the first copy spends the budget
    results = run_test_with_report(tmp_path)
    page = (results / "index.html").read_text(encoding="utf-8")
    copies = sorted(p.name for p in (results / "report" / "Mini").iterdir())
    assert copies == ["astronaut_GT.png"]  # the budget is checked before each copy
    assert cv2.imread(str(results / "report" / "Mini" / "astronaut_GT.png")).shape == (30, 40, 3)
    assert "1 GT/LQ copies downscaled to 40 px on the longer side" in page
    assert "3 GT/LQ images not copied: the report&#x27;s 0 MiB budget is spent" in page
    for href in re.findall(r'(?:src|href)="([^"#:]+)"', page):
        assert (results / href).is_file(), href


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


ALL_REFERENCES = """
Promise.all(Array.from(new Set([].concat(
    Array.from(document.querySelectorAll('[src]')).map(e => e.getAttribute('src')),
    Array.from(document.querySelectorAll('a[href]')).map(e => e.getAttribute('href')),
    ...Array.from(document.querySelectorAll('[data-images]')).map(e => Object.values(JSON.parse(e.dataset.images)))
  ))).filter(src => !src.startsWith('#') && !src.startsWith('data:') && !src.endsWith('.pdf'))
  .map(src => new Promise(r => { const i = new Image();
    i.onload = () => r([src, i.naturalWidth]); i.onerror = () => r([src, 0]); i.src = src; })))
"""


def move(folder: Path, to: Path) -> Path:
    """Move ``folder`` to ``to`` (elsewhere on disk): what sharing or archiving a results folder does."""
    to.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(str(folder), str(to)))


def check_page(browser: Browser, page: Path, shot: Path) -> list[list]:
    """Open ``page``; assert tables, decoded images, every reference local and loadable, no errors; screenshot."""
    text = page.read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
        ref = html.unescape(ref)
        assert ref.startswith("#") or ref == "data:," or ("://" not in ref and not ref.startswith("/")), ref
        if not (ref.startswith("#") or ref == "data:,"):
            target = (page.parent / unquote(ref)).resolve()
            assert target.is_relative_to(page.parent.resolve()) and target.is_file(), ref  # inside the folder
    browser.open(page.as_uri())
    assert browser.evaluate("document.querySelectorAll('table.sortable tbody tr').length") > 0
    images = browser.evaluate(IMAGES_LOADED)
    assert images and all(width > 0 and height > 0 for _, width, height in images), images
    references = browser.evaluate(ALL_REFERENCES)
    assert references and all(width > 0 for _, width in references), references  # links and slider images too
    browser.screenshot(shot)
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[1] >= 1000 and pixels.std() > 10  # something was drawn
    assert browser.errors() == []
    return images


def test_compare_report_in_browser(browser: Browser, tmp_path: Path) -> None:
    folders = make_folders(tmp_path)
    cv2.imwrite(str(folders["gt"] / "lonely.png"), np.zeros((72, 96, 3), np.uint8))  # no result anywhere
    cv2.imwrite(str(folders["bicubic"] / "coffee_Bicubic.png"), np.zeros((70, 96, 3), np.uint8))  # wrong size
    out = tmp_path / "figs"
    args = ["--gt", str(folders["gt"]), *(str(folders[k]) for k in ("bicubic", "nearest", "linear")), "-o", str(out)]
    assert compare_main(args) == 1
    shutil.rmtree(folders["gt"])  # nothing may point back at the inputs
    out = move(out, tmp_path / "elsewhere" / "shared figs")
    images = check_page(browser, out / "index.html", tmp_path / "compare.png")
    assert {"astronaut.png", "images/astronaut/GT.png"} <= {src for src, _, _ in images}
    skipped = browser.evaluate("Array.from(document.querySelectorAll('ul.skipped li')).map(li => li.textContent)")
    assert len(skipped) == 2 and "70x96" in skipped[0] and skipped[1] == "lonely: no result in any folder"

    before = browser.evaluate(SLIDER_STATE % 0)
    assert before["natural"] == 96 and before["width"] == pytest.approx(480)  # 96 px enlarged 5x (>= 480 px)
    assert browser.evaluate("getComputedStyle(document.querySelector('.slider img.base')).imageRendering") == (
        "pixelated"
    )
    assert browser.evaluate("document.querySelector('.slider .caption').textContent").startswith(
        "astronaut: left GT, right bicubic (96x72, shown x5)"
    )
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

    # sorting: click the PSNR header of the first per-image table, twice; one arrow at a time in the header
    section = "document.querySelectorAll('section')[2]"
    column = f"""Array.from({section}.querySelectorAll('tbody tr'))
        .map(r => parseFloat(r.cells[1].getAttribute('data-v')))"""
    header = f"""(() => {{ const th = {section}.querySelectorAll('th')[1];
        return th.innerText + getComputedStyle(th, '::after').content; }})()"""
    assert browser.evaluate(header).count("\u2191") == 1
    browser.evaluate(f"{section}.querySelectorAll('th')[1].click()")
    ascending = browser.evaluate(column)
    assert ascending == sorted(ascending)
    shown = browser.evaluate(header)
    assert "\u25b2" in shown and "\u2191" not in shown  # the sort arrow replaces "higher is better"
    browser.evaluate(f"{section}.querySelectorAll('th')[1].click()")
    assert browser.evaluate(column) == sorted(ascending, reverse=True)
    assert browser.errors() == []


def test_test_report_in_browser(browser: Browser, tmp_path: Path) -> None:
    results = run_test_with_report(tmp_path)
    shutil.rmtree(tmp_path / "GT")  # the dataset is gone: the report must carry what it shows
    shutil.rmtree(tmp_path / "LQ")
    results = move(results, tmp_path / "shared" / "mini")
    check_page(browser, results / "index.html", tmp_path / "test_report.png")
    assert browser.evaluate("document.querySelectorAll('td.best').length") == 0  # datasets and images do not compete
    protocol = browser.evaluate("document.querySelector('p.protocol').textContent")
    assert "psnr: crop border 2, Y channel" in protocol and "whole images (no tiling)" in protocol
    assert "precision fp32" in protocol and "ssim: crop border 2" in protocol and "full size" in protocol
    first = browser.evaluate(SLIDER_STATE % 0)
    assert first["over"].endswith("_mini.png") and first["natural"] == 64
    caption = "document.querySelector('.slider .caption').textContent"
    current = "Array.from(document.querySelectorAll('tr.current')).map(r => r.cells[0].textContent)"
    assert browser.evaluate(caption).startswith("astronaut: left result, right GT")
    assert browser.evaluate(current) == ["astronaut"]
    # the second image's "compare" button loads it into the slider and marks its row
    browser.evaluate("document.querySelectorAll('button.load')[1].click()")
    browser.evaluate(IMAGES_LOADED)
    second = browser.evaluate(SLIDER_STATE % 0)
    assert second["over"] != first["over"] and second["over"].startswith("visualization/Mini/")
    assert browser.evaluate(caption).startswith("chelsea: left result, right GT")
    assert browser.evaluate(current) == ["chelsea"]
    assert browser.evaluate(MOVE_SLIDER % (0, 75)) == "75"
    # the LQ input (copied into the results folder) is stretched to the result's resolution
    browser.evaluate("""(() => { const r = document.querySelector('div.slider select.right');
        r.value = 'LQ'; r.dispatchEvent(new Event('change')); })()""")
    browser.evaluate(IMAGES_LOADED)
    lq = browser.evaluate(SLIDER_STATE % 0)
    assert lq["base"] == "report/Mini/chelsea_LQ.png" and lq["natural"] == 32
    assert lq["width"] == pytest.approx(64 * 7)  # 64 px enlarged 7x (>= 480 px)
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
    assert browser.evaluate(ALL_REFERENCES) == [["missing.png", 0]]
