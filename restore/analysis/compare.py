"""Paper-style comparison figures: ``restore compare --gt GT_DIR RESULT_DIR ... -o figs/``.

For every GT image that every result folder has a result for, a figure (PNG, or SVG/PDF with ``--format``) shows
the GT with the box drawn, then the box of the GT and of each method (in the command line's order), each crop
enlarged by one integer nearest-neighbour factor into a fixed-size panel (``--panel-size``, default 256 px; the
same zoom for every image of a run, :func:`plan_zoom`), labelled with the method's PSNR/SSIM over the box and over
the whole image (``restore.metrics.calculate_psnr``/``calculate_ssim``, the code of ``restore test``;
``--crop-border`` and ``--y-channel`` apply to the whole-image values, the box is measured as it is). The automatic
box (:func:`auto_box`) goes where the methods differ most on structure of the GT. ``index.html`` beside the
figures lists the skipped images with the reason, then has a sortable table per image and a before/after slider;
the images it shows are written (as PNG) under ``images/``, so the output folder is self-contained.

Matching by stem: a result ``R`` belongs to the GT image ``G`` when ``R == G``, ``R`` starts with ``G_`` (the
``_<suffix>`` of ``restore test`` and of ``restore infer --suffix _x4``) or with ``Gx<digits>`` (LR-style names such
as ``0801x4``); a result that fits several GT stems goes to the longest.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from restore.analysis.figure_doc import FORMATS, Layout, Rect, Text, text_width, write_figure
from restore.analysis.report import Column, Row, Section, relative_href, write_report
from restore.data.benchmark import write_uint8
from restore.data.image_io import IMAGE_SUFFIXES
from restore.metrics import calculate_psnr, calculate_ssim
from restore.metrics._prepare import y_channel_hwc

__all__ = [
    "Box", "CompareError", "CompareResult", "FigureGeometry", "auto_box", "compare_folders", "figure_layout",
    "make_figure", "match_results", "plan_zoom",
]  # fmt: skip

#: Smallest box side: SSIM's 11x11 window must fit in the crop.
MIN_BOX = 11
#: Default side of a crop panel in the figure, pixels (``--panel-size``).
PANEL_SIZE = 256
#: Colour of the box on the overview (RGB) and of the best box PSNR.
BOX_COLOUR = (255, 0, 0)
BEST_COLOUR = (200, 0, 0)


class CompareError(ValueError):
    """Unusable flags or folders (one line naming what is wrong)."""


@dataclass(frozen=True)
class Box:
    """A window in image pixels: ``x`` column and ``y`` row of its top-left corner, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int

    def fits(self, height: int, width: int) -> bool:
        return self.x >= 0 and self.y >= 0 and self.x + self.w <= width and self.y + self.h <= height

    def crop(self, img: np.ndarray) -> np.ndarray:
        return img[self.y : self.y + self.h, self.x : self.x + self.w]

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


@dataclass
class MethodScore:
    """PSNR (dB) / SSIM of one method on one image: over the whole image and over the box."""

    name: str
    psnr: float
    ssim: float
    crop_psnr: float
    crop_ssim: float


@dataclass
class CompareResult:
    """What :func:`compare_folders` did: figures written, per-image scores, one line per skipped image."""

    figures: dict[str, Path] = field(default_factory=dict)
    scores: dict[str, list[MethodScore]] = field(default_factory=dict)
    boxes: dict[str, Box] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # GT stems that no result folder has
    report: Path | None = None
    zoom: int = 1
    panel_size: int = PANEL_SIZE


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _stem_matches(result_stem: str, gt_stem: str) -> bool:
    if result_stem == gt_stem:
        return True
    if not result_stem.startswith(gt_stem):
        return False
    rest = result_stem[len(gt_stem) :]
    return rest.startswith("_") or re.match(r"x\d+(_|$)", rest) is not None


def match_results(gt_stems: Sequence[str], result_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Result file of each GT stem found in ``result_dir`` (see the module docstring), and notes on ambiguities.

    When several files match one GT stem, an exact stem wins, else the first by name (a note says which).
    """
    candidates: dict[str, list[Path]] = {}
    for path in _image_files(result_dir):
        fitting = [g for g in gt_stems if _stem_matches(path.stem, g)]
        if fitting:
            candidates.setdefault(max(fitting, key=len), []).append(path)
    matched, notes = {}, []
    for stem, paths in candidates.items():
        exact = [p for p in paths if p.stem == stem]
        chosen = (exact or paths)[0]
        if len(paths) > 1:
            others = ", ".join(p.name for p in paths if p != chosen)
            notes.append(f"{result_dir}: several results for {stem}: using {chosen.name}, not {others}")
        matched[stem] = chosen
    return matched, notes


def read_uint8(path: Path) -> np.ndarray:
    """Image file -> uint8 BGR (H, W, 3) or gray (H, W); 16-bit is rounded to 8 bits, alpha is dropped."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise OSError(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise OSError(f"{path}: unsupported pixel type {img.dtype} (expected 8 or 16 bits)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.ascontiguousarray(img)


def _bgr(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img


def _rgb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _error_map(method: np.ndarray, gt: np.ndarray, y_channel: bool) -> np.ndarray:
    """(H, W) float64 absolute error, mean over channels (or on Y with ``y_channel``), 0..255 scale."""
    a, b = method.astype(np.float64), gt.astype(np.float64)
    if a.ndim == 2:
        return np.abs(a - b)
    if y_channel:
        a = y_channel_hwc(method, False, "auto_box")[..., 0].astype(np.float64)
        b = y_channel_hwc(gt, False, "auto_box")[..., 0].astype(np.float64)
        return np.abs(a - b)
    return np.abs(a - b).mean(axis=2)


def default_box_size(height: int, width: int) -> int:
    """Side of the ``--auto-box`` window for one image: min(H, W) / 8, within [16, 128] (and the image)."""
    return int(min(max(min(height, width) // 8, 16), 128, height, width))


def plan_zoom(sizes: Sequence[tuple[int, int]], panel_size: int = PANEL_SIZE, box: Box | None = None,
              box_size: int | None = None) -> tuple[int, int]:  # fmt: skip
    """``(box side, zoom)`` for every image of a run, so that all crops are enlarged alike.

    With ``box`` the side is its longer edge; with ``box_size`` that side; otherwise the smallest
    :func:`default_box_size` of the GT ``sizes`` ((H, W) each) is rounded to the side whose integer zoom fills
    ``panel_size``: zoom = round(panel_size / side), side = panel_size // zoom (never larger than the smallest
    image). The zoom is ``max(1, panel_size // side)``: the crop shown is ``side * zoom <= panel_size`` pixels.
    """
    if box is not None:
        side = max(box.w, box.h)
    elif box_size is not None:
        side = box_size
    else:
        smallest = min(min(h, w) for h, w in sizes)
        wanted = min(default_box_size(h, w) for h, w in sizes)
        side = min(panel_size // max(1, round(panel_size / wanted)), smallest)
    return side, max(1, panel_size // side)


def _gradient_energy(gt: np.ndarray) -> np.ndarray:
    """(H, W) float64 Sobel gradient magnitude of the GT's luminance (mean of the channels), 0..255 scale."""
    gray = gt.astype(np.float64) if gt.ndim == 2 else gt.astype(np.float64).mean(axis=2)
    dx = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3) / 8.0
    dy = cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3) / 8.0
    return np.sqrt(dx * dx + dy * dy)


def box_margin(height: int, width: int, size: int, crop_border: int = 0) -> int:
    """Distance the auto box keeps from the image edges: max(crop_border, min(H, W) // 16), reduced if needed so
    that a ``size`` window still fits (0 at worst)."""
    margin = max(crop_border, min(height, width) // 16)
    return max(0, min(margin, (min(height, width) - size) // 2))


def auto_box(
    gt: np.ndarray, methods: Sequence[np.ndarray], size: int, crop_border: int = 0, y_channel: bool = False
) -> Box:
    """The ``size`` x ``size`` window where the methods differ most on structure of the GT.

    The score of a pixel is the spread of the methods' absolute errors against ``gt`` (their variance over methods;
    with a single method, its absolute error) times the GT's gradient magnitude there (Sobel, on the mean of the
    channels), so flat regions, where every method is right or where differences do not show, count for little.
    The window with the largest summed score wins (the first in row-major order on ties). Windows keep
    :func:`box_margin` pixels away from the edges (the crop border, at least 1/16 of the short side), where padding
    makes methods differ on nothing a reader would look at.

    Args:
        gt: uint8 (H, W, 3) BGR or (H, W); methods: same shape as ``gt``; size: window side in pixels.
    """
    height, width = gt.shape[:2]
    size = min(size, height, width)
    errors = np.stack([_error_map(m, gt, y_channel) for m in methods])
    spread = errors.var(axis=0) if len(methods) > 1 else errors[0]
    score = spread * _gradient_energy(gt)
    border = box_margin(height, width, size, crop_border)
    region = score[border : height - border, border : width - border]
    sums = cv2.integral(np.ascontiguousarray(region, dtype=np.float64))
    windows = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(windows)), windows.shape)
    return Box(int(x) + border, int(y) + border, size, size)


def _zoom(img: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def _fmt(psnr: float, ssim: float) -> str:
    p = "inf" if math.isinf(psnr) else f"{psnr:.2f}"
    return f"{p} dB / {ssim:.4f}"


def shorten(text: str, width: float, cap: float) -> str:
    """``text``, cut and ended with ``..`` until it is at most ``width`` pixels wide at cap height ``cap``."""
    if text_width(text, cap) <= width:
        return text
    while len(text) > 1 and text_width(text + "..", cap) > width:
        text = text[:-1]
    return text + ".."


@dataclass(frozen=True)
class FigureGeometry:
    """Where :func:`figure_layout` put things, in figure pixels: crop panels (x, y) by label, the panel side, the
    zoom, the overview's rectangle (x, y, w, h) and the text cap height."""

    panels: dict[str, tuple[int, int]]
    panel_size: int
    zoom: int
    overview: tuple[int, int, int, int]
    text_size: float


def figure_layout(
    gt: np.ndarray,
    methods: dict[str, np.ndarray],
    box: Box,
    scores: Sequence[MethodScore],
    zoom: int | None = None,
    panel_size: int = PANEL_SIZE,
) -> tuple[Layout, FigureGeometry]:
    """The figure: the GT overview with the box, then the box of GT and of every method, in ``scores`` order.

    Each crop is enlarged ``zoom`` times with nearest-neighbour (default ``panel_size // max(w, h)``) and centred
    in a square panel ``max(panel_size, zoom * max(w, h))`` pixels wide; under it, the method's name, its
    PSNR/SSIM over the box (the best in red) and over the whole image. Text is one size for the whole figure,
    about 1/17 of the panel (shrunk only if a metric line would not fit; long names are shortened with ``..``).
    More than four panels wrap onto two rows. The overview is as tall as the panels' grid (at least one panel),
    the box drawn outside the pixels it marks.
    """
    zoom = zoom or max(1, panel_size // max(box.w, box.h))
    side = max(panel_size, zoom * max(box.w, box.h))
    lines = [("GT", [f"box {box}", ""], None)]
    best = max((s.crop_psnr for s in scores), default=None)
    for s in scores:
        red = len(scores) > 1 and s.crop_psnr == best
        lines.append((s.name, [f"box {_fmt(s.crop_psnr, s.crop_ssim)}", f"image {_fmt(s.psnr, s.ssim)}"], red))
    cap = side / 17
    widest = max(text_width(t, 1.0) for _, rows, _ in lines for t in rows if t)
    cap = min(cap, side * 0.96 / widest)
    gap = max(8, side // 32)
    line_h = round(cap * 1.9)
    cell_h = side + round(cap * 0.8) + 3 * line_h
    n = len(lines)
    per_row = n if n <= 4 else math.ceil(n / 2)
    rows = math.ceil(n / per_row)
    grid_h = rows * cell_h + (rows - 1) * gap
    ov_h = grid_h
    ov_w = max(1, round(gt.shape[1] * ov_h / gt.shape[0]))
    scale = ov_h / gt.shape[0]
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    overview = cv2.resize(_rgb(gt), (ov_w, ov_h), interpolation=interpolation)
    t = max(2, round(side / 128))
    width = gap + ov_w + 2 * gap + per_row * side + (per_row - 1) * gap + gap
    layout = Layout(width, grid_h + 2 * gap)
    layout.images.append((gap, gap, overview))
    x0, y0 = round(gap + box.x * scale), round(gap + box.y * scale)
    x1, y1 = round(gap + (box.x + box.w) * scale), round(gap + (box.y + box.h) * scale)
    layout.rects.append(Rect(x0, y0, max(1, x1 - x0), max(1, y1 - y0), BOX_COLOUR, t))
    crops = {"GT": gt, **methods}
    panels = {}
    for i, (label, texts, red) in enumerate(lines):
        r, c = divmod(i, per_row)
        px, py = gap + ov_w + 2 * gap + c * (side + gap), gap + r * (cell_h + gap)
        tile = _zoom(_rgb(box.crop(crops[label])), zoom)
        ox, oy = px + (side - tile.shape[1]) // 2, py + (side - tile.shape[0]) // 2
        layout.images.append((ox, oy, tile))
        panels[label] = (ox, oy)
        cx = px + side / 2
        base = py + side + round(cap * 0.8)
        layout.texts.append(Text(shorten(label, side - 8, cap), cx, base + line_h * 0.75, cap))
        for k, text in enumerate(texts):
            if text:
                colour = BEST_COLOUR if (red and k == 0) else (0, 0, 0)
                layout.texts.append(Text(text, cx, base + line_h * (k + 1.75), cap, colour))
    geometry = FigureGeometry(panels, side, zoom, (gap, gap, ov_w, ov_h), cap)
    return layout, geometry


def make_figure(
    gt: np.ndarray,
    methods: dict[str, np.ndarray],
    box: Box,
    scores: Sequence[MethodScore],
    zoom: int | None = None,
    panel_size: int = PANEL_SIZE,
) -> np.ndarray:
    """:func:`figure_layout` drawn as one uint8 BGR image."""
    layout, _ = figure_layout(gt, methods, box, scores, zoom, panel_size)
    return cv2.cvtColor(layout.raster(), cv2.COLOR_RGB2BGR)


def _scores(
    gt: np.ndarray, methods: dict[str, np.ndarray], box: Box, crop_border: int, y_channel: bool
) -> list[MethodScore]:
    out = []
    for name, img in methods.items():
        whole = {"crop_border": crop_border, "test_y_channel": y_channel}
        crop = {"crop_border": 0, "test_y_channel": y_channel}
        a, b = box.crop(img), box.crop(gt)
        out.append(
            MethodScore(
                name,
                calculate_psnr(img, gt, **whole),
                calculate_ssim(img, gt, **whole),
                calculate_psnr(a, b, **crop),
                calculate_ssim(a, b, **crop),
            )
        )
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "method"


def default_names(folders: Sequence[Path]) -> list[str]:
    """Folder names, made unique by adding parent folders where two are the same."""
    depth = 1
    while True:
        names = ["/".join(Path(f).resolve().parts[-depth:]) for f in folders]
        if len(set(names)) == len(names) or depth > 8:
            return names
        depth += 1


def compare_folders(
    gt_dir: Path,
    result_dirs: Sequence[Path],
    out_dir: Path,
    names: Sequence[str] | None = None,
    box: Box | None = None,
    box_size: int | None = None,
    crop_border: int = 0,
    y_channel: bool = False,
    log: Callable[[str], None] = print,
    panel_size: int = PANEL_SIZE,
    fmt: str = "png",
) -> CompareResult:
    """Write a figure per matched image, the images the slider shows and ``index.html`` into ``out_dir``.

    Args:
        gt_dir: folder of ground-truth images; result_dirs: one folder per method.
        names: one label per result folder (default: :func:`default_names`).
        box: the window to zoom (every image); None picks it with :func:`auto_box` (side ``box_size``, default
            from :func:`plan_zoom`).
        crop_border, y_channel: whole-image metric options, as ``crop_border``/``test_y_channel`` in ``restore test``.
        log: called with one line per skipped image and per note.
        panel_size: side of each crop panel in pixels; one integer zoom for the whole run (:func:`plan_zoom`).
        fmt: figure format, ``png``, ``svg`` or ``pdf`` (``<stem>.<fmt>``; the page shows a PNG of the same
            figure, written under ``images/<stem>/`` when ``fmt`` is not ``png``).

    Raises:
        CompareError: a folder is missing, the names do not fit, or no GT image has a result in every folder.
    """
    for folder, what in [(gt_dir, "--gt")] + [(d, "result folder") for d in result_dirs]:
        if not Path(folder).is_dir():
            raise CompareError(f"{folder}: {what} is not a folder")
    if not result_dirs:
        raise CompareError("give at least one result folder")
    names = list(names) if names else default_names(result_dirs)
    if len(names) != len(result_dirs):
        raise CompareError(f"--names: {len(names)} names for {len(result_dirs)} result folders")
    if len(set(names)) != len(names) or "GT" in names:
        raise CompareError(f"--names: names must be distinct and not 'GT', got {' '.join(names)}")
    if box is not None and min(box.w, box.h) < MIN_BOX:
        raise CompareError(f"--box: width and height must be at least {MIN_BOX} (the SSIM window), got {box}")
    if panel_size < 64:
        raise CompareError(f"--panel-size: must be at least 64 pixels, got {panel_size}")
    if fmt not in FORMATS:
        raise CompareError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if box_size is not None and box_size < MIN_BOX:
        raise CompareError(f"--box-size: must be at least {MIN_BOX} (the SSIM window), got {box_size}")
    gt_files = {p.stem: p for p in _image_files(Path(gt_dir))}
    if not gt_files:
        raise CompareError(f"{gt_dir}: --gt folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    matches = []
    for folder in result_dirs:
        found, notes = match_results(list(gt_files), Path(folder))
        for note in notes:
            log(note)
        matches.append(found)
    for folder, found in zip(result_dirs, matches):
        if not found:
            raise CompareError(
                f"{folder}: no file matches a GT image of {gt_dir} (expected <stem>.png or <stem>_*.png)"
            )
    out_dir = Path(out_dir)
    result = CompareResult()
    sizes = []
    for stem, gt_path in gt_files.items():
        if all(stem in m for m in matches):
            with contextlib.suppress(OSError):  # reported below, where the image is skipped
                sizes.append(read_uint8(gt_path).shape[:2])
    side, zoom = plan_zoom(sizes or [(panel_size, panel_size)], panel_size, box, box_size)
    result.zoom, result.panel_size = zoom, max(panel_size, side * zoom)
    sections = []
    for stem, gt_path in gt_files.items():
        missing = [str(d) for d, m in zip(result_dirs, matches) if stem not in m]
        if len(missing) == len(result_dirs):
            result.unmatched.append(stem)
            continue
        if missing:
            result.skipped.append(f"{stem}: skipped, no result in {', '.join(missing)}")
            log(result.skipped[-1])
            continue
        plan = _Plan(box, side, zoom, panel_size, crop_border, y_channel, fmt)
        section = _compare_one(stem, gt_path, [m[stem] for m in matches], names, out_dir, plan, result)
        if section is None:
            log(result.skipped[-1])
        else:
            sections.append(section)
    if not result.figures:
        raise CompareError(f"no figure written: {'; '.join(result.skipped) or 'no image matched'}")
    summary = Section(
        "averages",
        [Column(k, label, "higher", d) for k, label, d in _COLUMNS],
        [Row(n, _averages(result, n)) for n in names],
        first_header="method",
        note=f"{len(result.figures)} images; best values in bold",
    )
    options = (
        f"crop border {crop_border}, {'Y channel' if y_channel else 'RGB'}; box metrics on the box as it is; "
        f"crops enlarged x{zoom} (nearest neighbour) in {result.panel_size}-pixel panels"
    )
    skipped = list(result.skipped) + [f"{stem}: no result in any folder" for stem in result.unmatched]
    result.report = write_report(
        out_dir / "index.html", "restore compare", [summary, *sections], options, skipped=skipped
    )
    return result


_COLUMNS = [("psnr", "PSNR", 2), ("ssim", "SSIM", 4), ("crop_psnr", "box PSNR", 2), ("crop_ssim", "box SSIM", 4)]


def _averages(result: CompareResult, name: str) -> dict[str, float | str | None]:
    values = [s for scores in result.scores.values() for s in scores if s.name == name]
    return {k: float(np.mean([getattr(s, k) for s in values])) for k, _, _ in _COLUMNS}


@dataclass(frozen=True)
class _Plan:
    """The choices that hold for every image of a run."""

    box: Box | None
    side: int
    zoom: int
    panel_size: int
    crop_border: int
    y_channel: bool
    fmt: str


def _compare_one(
    stem: str, gt_path: Path, paths: Sequence[Path], names: Sequence[str], out_dir: Path, plan: _Plan,
    result: CompareResult,
) -> Section | None:  # fmt: skip
    box, crop_border, y_channel = plan.box, plan.crop_border, plan.y_channel
    try:
        gt = read_uint8(gt_path)
        methods = {n: read_uint8(p) for n, p in zip(names, paths)}
    except OSError as err:
        result.skipped.append(f"{stem}: skipped, {err}")
        return None
    for img, path in zip(methods.values(), paths):
        if img.shape[:2] != gt.shape[:2]:
            result.skipped.append(
                f"{stem}: skipped, {path} is {img.shape[0]}x{img.shape[1]} but GT {gt_path} is "
                f"{gt.shape[0]}x{gt.shape[1]} (HxW)"
            )
            return None
    if any(m.ndim != gt.ndim for m in methods.values()):  # gray and colour: compare in colour
        gt, methods = _bgr(gt), {n: _bgr(m) for n, m in methods.items()}
    height, width = gt.shape[:2]
    if min(height, width) - 2 * crop_border < MIN_BOX:
        result.skipped.append(
            f"{stem}: skipped, {width}x{height} (WxH) is smaller than {MIN_BOX}x{MIN_BOX} once --crop-border "
            f"{crop_border} is removed"
        )
        return None
    if box is None:
        side = plan.side
        if side > min(height, width):
            result.skipped.append(f"{stem}: skipped, --box-size {side} does not fit in {width}x{height} (WxH)")
            return None
        chosen = auto_box(gt, list(methods.values()), side, crop_border, y_channel)
    elif not box.fits(height, width):
        result.skipped.append(f"{stem}: skipped, --box {box} does not fit in {width}x{height} (WxH)")
        return None
    else:
        chosen = box
    scores = _scores(gt, methods, chosen, crop_border, y_channel)
    layout, _ = figure_layout(gt, methods, chosen, scores, plan.zoom, plan.panel_size)
    figure_path = write_figure(out_dir / f"{stem}.{plan.fmt}", layout, plan.fmt)
    shown = figure_path if plan.fmt == "png" else write_figure(out_dir / "images" / stem / "figure.png", layout)
    images = {"GT": gt, **methods}
    hrefs, used = {}, set()
    for index, (label, img) in enumerate(images.items()):
        file_name = _safe(label) if _safe(label).lower() not in used else f"{_safe(label)}-{index}"
        used.add(file_name.lower())
        target = out_dir / "images" / stem / f"{file_name}.png"
        write_uint8(target, img)
        hrefs[label] = relative_href(target, out_dir)
    result.figures[stem], result.scores[stem], result.boxes[stem] = figure_path, scores, chosen
    rows = [Row(s.name, {k: getattr(s, k) for k, _, _ in _COLUMNS}) for s in scores]
    columns = [Column(k, label, "higher", d) for k, label, d in _COLUMNS]
    links = {} if plan.fmt == "png" else {f"{plan.fmt.upper()} figure": relative_href(figure_path, out_dir)}
    return Section(stem, columns, rows, first_header="method", figure=relative_href(shown, out_dir),
                   images=hrefs, note=f"box {chosen} (x, y, w, h)", figure_links=links)  # fmt: skip
