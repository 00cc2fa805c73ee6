"""Header reading for PNG, JPEG, TIFF, WebP and BMP with Pillow: format, pixel size, gray, EXIF orientation.

Used before decoding, to refuse decompression bombs (absurd dimensions) without allocating the pixels, and to apply
the EXIF orientation ourselves (OpenCV ignores it when asked for alpha and 16-bit samples). Pillow's format plugins
parse only the header here; its ``Image.open`` is not used because it raises its own decompression-bomb error,
with no size in it, before the caller's ``max_pixels`` limit (which may be larger, or disabled) is applied.
OpenCV still decodes the pixels.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, TiffImagePlugin

__all__ = ["ImageHeader", "read_header"]

#: Pillow plugin names of the formats read here, in the order their signatures are tried.
FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageHeader:
    """What the header says. ``width``/``height`` are ``None`` when the header could not be parsed to them.

    ``orientation`` is the EXIF value 1..8 (1 = stored upright; 6 = rotate 90 degrees clockwise to display).
    ``gray`` is True when the header declares a single colour channel (PNG colour types 0/4, TIFF
    photometric 0/1, gray JPEG), with or without alpha; OpenCV decodes gray + alpha as BGRA, which this
    disambiguates.
    """

    format: str
    width: int | None = None
    height: int | None = None
    orientation: int = 1
    gray: bool = False


def _plugin(prefix: bytes) -> tuple[str, object] | None:
    """The Pillow plugin (name, image class) whose signature check accepts ``prefix``."""
    Image.init()
    for name in FORMATS:
        entry = Image.OPEN.get(name)
        if entry is None:
            continue
        factory, accept = entry
        verdict = accept(prefix) if accept else True
        if verdict and not isinstance(verdict, str):  # a string means "recognised but unsupported"
            return name, factory
    return None


def _tiff_tags(data: bytes) -> ImageHeader:
    """A TIFF whose pixel layout Pillow's image class refuses (64-bit or planar samples, ...): its first directory
    still gives the size, read with Pillow's tag parser. OpenCV may decode such files."""
    try:
        fp = io.BytesIO(data)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(fp.read(8))
        fp.seek(ifd.next)
        ifd.load(fp)
        width, height = int(ifd[256]), int(ifd[257])
        orientation = int(ifd.get(_EXIF_ORIENTATION, 1))
    except Exception:
        return ImageHeader("tiff")
    gray = ifd.get(262, 2) in (0, 1)  # photometric interpretation: white-is-zero, black-is-zero
    return ImageHeader("tiff", width, height, orientation if 1 <= orientation <= 8 else 1, gray)


def read_header(data: bytes) -> ImageHeader | None:
    """Parse the header at the start of ``data``; ``None`` when the format is not one of the five.

    A recognised format whose header cannot be parsed (truncated, corrupt) gives an ``ImageHeader`` with no size,
    so that the caller can name the format when decoding fails.
    """
    found = _plugin(data[:16])
    if found is None:
        return None
    name, factory = found
    fmt = name.lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = factory(io.BytesIO(data))  # reads the header only; pixels are decoded on .load()
    except Exception:  # any parser failure (SyntaxError, OSError, struct.error, ...) means "no usable header"
        return _tiff_tags(data) if name == "TIFF" else ImageHeader(fmt)
    with image:
        width, height = image.size
        try:
            orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
        except Exception:  # a damaged EXIF block: the image is shown as stored
            orientation = 1
        return ImageHeader(fmt, width, height, orientation if 1 <= orientation <= 8 else 1, image.mode in _GRAY_MODES)
