"""Pictures of a Local Attribution Map, drawn as the LAM demo draws them, without matplotlib or scipy.

* :func:`heat_map`: the normalised saliency through the ``seismic`` colormap at ``S * 0.5 + 0.5`` (0 is white,
  1 dark red), 8-bit, enlarged by ``zoom`` with nearest-neighbour.
* :func:`kde_heat_map`: the same colouring of a weighted Gaussian kernel density estimate of the saliency (pixel
  coordinates weighted by ``S``, Scott's bandwidth), normalised to a maximum of 1: the "area of influence".
* :func:`blend`: ``map * (1 - alpha) + bicubic-enlarged LR * alpha``.
* :func:`stretched_heat_map`: the map contrast-stretched (not the official display), so that a small receptive
  field still shows its shape.
* :func:`draw_box`, :func:`compare_figure`, :func:`model_figure`: the window as a thin green outline outside the
  pixels it marks, several models side by side with their Diffusion Index (the layout of the HAT paper's LAM
  figure), and one model's labelled figure (input, official map, stretched map, blend; DI in the caption).

Images are ``(H, W, 3)`` uint8 RGB arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = [
    "SEISMIC_LUT", "WINDOW_COLOUR", "blend", "compare_figure", "draw_box", "heat_map", "kde_heat_map", "kde_map",
    "model_figure", "stretched_heat_map", "to_uint8",
]  # fmt: skip

_SEISMIC_NODES = np.array([[0.0, 0.0, 0.3], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])


def _segment_table(nodes: np.ndarray, n: int = 256) -> np.ndarray:
    """``n`` colours linear between ``nodes`` placed evenly on [0, 1], entry ``i`` at ``i / (n - 1)``.

    Positions are measured in table entries (``0 .. n-1``) and each entry is ``t * (right - left) + left`` with
    ``t`` its fraction of the segment: this is the rounding of matplotlib's tables, which decides the last bit of
    entries such as ``229 / 255`` and hence their 8-bit value."""
    where = np.linspace(0.0, 1.0, len(nodes)) * (n - 1)
    samples = (n - 1) * np.linspace(0.0, 1.0, n)
    right = np.searchsorted(where, samples[1:-1])
    t = (samples[1:-1] - where[right - 1]) / (where[right] - where[right - 1])
    inner = t[:, None] * (nodes[right] - nodes[right - 1]) + nodes[right - 1]
    return np.clip(np.concatenate([nodes[:1], inner, nodes[-1:]]), 0.0, 1.0)


#: The ``seismic`` colormap as a 256-entry RGB table: linear between dark blue, blue, white, red and dark red at
#: 0, 1/4, 1/2, 3/4 and 1.
SEISMIC_LUT = _segment_table(_SEISMIC_NODES)


def _as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _colour(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (float32) through the seismic table at ``v * 0.5 + 0.5``; uint8 by truncation."""
    x = values.astype(np.float32) * np.float32(0.5) + np.float32(0.5)
    x = x * np.float32(len(SEISMIC_LUT))
    index = np.clip(x, 0, len(SEISMIC_LUT) - 1).astype(np.int64)
    return (255.0 * SEISMIC_LUT[index]).astype(np.uint8)


def heat_map(saliency: torch.Tensor | np.ndarray, zoom: int = 1) -> np.ndarray:
    """``(H, W)`` saliency in [0, 1] -> ``(H * zoom, W * zoom, 3)`` uint8 RGB (nearest-neighbour enlargement)."""
    img = _colour(_as_numpy(saliency))
    return np.repeat(np.repeat(img, zoom, axis=0), zoom, axis=1) if zoom > 1 else img


def kde_map(saliency: torch.Tensor | np.ndarray) -> np.ndarray:
    """Weighted Gaussian KDE of the pixel grid with weights ``saliency``, evaluated at every pixel, max 1.

    The bandwidth follows Scott's rule with the effective sample size ``(sum w)^2 / sum w^2``; the kernel
    covariance is the weighted (unbiased) covariance of the ``(column, row)`` coordinates times the squared factor.
    The sum over all pixels is one exact convolution, done with FFTs in float64. Returns ``(H, W)`` float64.
    """
    weights = _as_numpy(saliency).astype(np.float64)
    h, w = weights.shape
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        return np.zeros((h, w))
    wn = weights / total
    rows, cols = np.mgrid[0:h, 0:w]
    points = np.stack([cols.ravel(), rows.ravel()]).astype(np.float64)  # (2, n): x = column, y = row
    wf = wn.ravel()
    neff = 1.0 / np.sum(wf**2)
    factor = neff ** (-1.0 / 6.0)  # Scott: n ** (-1 / (d + 4)), d = 2
    mean = points @ wf
    centred = points - mean[:, None]
    cov = (centred * wf) @ centred.T / (1.0 - np.sum(wf**2))
    precision = np.linalg.inv(cov * factor**2)
    dy, dx = np.mgrid[-(h - 1) : h, -(w - 1) : w].astype(np.float64)
    quad = precision[0, 0] * dx**2 + 2 * precision[0, 1] * dx * dy + precision[1, 1] * dy**2
    kernel = np.exp(-0.5 * quad)  # (2h-1, 2w-1), centre at (h-1, w-1)
    shape = (3 * h - 2, 3 * w - 2)
    full = np.fft.irfft2(np.fft.rfft2(wn, shape) * np.fft.rfft2(kernel, shape), shape)
    density = full[h - 1 : 2 * h - 1, w - 1 : 2 * w - 1]
    peak = density.max()
    return density / peak if peak > 0 else np.zeros((h, w))


def kde_heat_map(saliency: torch.Tensor | np.ndarray, zoom: int = 1) -> np.ndarray:
    """:func:`kde_map` coloured like :func:`heat_map`, enlarged by ``zoom`` with bicubic interpolation."""
    img = _colour(kde_map(saliency).astype(np.float32))
    if zoom > 1:
        img = cv2.resize(img, (img.shape[1] * zoom, img.shape[0] * zoom), interpolation=cv2.INTER_CUBIC)
    return img


def to_uint8(rgb: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` / ``(1, 3, H, W)`` tensor or ``(H, W, 3)`` array in [0, 1] -> ``(H, W, 3)`` uint8 (clamped)."""
    if isinstance(rgb, torch.Tensor):
        rgb = rgb.detach().float().cpu()
        rgb = (rgb[0] if rgb.dim() == 4 else rgb).permute(1, 2, 0).numpy()
    return (np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def blend(vis: np.ndarray, lr: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``vis * (1 - alpha) + lr_enlarged * alpha`` (the LR image bicubic-enlarged to ``vis``'s size), uint8."""
    lr_big = cv2.resize(lr, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_CUBIC)
    mixed = vis.astype(np.float64) * (1.0 - alpha) + lr_big.astype(np.float64) * alpha
    return mixed.astype(np.uint8)


#: Colour of the window's outline (RGB): green, which the seismic scale (blue - white - red) never shows.
WINDOW_COLOUR = (0, 200, 0)


def stretched_heat_map(saliency: torch.Tensor | np.ndarray, zoom: int = 1, quantile: float = 0.995) -> np.ndarray:
    """A contrast-stretched view of the map: ``sqrt(min(S / q, 1))`` with ``q`` the ``quantile`` of the non-zero
    values, coloured like :func:`heat_map`. Not the official display: it makes a small receptive field's shape
    visible where the official ``S / max S`` leaves nearly every pixel white. Returns uint8 RGB."""
    values = _as_numpy(saliency).astype(np.float64)
    positive = values[values > 0]
    top = float(np.quantile(positive, quantile)) if positive.size else 0.0
    stretched = np.sqrt(np.clip(values / top, 0.0, 1.0)) if top > 0 else np.zeros_like(values)
    return heat_map(stretched.astype(np.float32), zoom)


def draw_box(
    img: np.ndarray, box: Sequence[int], colour: tuple[int, int, int] = WINDOW_COLOUR, thickness: int = 0
) -> np.ndarray:
    """A copy of ``img`` with a thin outline just *outside* the pixels of ``box`` = ``(x, y, width, height)``; the
    pixels inside stay as they are. ``thickness`` 0: ``max(1, min(H, W) // 200)``."""
    from restore.analysis.figure_doc import draw_outline

    x, y, w, h = (int(v) for v in box)
    out = np.ascontiguousarray(img.copy())
    draw_outline(out, (x, y, w, h), colour, thickness or max(1, min(img.shape[:2]) // 200))
    return out


def _font_scale(width: int) -> float:
    """One OpenCV font scale for every label of a figure whose tiles are ``width`` pixels wide."""
    return max(0.35, width / 320)


def fit_text(text: str, width: int, scale: float) -> str:
    """``text`` shortened with ``..`` so that it fits ``width - 4`` pixels at ``scale`` (the size stays)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    if cv2.getTextSize(text, font, scale, 1)[0][0] <= width - 4:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "..", font, scale, 1)[0][0] > width - 4:
        text = text[:-1]
    return text + ".."


def _label(img: np.ndarray, text: str, scale: float) -> np.ndarray:
    """``img`` with a white strip below holding ``text`` at font ``scale`` (shortened to fit, never shrunk)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = fit_text(text, img.shape[1], scale)
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    strip = np.full((th + base + 8, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (max(2, (img.shape[1] - tw) // 2), th + 4), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([img, strip], axis=0)


def _row(tiles: Sequence[np.ndarray], gap: int) -> np.ndarray:
    height = max(t.shape[0] for t in tiles)
    row = []
    for i, tile in enumerate(tiles):
        pad = np.full((height - tile.shape[0], tile.shape[1], 3), 255, np.uint8)
        row.append(np.concatenate([tile, pad], axis=0))
        if i < len(tiles) - 1:
            row.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(row, axis=1)


def compare_figure(reference: np.ndarray, panels: Sequence[tuple[str, np.ndarray, float]], gap: int = 4) -> np.ndarray:
    """One row: ``reference`` (e.g. the enlarged input with the window), then each ``(name, map, di)`` panel
    labelled ``"name  DI 12.34"``; all tiles share ``reference``'s size and one font size (long names are
    shortened with ``..``). Returns uint8 RGB."""
    h, w = reference.shape[:2]
    scale = _font_scale(w)
    tiles = [_label(reference, "input", scale)]
    for name, image, di in panels:
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
        suffix = f"  DI {di:.2f}"
        tiles.append(_label(image, fit_text(name, w - cv2.getTextSize(suffix, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0],
                                            scale) + suffix, scale))  # fmt: skip
    return _row(tiles, gap)


def model_figure(
    reference: np.ndarray, official: np.ndarray, stretched: np.ndarray, mixed: np.ndarray, name: str, di: float,
    gap: int = 4,
) -> np.ndarray:  # fmt: skip
    """The labelled LAM figure of one model, as in the HAT/DRCT papers: the input with the window, the attribution
    map as LAM displays it (``S / max S``, seismic), the contrast-stretched map (:func:`stretched_heat_map`) and the
    blend with the input; a caption names the model and its DI. Every tile has ``reference``'s size; one font size.
    Returns uint8 RGB."""
    h, w = reference.shape[:2]
    scale = _font_scale(w)
    tiles = [reference, official, stretched, mixed]
    tiles = [t if t.shape[:2] == (h, w) else cv2.resize(t, (w, h), interpolation=cv2.INTER_NEAREST) for t in tiles]
    labels = ["input + window", "LAM (official)", "stretched", "blend"]
    row = _row([_label(t, label, scale) for t, label in zip(tiles, labels)], gap)
    return _label(row, f"{name}: DI {di:.2f} (larger = more input pixels involved)", scale)
