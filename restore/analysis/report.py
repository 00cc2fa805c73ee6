"""Self-contained HTML reports: sortable metric tables and a before/after slider at full resolution.

One ``index.html`` holds its CSS and JavaScript inline (no CDN, no network); images are referenced by paths
relative to the file, so the folder can be moved or archived as a whole. Tables are plain HTML (readable without
JavaScript); the script adds sorting (click a header; its arrow then replaces the "higher/lower is better" one)
and the slider (pick any two images of a section, drag to reveal one over the other, both drawn at the larger one's
resolution, enlarged by an integer factor to at least 480 pixels with pixelated rendering; a caption names the image
and the two sides, and the row loaded with "compare" is marked). Images left out are listed with the reason; best
values are highlighted only in sections whose rows compete (methods on the same data).

Used by ``restore compare`` (one section per image, one row per method) and by ``restore test`` with
``val: {report: true}`` (:func:`write_test_report`: one section per dataset, one row per image).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from restore.utils.files import atomic_path

__all__ = ["Column", "Row", "Section", "relative_href", "render_report", "write_report", "write_test_report"]


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` into :attr:`Row.cells`, header ``label``, ``better`` ('higher'/'lower'/None)."""

    key: str
    label: str
    better: str | None = None
    digits: int = 4


@dataclass
class Row:
    """One table row: a first-column ``label``, values by column key, links (text -> href) and slider images."""

    label: str
    cells: dict[str, float | str | None] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)


@dataclass
class Section:
    """A titled table; ``figure`` (href) is shown above it; ``images`` (name -> href, same size) feed its slider.

    When rows carry their own ``images``, each such row gets a "compare" button that loads them into the slider.
    """

    title: str
    columns: list[Column]
    rows: list[Row]
    first_header: str = "name"
    figure: str | None = None
    images: dict[str, str] = field(default_factory=dict)
    note: str = ""
    figure_links: dict[str, str] = field(default_factory=dict)
    highlight_best: bool = True


def relative_href(target: str | os.PathLike, start: str | os.PathLike) -> str:
    """URL (percent-encoded, forward slashes) of ``target`` relative to the folder ``start``."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(start))
    return quote(Path(rel).as_posix())


def _format(value: float | str | None, digits: int) -> tuple[str, str]:
    """(shown text, sort key) of a cell."""
    if value is None:
        return "-", ""
    if isinstance(value, str):
        return value, value
    if math.isinf(value):
        return ("inf" if value > 0 else "-inf"), ("1e308" if value > 0 else "-1e308")
    if math.isnan(value):
        return "nan", ""
    return f"{value:.{digits}f}", repr(float(value))


def _best(rows: Sequence[Row], column: Column) -> float | None:
    values = [r.cells.get(column.key) for r in rows]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if column.better is None or len(numbers) < 2:
        return None
    return max(numbers) if column.better == "higher" else min(numbers)


def _section_html(index: int, section: Section) -> str:
    esc = html.escape
    parts = [f'<section id="s{index}">', f"<h2>{esc(section.title)}</h2>"]
    if section.note:
        parts.append(f'<p class="note">{esc(section.note)}</p>')
    if section.figure:
        href = esc(section.figure)
        parts.append(f'<p><a href="{href}"><img class="figure" src="{href}" alt="figure"></a></p>')
    if section.figure_links:
        links = " ".join(f'<a href="{esc(h)}">{esc(n)}</a>' for n, h in section.figure_links.items())
        parts.append(f'<p class="note">{links}</p>')
    has_links = any(r.links for r in section.rows)
    has_compare = any(r.images for r in section.rows)
    header = [f'<th data-type="text">{esc(section.first_header)}</th>']
    for c in section.columns:
        arrow = {"higher": " &uarr;", "lower": " &darr;"}.get(c.better or "", "")  # hidden while sorted by it
        arrow = f'<span class="better">{arrow}</span>' if arrow else ""
        header.append(f'<th data-type="number">{esc(c.label)}{arrow}</th>')
    if has_links:
        header.append('<th class="nosort">files</th>')
    if has_compare:
        header.append('<th class="nosort"></th>')
    parts += ['<table class="sortable">', "<thead><tr>" + "".join(header) + "</tr></thead>", "<tbody>"]
    best = {c.key: _best(section.rows, c) if section.highlight_best else None for c in section.columns}
    for row in section.rows:
        cells = [f'<td data-v="{esc(row.label)}">{esc(row.label)}</td>']
        for c in section.columns:
            value = row.cells.get(c.key)
            text, key = _format(value, c.digits)
            is_best = best[c.key] is not None and isinstance(value, (int, float)) and float(value) == best[c.key]
            cls = ' class="best"' if is_best else ""
            cells.append(f'<td data-v="{esc(key)}"{cls}>{esc(text)}</td>')
        if has_links:
            links = " ".join(f'<a href="{esc(href)}">{esc(name)}</a>' for name, href in row.links.items())
            cells.append(f"<td>{links}</td>")
        if has_compare:
            button = (
                f'<button class="load" data-title="{esc(row.label)}" '
                f"data-images='{esc(json.dumps(row.images))}'>compare</button>"
                if row.images
                else ""
            )
            cells.append(f"<td>{button}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts += ["</tbody>", "</table>"]
    if section.images:
        title = next((r.label for r in section.rows if r.images == section.images), section.title)
        parts.append(f"<div class=\"slider\" data-title=\"{esc(title)}\" "
                     f"data-images='{esc(json.dumps(section.images))}'></div>")  # fmt: skip
    parts.append("</section>")
    return "\n".join(parts)


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; cursor: pointer; user-select: none; } th.nosort { cursor: default; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
th.asc .better, th.desc .better { display: none; }
tr.current td { background: #fff3bf; }
.slider .caption { margin: 0.3em 0; font-weight: bold; }
ul.skipped li { color: #900; }
td.best { font-weight: bold; color: #b00; }
img.figure { max-width: 100%; border: 1px solid #ccc; }
.note { color: #555; }
.slider { margin: 0.8em 0; }
.slider .controls { margin-bottom: 0.4em; }
.slider .view { max-width: 100%; max-height: 85vh; overflow: auto; border: 1px solid #ccc; display: inline-block; }
.slider .stage { position: relative; display: inline-block; line-height: 0; }
.slider .stage img { image-rendering: pixelated; display: block; }
.slider .top { position: absolute; left: 0; top: 0; width: 100%; height: 100%; overflow: hidden; }
.slider .top img { width: 100%; height: 100%; }
.slider .line { position: absolute; top: 0; height: 100%; width: 0; border-left: 2px solid #ff0; pointer-events: none; }
.slider input[type=range] { width: 30em; vertical-align: middle; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  function sortTable(table, column, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = th.getAttribute("data-type") === "number";
    var ascending = !th.classList.contains("asc");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.classList.remove("asc", "desc");
    });
    th.classList.add(ascending ? "asc" : "desc");
    rows.sort(function (a, b) {
      var x = a.cells[column].getAttribute("data-v") || "", y = b.cells[column].getAttribute("data-v") || "";
      var order;
      if (numeric) {
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        order = parseFloat(x) - parseFloat(y);
      } else {
        order = x.localeCompare(y);
      }
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      if (th.classList.contains("nosort")) { return; }
      th.addEventListener("click", function () { sortTable(table, column, th); });
    });
  });

  var MIN_SIDE = 480;
  function option(select, name) {
    var o = document.createElement("option");
    o.value = name; o.textContent = name; select.appendChild(o);
  }
  function buildSlider(box) {
    box.innerHTML = "";
    var images = JSON.parse(box.getAttribute("data-images"));
    var names = Object.keys(images);
    var controls = document.createElement("div"); controls.className = "controls";
    var left = document.createElement("select"), right = document.createElement("select");
    left.className = "left"; right.className = "right";
    names.forEach(function (n) { option(left, n); option(right, n); });
    left.value = names[0]; right.value = names[Math.min(1, names.length - 1)];
    var range = document.createElement("input");
    range.type = "range"; range.min = 0; range.max = 100; range.step = 0.1; range.value = 50;
    controls.appendChild(document.createTextNode("left "));
    controls.appendChild(left);
    controls.appendChild(document.createTextNode(" "));
    controls.appendChild(range);
    controls.appendChild(document.createTextNode(" right "));
    controls.appendChild(right);
    var caption = document.createElement("p"); caption.className = "caption";
    var view = document.createElement("div"); view.className = "view";
    var stage = document.createElement("div"); stage.className = "stage";
    var base = document.createElement("img"); base.className = "base"; base.alt = "right";
    var top = document.createElement("div"); top.className = "top";
    var over = document.createElement("img"); over.alt = "left";
    var line = document.createElement("div"); line.className = "line";
    top.appendChild(over); stage.appendChild(base); stage.appendChild(top); stage.appendChild(line);
    view.appendChild(stage); box.appendChild(caption); box.appendChild(controls); box.appendChild(view);
    function clip() {
      var v = parseFloat(range.value);
      top.style.clipPath = "inset(0 " + (100 - v) + "% 0 0)";
      line.style.left = v + "%";
    }
    function fit() {  // both drawn at the larger one's resolution (an LQ input is stretched, pixel for pixel),
      // small images enlarged by an integer factor to at least MIN_SIDE pixels (pixels stay square: pixelated)
      if (!over.naturalWidth || !base.naturalWidth) { return; }
      var w = Math.max(over.naturalWidth, base.naturalWidth), h = Math.max(over.naturalHeight, base.naturalHeight);
      var k = Math.max(1, Math.floor(MIN_SIDE / Math.max(w, h)));
      base.style.width = (w * k) + "px";
      base.style.height = (h * k) + "px";
      caption.textContent = box.getAttribute("data-title") + ": left " + left.value + ", right " + right.value +
        " (" + w + "x" + h + (k > 1 ? ", shown x" + k : "") + ")";
    }
    over.addEventListener("load", fit);
    base.addEventListener("load", fit);
    function load() {
      over.src = images[left.value];
      base.src = images[right.value];
    }
    range.addEventListener("input", clip);
    left.addEventListener("change", load);
    right.addEventListener("change", load);
    stage.addEventListener("click", function (event) {
      var rect = stage.getBoundingClientRect();
      range.value = 100 * (event.clientX - rect.left) / rect.width;
      clip();
    });
    load(); clip();
  }
  Array.prototype.forEach.call(document.querySelectorAll("div.slider"), function (box) {
    var first = box.closest("section").querySelector("button.load[data-title=\"" +
      CSS.escape(box.getAttribute("data-title")) + "\"]");
    if (first) { first.closest("tr").classList.add("current"); }
    buildSlider(box);
  });
  Array.prototype.forEach.call(document.querySelectorAll("button.load"), function (button) {
    button.addEventListener("click", function () {
      var section = button.closest("section"), box = section.querySelector("div.slider");
      Array.prototype.forEach.call(section.querySelectorAll("tr.current"), function (tr) {
        tr.classList.remove("current");
      });
      button.closest("tr").classList.add("current");
      box.setAttribute("data-images", button.getAttribute("data-images"));
      box.setAttribute("data-title", button.getAttribute("data-title"));
      buildSlider(box);
      box.scrollIntoView();
    });
  });
})();
"""


def render_report(
    title: str, sections: Sequence[Section], intro: str = "", skipped: Sequence[str] = (), protocol: str = ""
) -> str:
    """The complete HTML document (a string) for ``sections``; ``skipped`` lines (one per image left out, with the
    reason) are listed before them, ``protocol`` (how the numbers were measured) under the title."""
    esc = html.escape
    toc = ""
    if len(sections) > 1:
        items = "".join(f'<li><a href="#s{i}">{esc(s.title)}</a></li>' for i, s in enumerate(sections))
        toc = f"<ul>{items}</ul>"
    body = "\n".join(_section_html(i, s) for i, s in enumerate(sections))
    if skipped:
        items = "".join(f"<li>{esc(line)}</li>" for line in skipped)
        body = (f'<section id="skipped"><h2>skipped images ({len(skipped)})</h2>\n<ul class="skipped">{items}</ul>'
                f"\n</section>\n{body}")  # fmt: skip
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n"
        + (f'<p class="note">{esc(intro)}</p>\n' if intro else "")
        + (f'<p class="protocol">protocol: {esc(protocol)}</p>\n' if protocol else "")
        + toc
        + "\n"
        + body
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def write_report(
    path: str | os.PathLike,
    title: str,
    sections: Sequence[Section],
    intro: str = "",
    skipped: Sequence[str] = (),
    protocol: str = "",
) -> Path:
    """Write :func:`render_report` to ``path`` atomically (UTF-8); returns the path."""
    text = render_report(title, sections, intro, skipped, protocol)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


#: Largest side of a GT/LQ image copied into a ``restore test`` report; larger ones are downscaled (area).
REPORT_MAX_SIDE = 2048
#: Bytes of GT/LQ copies one ``restore test`` report may add to the results folder; the images past it get no
#: GT/LQ link (the page says how many).
REPORT_BUDGET_BYTES = 256 * 2**20


def _copy_shown(source: str | os.PathLike, target: Path) -> tuple[int, bool] | None:
    """Copy an image the report shows into the results folder as PNG, downscaled to :data:`REPORT_MAX_SIDE`.

    Returns ``(bytes written, downscaled)``, or None when ``source`` cannot be read.
    """
    import cv2
    import numpy as np

    from restore.data.benchmark import write_uint8

    data = np.fromfile(str(source), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        return None
    if img.dtype != np.uint8:
        img = np.round(img.astype(np.float64) / 257.0).clip(0, 255).astype(np.uint8)
    height, width = img.shape[:2]
    downscaled = max(height, width) > REPORT_MAX_SIDE
    if downscaled:
        f = REPORT_MAX_SIDE / max(height, width)
        img = cv2.resize(img, (max(1, round(width * f)), max(1, round(height * f))), interpolation=cv2.INTER_AREA)
    write_uint8(target, img)
    return target.stat().st_size, downscaled


def write_test_report(results: Sequence[Any], specs: Sequence[Any], opt: Mapping[str, Any], protocol: str = "") -> Path:
    """``index.html`` in ``path.results_root`` for a ``restore test`` run (``val: {report: true}``).

    A summary table (datasets x metric averages), then per dataset a table of its images with their metrics and
    links to the restored image (when ``val.save_img``), the GT and the LQ input; "compare" opens the slider
    between the restored image and the GT (or the LQ, stretched to the same size). No value is highlighted as
    "best": rows are different datasets or different images, which do not compete.

    The page is self-contained: the GT and LQ images it shows are copied (as PNG) under ``report/<dataset>/`` in
    the results folder, so ``results/<name>/`` can be moved or shared as a whole. Copies are downscaled to
    :data:`REPORT_MAX_SIDE` pixels on their longer side (the page says which) and stop at
    :data:`REPORT_BUDGET_BYTES`; later images get no GT/LQ link.

    Args:
        results: ``restore.evaluate.DatasetResult`` per dataset (``name``, ``metrics``, ``images``, ``averages``).
        specs: ``restore.evaluate.MetricSpec`` per metric (``name``, ``better``).
        opt: the loaded options (``name``, ``path.results_root``, ``path.visualization``, ``val``).
        protocol: one line saying how the numbers were measured, shown under the title.
    """
    root = Path(opt["path"]["results_root"])
    val = opt.get("val") or {}
    suffix = val.get("suffix") or opt.get("name")
    columns = [Column(s.name, s.name, s.better) for s in specs]
    summary = Section(
        "averages",
        [*columns, Column("count", "images", None, 0), Column("seconds", "seconds", None, 1)],
        [Row(r.name, {**r.averages, "count": float(len(r.images)), "seconds": r.seconds}) for r in results],
        first_header="dataset",
        highlight_best=False,
    )
    sections = [summary]
    used = 0
    for result in results:
        rows, downscaled, over_budget = [], 0, 0
        for img in result.images:
            links: dict[str, str] = {}
            saved = Path(opt["path"]["visualization"]) / result.name / f"{img['image']}_{suffix}.png"
            if val.get("save_img") and saved.is_file():
                links["result"] = relative_href(saved, root)
            for key, label in (("gt_path", "GT"), ("lq_path", "LQ")):
                if not img.get(key):
                    continue
                if used > REPORT_BUDGET_BYTES:
                    over_budget += 1
                    continue
                target = root / "report" / result.name / f"{img['image']}_{label}.png"
                copied = _copy_shown(img[key], target)
                if copied is not None:
                    used += copied[0]
                    downscaled += copied[1]
                    links[label] = relative_href(target, root)
            images = dict(links) if "result" in links else {}
            rows.append(Row(img["image"], {m: img.get(m) for m in result.metrics}, links, images))
        first = next((r.images for r in rows if r.images), {})
        notes = [] if val.get("save_img") else ["restored images were not saved (val.save_img is false)"]
        if downscaled:
            notes.append(f"{downscaled} GT/LQ copies downscaled to {REPORT_MAX_SIDE} px on the longer side")
        if over_budget:
            notes.append(f"{over_budget} GT/LQ images not copied: the report's {REPORT_BUDGET_BYTES >> 20} MiB "
                         "budget is spent")  # fmt: skip
        sections.append(Section(result.name, columns, rows, first_header="image", images=first,
                                note="; ".join(notes), highlight_best=False))  # fmt: skip
    intro = f"{opt.get('name')}: {(opt.get('network_g') or {}).get('type', '')}".rstrip(": ")
    return write_report(root / "index.html", f"restore test: {opt.get('name')}", sections, intro, protocol=protocol)
