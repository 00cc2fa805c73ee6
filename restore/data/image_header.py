"""Cheap header reading for PNG, JPEG, TIFF, WebP and BMP: format, pixel size and EXIF orientation.

Used before decoding, to refuse decompression bombs (absurd dimensions) without allocating the pixels, and
to apply the EXIF orientation ourselves (OpenCV ignores it when asked for alpha and 16-bit samples).
Only the bytes of the headers are looked at; nothing is decompressed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ImageHeader", "read_header"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_PHOTOMETRIC, _TIFF_ORIENTATION = 256, 257, 262, 274


@dataclass(frozen=True)
class ImageHeader:
    """What the header says. ``width``/``height`` are ``None`` when the header could not be parsed to them.

    ``orientation`` is the EXIF value 1..8 (1 = stored upright; 6 = rotate 90 degrees clockwise to display).
    ``gray`` is True when the header declares a single colour channel (PNG colour types 0/4, TIFF
    photometric 0/1), with or without alpha; OpenCV decodes gray + alpha as BGRA, which this disambiguates.
    """

    format: str
    width: int | None = None
    height: int | None = None
    orientation: int = 1
    gray: bool = False


def _tiff_tags(blob: bytes, wanted: set[int]) -> dict[int, int]:
    """Integer values of the ``wanted`` tags of IFD0 of a TIFF structure (a TIFF file or an EXIF block)."""
    if len(blob) < 8 or blob[:2] not in (b"II", b"MM"):
        return {}
    end = "<" if blob[:2] == b"II" else ">"
    (offset,) = struct.unpack(end + "I", blob[4:8])
    if offset + 2 > len(blob):
        return {}
    (count,) = struct.unpack(end + "H", blob[offset : offset + 2])
    found = {}
    for k in range(count):
        entry = blob[offset + 2 + 12 * k : offset + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, kind, _ = struct.unpack(end + "HHI", entry[:8])
        if tag in wanted and kind in (3, 4):  # SHORT or LONG, value stored inline
            found[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12])[0]
    return found


def _orientation(exif_tiff: bytes) -> int:
    value = _tiff_tags(exif_tiff, {_TIFF_ORIENTATION}).get(_TIFF_ORIENTATION, 1)
    return value if 1 <= value <= 8 else 1


def _png(data: bytes) -> ImageHeader:
    width = height = None
    orientation, gray, pos = 1, False, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 10:
            width, height = struct.unpack(">II", body[:8])
            gray = body[9] in (0, 4)  # colour type: 0 gray, 4 gray + alpha
        elif kind == b"eXIf":
            orientation = _orientation(body)
        elif kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return ImageHeader("png", width, height, orientation, gray)


def _jpeg(data: bytes) -> ImageHeader:
    width = height = None
    orientation, pos = 1, 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            orientation = _orientation(body[6:])
        elif marker in _JPEG_SOF and len(body) >= 5:
            height, width = struct.unpack(">HH", body[1:5])
        elif marker == 0xDA:  # start of scan: the header is over
            break
        pos += 2 + length
    return ImageHeader("jpeg", width, height, orientation)


def _webp(data: bytes) -> ImageHeader:
    width = height = None
    orientation, pos = 1, 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"VP8X" and len(body) >= 10:
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
        elif kind == b"VP8 " and len(body) >= 10 and width is None:
            width, height = (v & 0x3FFF for v in struct.unpack("<HH", body[6:10]))
        elif kind == b"VP8L" and len(body) >= 5 and width is None:
            bits = int.from_bytes(body[1:5], "little")
            width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        elif kind == b"EXIF":
            orientation = _orientation(body[6:] if body.startswith(b"Exif\x00\x00") else body)
        pos += 8 + length + (length & 1)
    return ImageHeader("webp", width, height, orientation)


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        return ImageHeader("bmp")
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("bmp", abs(width), abs(height))


def _tiff(data: bytes) -> ImageHeader:
    tags = _tiff_tags(data, {_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_PHOTOMETRIC, _TIFF_ORIENTATION})
    orientation = tags.get(_TIFF_ORIENTATION, 1)
    return ImageHeader(
        "tiff",
        tags.get(_TIFF_WIDTH),
        tags.get(_TIFF_HEIGHT),
        orientation if 1 <= orientation <= 8 else 1,
        tags.get(_TIFF_PHOTOMETRIC, 2) in (0, 1),
    )


def read_header(data: bytes) -> ImageHeader | None:
    """Parse the header at the start of ``data``; ``None`` when the format is not one of the five."""
    try:
        if data.startswith(_PNG_SIGNATURE):
            return _png(data)
        if data.startswith(b"\xff\xd8\xff"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data.startswith(b"BM"):
            return _bmp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data)
    except struct.error:  # a truncated header: let the decoder report it
        return None
    return None
