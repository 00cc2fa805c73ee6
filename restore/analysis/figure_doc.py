"""A figure as a list of placed raster images, outline rectangles and text lines, written as PNG, SVG or PDF.

The layout is in pixels (origin top-left, ``x`` = column, ``y`` = row). PNG draws everything into one raster
(text with OpenCV's Hershey font). SVG and PDF keep the images raster (PNG data in SVG, Flate-compressed RGB in
PDF, one image pixel per layout pixel) and write rectangles and text as vectors (Helvetica), so labels stay sharp
when a paper scales the figure; one layout pixel is one PDF point. No plotting library is involved.
"""

from __future__ import annotations

import base64
import html
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from restore.utils.files import atomic_path

__all__ = ["FORMATS", "Layout", "Rect", "Text", "write_figure"]

#: Output formats of :func:`write_figure`.
FORMATS = ("png", "svg", "pdf")

_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Cap height of Helvetica as a fraction of its font size (its AFM's CapHeight 718).
_CAP = 0.718
# Helvetica advance widths (1/1000 em) of the printable ASCII characters 32..126, from the standard AFM metrics.
_HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667,
    556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556,
    556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722,
    500, 500, 500, 334, 260, 334, 584,
]  # fmt: skip


@dataclass(frozen=True)
class Rect:
    """An outline ``thickness`` pixels wide drawn *outside* the pixels ``x, y, w, h`` (they stay visible)."""

    x: int
    y: int
    w: int
    h: int
    colour: tuple[int, int, int]
    thickness: int = 2


@dataclass(frozen=True)
class Text:
    """One line centred on column ``cx`` with its baseline on row ``y``; ``size`` is the cap height in pixels."""

    text: str
    cx: float
    y: float
    size: float
    colour: tuple[int, int, int] = (0, 0, 0)


@dataclass
class Layout:
    """A white ``width x height`` canvas with images (``(x, y, uint8 RGB (h, w, 3))``), rectangles and text."""

    width: int
    height: int
    images: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    rects: list[Rect] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)

    def raster(self) -> np.ndarray:
        """The figure as one ``(height, width, 3)`` uint8 RGB array."""
        canvas = np.full((self.height, self.width, 3), 255, np.uint8)
        for x, y, img in self.images:
            canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
        for r in self.rects:
            draw_outline(canvas, (r.x, r.y, r.w, r.h), r.colour, r.thickness)
        for t in self.texts:
            scale, thickness = hershey_scale(t.size)
            (w, _), _ = cv2.getTextSize(t.text, _FONT, scale, thickness)
            origin = (round(t.cx - w / 2), round(t.y))
            cv2.putText(canvas, t.text, origin, _FONT, scale, t.colour, thickness, cv2.LINE_AA)
        return canvas


def hershey_scale(cap_height: float) -> tuple[float, int]:
    """OpenCV ``fontScale`` and stroke thickness whose capital letters are ``cap_height`` pixels high."""
    (_, h), _ = cv2.getTextSize("H", _FONT, 1.0, 1)
    return cap_height / h, max(1, round(cap_height / 10))


def text_width(text: str, cap_height: float) -> float:
    """Width in pixels of ``text`` drawn with capitals ``cap_height`` high (the wider of Hershey and Helvetica)."""
    scale, thickness = hershey_scale(cap_height)
    hershey = cv2.getTextSize(text, _FONT, scale, thickness)[0][0]
    return max(float(hershey), _helvetica_width(text, cap_height / _CAP))


def _helvetica_width(text: str, font_size: float) -> float:
    return sum(_HELVETICA[ord(c) - 32] if 32 <= ord(c) <= 126 else 556 for c in text) * font_size / 1000.0


def draw_outline(img: np.ndarray, box: tuple[int, int, int, int], colour: tuple[int, int, int], t: int) -> None:
    """Draw, in place, a ``t``-pixel frame just outside ``box = (x, y, w, h)`` (clipped at the image border)."""
    x, y, w, h = box
    height, width = img.shape[:2]

    def fill(y0: int, y1: int, x0: int, x1: int) -> None:
        y0, y1, x0, x1 = max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)
        if y0 < y1 and x0 < x1:
            img[y0:y1, x0:x1] = colour

    fill(y - t, y, x - t, x + w + t)
    fill(y + h, y + h + t, x - t, x + w + t)
    fill(y, y + h, x - t, x)
    fill(y, y + h, x + w, x + w + t)


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("cannot encode a PNG")
    return data.tobytes()


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def render_svg(layout: Layout) -> str:
    """SVG document: images as embedded PNG (``image-rendering: pixelated``), outlines and text as vectors."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}" '
        f'viewBox="0 0 {layout.width} {layout.height}">',
        f'<rect width="{layout.width}" height="{layout.height}" fill="#ffffff"/>',
    ]
    for x, y, img in layout.images:
        data = base64.b64encode(_png_bytes(img)).decode("ascii")
        parts.append(
            f'<image x="{x}" y="{y}" width="{img.shape[1]}" height="{img.shape[0]}" style="image-rendering:pixelated" '
            f'preserveAspectRatio="none" href="data:image/png;base64,{data}"/>'
        )
    for r in layout.rects:
        t = r.thickness
        parts.append(
            f'<rect x="{r.x - t / 2}" y="{r.y - t / 2}" width="{r.w + t}" height="{r.h + t}" fill="none" '
            f'stroke="{_hex(r.colour)}" stroke-width="{t}"/>'
        )
    for t in layout.texts:
        parts.append(
            f'<text x="{t.cx:.2f}" y="{t.y:.2f}" font-family="Helvetica, Arial, sans-serif" '
            f'font-size="{t.size / _CAP:.2f}" text-anchor="middle" fill="{_hex(t.colour)}">{html.escape(t.text)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _pdf_text(text: str) -> str:
    safe = "".join(c if 32 <= ord(c) <= 126 else "?" for c in text)
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def render_pdf(layout: Layout) -> bytes:
    """One-page PDF (1 layout pixel = 1 pt): images as Flate RGB XObjects, outlines and Helvetica text as vectors."""
    height = layout.height
    objects: list[bytes] = []  # object i + 1
    ops = ["1 1 1 rg", f"0 0 {layout.width} {height} re f"]
    image_refs = []
    for i, (x, y, img) in enumerate(layout.images):
        h, w = img.shape[:2]
        data = zlib.compress(np.ascontiguousarray(img, dtype=np.uint8).tobytes(), 6)
        header = (f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB "
                  f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n")  # fmt: skip
        objects.append(header.encode() + data + b"\nendstream")
        image_refs.append(f"/Im{i} {len(objects) + 4} 0 R")  # objects 1..4 are catalog, pages, page, font
        ops.append(f"q {w} 0 0 {h} {x} {height - y - h} cm /Im{i} Do Q")
    for r in layout.rects:
        t = r.thickness
        ops.append("{:.4f} {:.4f} {:.4f} RG {} w".format(*(c / 255 for c in r.colour), t))
        ops.append(f"{r.x - t / 2} {height - r.y - r.h - t / 2} {r.w + t} {r.h + t} re S")
    for t in layout.texts:
        size = t.size / _CAP
        left = t.cx - _helvetica_width(t.text, size) / 2
        colour = "{:.4f} {:.4f} {:.4f} rg".format(*(c / 255 for c in t.colour))
        ops.append(f"BT {colour} /F1 {size:.2f} Tf {left:.2f} {height - t.y:.2f} Td ({_pdf_text(t.text)}) Tj ET")
    content = zlib.compress("\n".join(ops).encode("ascii"))
    page = (
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {layout.width} {height}] /Contents {len(objects) + 5} 0 R "
        f"/Resources << /Font << /F1 4 0 R >> /XObject << {' '.join(image_refs)} >> >> >>"
    )
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        page.encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    stream = f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode() + content + b"\nendstream"
    body = [*head, *objects, stream]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(body, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(body) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(body) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_figure(path: str | os.PathLike, layout: Layout, fmt: str = "png") -> Path:
    """Write ``layout`` to ``path`` atomically as ``fmt`` (one of :data:`FORMATS`); returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "png":
        data = _png_bytes(layout.raster())
    elif fmt == "svg":
        data = render_svg(layout).encode("utf-8")
    else:
        data = render_pdf(layout)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
