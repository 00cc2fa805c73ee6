"""Paper-style comparison figures: ``restore compare --gt GT_DIR RESULT_DIR ... -o figs/``.

For every GT image that every result folder has a result for, a PNG figure shows the GT with the box drawn, then the
box of the GT and of each method zoomed with nearest-neighbour, each labelled with the method's PSNR/SSIM over the box
and over the whole image (``restore.metrics.calculate_psnr``/``calculate_ssim``, the code of ``restore test``;
``--crop-border`` and ``--y-channel`` apply to the whole-image values, the box is measured as it is). ``index.html``
beside the figures has a sortable table per image and a full-resolution before/after slider; the images it shows
are written (as PNG) under ``images/``, so the output folder is self-contained.

Matching by stem: a result ``R`` belongs to the GT image ``G`` when ``R == G``, ``R`` starts with ``G_`` (the
``_<suffix>`` of ``restore test`` and of ``restore infer --suffix _x4``) or with ``Gx<digits>`` (LR-style names such
as ``0801x4``); a result that fits several GT stems goes to the longest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from restore.analysis.report import Column, Row, Section, relative_href, write_report
from restore.data.benchmark import write_uint8
from restore.data.image_io import IMAGE_SUFFIXES
from restore.metrics import calculate_psnr, calculate_ssim
from restore.metrics._prepare import y_channel_hwc

__all__ = ["Box", "CompareError", "CompareResult", "auto_box", "compare_folders", "make_figure", "match_results"]

#: Smallest box side: SSIM's 11x11 window must fit in the crop.
MIN_BOX = 11
_CROP_HEIGHT = 192  # target height of a zoomed crop in the figure, pixels
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_LINE_HEIGHT = 17


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
    report: Path | None = None


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
    """Side of the ``--auto-box`` window when ``--box-size`` is not given: min(H, W) / 5, within [16, 128]."""
    return int(min(max(min(height, width) // 5, 16), 128, height, width))


def auto_box(
    gt: np.ndarray, methods: Sequence[np.ndarray], size: int, crop_border: int = 0, y_channel: bool = False
) -> Box:
    """The ``size`` x ``size`` window where the methods differ most.

    The score of a pixel is the variance over methods of their absolute errors against ``gt`` (with a single
    method, its absolute error); the window with the largest summed score wins (the first in row-major order on
    ties). Windows stay ``crop_border`` pixels away from the edges when the image allows it.

    Args:
        gt: uint8 (H, W, 3) BGR or (H, W); methods: same shape as ``gt``; size: window side in pixels.
    """
    height, width = gt.shape[:2]
    size = min(size, height, width)
    errors = np.stack([_error_map(m, gt, y_channel) for m in methods])
    score = errors.var(axis=0) if len(methods) > 1 else errors[0]
    border = crop_border if min(height, width) - 2 * crop_border >= size else 0
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


def _cell(tile: np.ndarray, lines: Sequence[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """A zoomed crop with its label lines below, on white; as wide as the wider of the two."""
    text_w = max(cv2.getTextSize(t, _FONT, _FONT_SCALE, 1)[0][0] for t, _ in lines) + 8
    width = max(tile.shape[1], text_w)
    cell = np.full((tile.shape[0] + _LINE_HEIGHT * len(lines) + 6, width, 3), 255, np.uint8)
    left = (width - tile.shape[1]) // 2
    cell[: tile.shape[0], left : left + tile.shape[1]] = tile
    for i, (text, colour) in enumerate(lines):
        size = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0]
        origin = ((width - size[0]) // 2, tile.shape[0] + _LINE_HEIGHT * (i + 1))
        cv2.putText(cell, text, origin, _FONT, _FONT_SCALE, colour, 1, cv2.LINE_AA)
    return cell


def make_figure(gt: np.ndarray, methods: dict[str, np.ndarray], box: Box, scores: Sequence[MethodScore]) -> np.ndarray:
    """The figure (uint8 BGR): GT with the box (red), then the zoomed box of GT and of every method, labelled.

    Crops are enlarged by an integer factor (nearest-neighbour) to about 192 pixels; more than four tiles wrap
    onto two rows, and the GT panel is scaled to the height of the tiles. The best box PSNR is labelled in red.
    """
    zoom = max(1, _CROP_HEIGHT // max(box.w, box.h))
    best = max((s.crop_psnr for s in scores), default=None)
    black, red = (0, 0, 0), (0, 0, 200)
    cells = [_cell(_zoom(box.crop(_bgr(gt)), zoom), [("GT", black), (f"box {box}", black), ("", black)])]
    for score in scores:
        crop_colour = red if len(scores) > 1 and score.crop_psnr == best else black
        lines = [
            (score.name, black),
            (f"box {_fmt(score.crop_psnr, score.crop_ssim)}", crop_colour),
            (f"image {_fmt(score.psnr, score.ssim)}", black),
        ]
        cells.append(_cell(_zoom(box.crop(_bgr(methods[score.name])), zoom), lines))
    per_row = len(cells) if len(cells) <= 4 else math.ceil(len(cells) / 2)
    cell_w, cell_h = max(c.shape[1] for c in cells), max(c.shape[0] for c in cells)
    gap = 8
    grid_rows = math.ceil(len(cells) / per_row)
    grid = np.full(
        (grid_rows * cell_h + (grid_rows - 1) * gap, per_row * cell_w + (per_row - 1) * gap, 3), 255, np.uint8
    )
    for i, cell in enumerate(cells):
        r, c = divmod(i, per_row)
        y0, x0 = r * (cell_h + gap), c * (cell_w + gap) + (cell_w - cell.shape[1]) // 2
        grid[y0 : y0 + cell.shape[0], x0 : x0 + cell.shape[1]] = cell
    panel_h = grid.shape[0]
    scale = panel_h / gt.shape[0]
    panel_w = max(1, round(gt.shape[1] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    panel = cv2.resize(_bgr(gt), (panel_w, panel_h), interpolation=interpolation)
    thickness = max(2, round(panel_h / 200))
    top_left = (round(box.x * scale), round(box.y * scale))
    bottom_right = (round((box.x + box.w) * scale) - 1, round((box.y + box.h) * scale) - 1)
    cv2.rectangle(panel, top_left, bottom_right, (0, 0, 255), thickness)
    figure = np.full((panel_h + 2 * gap, panel_w + grid.shape[1] + 3 * gap, 3), 255, np.uint8)
    figure[gap : gap + panel_h, gap : gap + panel_w] = panel
    figure[gap : gap + panel_h, 2 * gap + panel_w : 2 * gap + panel_w + grid.shape[1]] = grid
    return figure


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
) -> CompareResult:
    """Write a figure per matched image, the images the slider shows and ``index.html`` into ``out_dir``.

    Args:
        gt_dir: folder of ground-truth images; result_dirs: one folder per method.
        names: one label per result folder (default: :func:`default_names`).
        box: the window to zoom (every image); None picks it with :func:`auto_box` (side ``box_size``, default
            :func:`default_box_size`).
        crop_border, y_channel: whole-image metric options, as ``crop_border``/``test_y_channel`` in ``restore test``.
        log: called with one line per skipped image and per note.

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
    sections = []
    for stem, gt_path in gt_files.items():
        missing = [str(d) for d, m in zip(result_dirs, matches) if stem not in m]
        if len(missing) == len(result_dirs):
            continue
        if missing:
            result.skipped.append(f"{stem}: skipped, no result in {', '.join(missing)}")
            log(result.skipped[-1])
            continue
        section = _compare_one(stem, gt_path, [m[stem] for m in matches], names, out_dir, box, box_size,
                               crop_border, y_channel, result)  # fmt: skip
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
    options = f"crop border {crop_border}, {'Y channel' if y_channel else 'RGB'}; box metrics on the box as it is"
    result.report = write_report(out_dir / "index.html", "restore compare", [summary, *sections], options)
    return result


_COLUMNS = [("psnr", "PSNR", 2), ("ssim", "SSIM", 4), ("crop_psnr", "box PSNR", 2), ("crop_ssim", "box SSIM", 4)]


def _averages(result: CompareResult, name: str) -> dict[str, float | str | None]:
    values = [s for scores in result.scores.values() for s in scores if s.name == name]
    return {k: float(np.mean([getattr(s, k) for s in values])) for k, _, _ in _COLUMNS}


def _compare_one(
    stem: str,
    gt_path: Path,
    paths: Sequence[Path],
    names: Sequence[str],
    out_dir: Path,
    box: Box | None,
    box_size: int | None,
    crop_border: int,
    y_channel: bool,
    result: CompareResult,
) -> Section | None:
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
        side = box_size or default_box_size(height, width)
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
    figure_path = out_dir / f"{stem}.png"
    write_uint8(figure_path, make_figure(gt, methods, chosen, scores))
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
    return Section(stem, columns, rows, first_header="method", figure=relative_href(figure_path, out_dir),
                   images=hrefs, note=f"box {chosen} (x, y, w, h)")  # fmt: skip
