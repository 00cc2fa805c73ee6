"""Reading and writing images as float RGB in [0, 1], keeping what the networks do not handle beside them.

* Formats: PNG and TIFF (8- and 16-bit), JPEG, WebP, BMP, decoded by OpenCV; any other format OpenCV
  decodes is accepted too.
* Grayscale files come back with ``gray=True`` and the value replicated into three channels (the networks
  are RGB); ``write_image(..., gray=True)`` stores the luma of the result (ITU-R BT.601) as one channel
  (gray with alpha is stored as RGBA with equal colour channels: OpenCV writes no gray + alpha files).
* Alpha is returned separately (``alpha``); the networks never see it. ``resize_alpha`` upscales it with
  bicubic interpolation, clipped to [0, 1]: alpha masks are mostly flat or hard-edged, which a restoration
  network trained on photographs does not model, and bicubic never invents detail in them.
* EXIF orientation (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``, TIFF tag 274) is applied, so pixels come back
  the way viewers display them.
* A decompression bomb (more than ``max_pixels`` pixels) is refused from the header, before decoding.
* Writing is atomic (temporary file in the same folder, then ``os.replace``); the bit depth is the caller's
  (``Image.bit_depth`` of the input, to keep it).

Errors are ``ImageReadError`` (a ``ValueError``) with a one-line message naming the file and the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from restore.data.image_header import read_header
from restore.utils.files import atomic_path

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "Image",
    "ImageReadError",
    "read_image",
    "resize_alpha",
    "write_image",
]

#: Default decompression-bomb limit: 2**28 pixels (16384 x 16384).
DEFAULT_MAX_PIXELS = 1 << 28
#: File suffixes treated as images when scanning folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

_EIGHT_BIT_ONLY = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WebP", ".bmp": "BMP"}
_NO_ALPHA = {".jpg": "JPEG", ".jpeg": "JPEG"}


class ImageReadError(ValueError):
    """An image cannot be read; the message is ``"<path>: <reason>"``."""


@dataclass
class Image:
    """A decoded image.

    Attributes:
        rgb: ``(H, W, 3)`` float32 RGB in [0, 1] (grayscale replicated into three channels).
        alpha: ``(H, W)`` float32 in [0, 1], or ``None`` when the file has no alpha channel.
        gray: the file stores a single (gray) colour channel.
        bit_depth: 8 or 16, bits per sample in the file.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    gray: bool = False
    bit_depth: int = 8


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings while decoding: errors are reported once, by us."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to ``(H, W[, C])`` pixels."""
    if orientation in (5, 6, 7, 8):
        pixels = np.swapaxes(pixels, 0, 1)  # transpose, then flips as below
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation == 2:
        pixels = pixels[:, ::-1]
    elif orientation == 3:
        pixels = pixels[::-1, ::-1]
    elif orientation == 4:
        pixels = pixels[::-1]
    return np.ascontiguousarray(pixels)


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Read an image file.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this (checked on the header before decoding);
            ``None`` disables the check.

    Raises:
        ImageReadError: missing, empty, non-image, corrupt, too large or unsupported sample type.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image file") from None
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read ({err.strerror or err})") from None
    if not data:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    header = read_header(data)
    if header is not None and header.width is not None and header.height is not None:
        _check_size(path, header.width, header.height, max_pixels)
    with _quiet_opencv():
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        what = f"corrupt or truncated {header.format.upper()} data" if header else "not an image (unknown format)"
        raise ImageReadError(f"{path}: {what}; decoding failed")
    _check_size(path, pixels.shape[1], pixels.shape[0], max_pixels)
    if pixels.dtype == np.uint8:
        bit_depth, peak = 8, 255.0
    elif pixels.dtype == np.uint16:
        bit_depth, peak = 16, 65535.0
    else:
        raise ImageReadError(f"{path}: unsupported sample type {pixels.dtype} (8- and 16-bit integer images only)")
    if header is not None and header.orientation != 1:
        pixels = _orient(pixels, header.orientation)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: unsupported channel count {channels}")
    values = pixels.astype(np.float32) / peak
    alpha = values[:, :, -1].copy() if channels in (2, 4) else None
    gray = channels in (1, 2) or (header is not None and header.gray)
    if channels in (1, 2):
        rgb = np.repeat(values[:, :, :1], 3, axis=2)
    else:
        rgb = np.ascontiguousarray(values[:, :, 2::-1])  # BGR -> RGB
    return Image(rgb=rgb, alpha=alpha, gray=gray, bit_depth=bit_depth)


def _check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{path}: invalid image size {width}x{height} in the header")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(
            f"{path}: {width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels} "
            "(possible decompression bomb; raise the limit if the image is genuine)"
        )


def resize_alpha(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of an ``(h, w)`` alpha map to ``(height, width)``, clipped to [0, 1]."""
    if alpha.shape == (height, width):
        return alpha
    resized = cv2.resize(alpha.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(resized, 0.0, 1.0)


def _quantize(values: np.ndarray, bit_depth: int) -> np.ndarray:
    peak, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return np.rint(np.clip(values, 0.0, 1.0) * peak).astype(dtype)


def write_image(
    path: str | Path,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    gray: bool = False,
    bit_depth: int = 8,
) -> Path:
    """Write float RGB in [0, 1] (values outside are clipped) atomically; the format follows the suffix.

    Args:
        path: output file; its folder is created if needed.
        rgb: ``(H, W, 3)`` float RGB (or ``(H, W)`` gray).
        alpha: optional ``(H, W)`` float alpha in [0, 1], stored as a fourth (or second) channel.
        gray: store one channel, the BT.601 luma of ``rgb``.
        bit_depth: 8 or 16 (16 only for PNG and TIFF).

    Raises:
        ValueError: a suffix that is not an image format of ``IMAGE_SUFFIXES``, bad shapes, a bit depth or
            alpha channel the format cannot store, or an encoder failure.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix and suffix not in IMAGE_SUFFIXES:  # no suffix: PNG
        raise ValueError(f"{path}: unsupported output format {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if bit_depth not in (8, 16):
        raise ValueError(f"{path}: bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and suffix in _EIGHT_BIT_ONLY:
        raise ValueError(f"{path}: {_EIGHT_BIT_ONLY[suffix]} stores 8-bit samples only, got bit_depth=16")
    if alpha is not None and suffix in _NO_ALPHA:
        raise ValueError(f"{path}: {_NO_ALPHA[suffix]} cannot store an alpha channel")
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        planes = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None] if gray else rgb[:, :, ::-1]
    elif rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 1):
        planes = rgb.reshape(rgb.shape[0], rgb.shape[1], 1)
    else:
        raise ValueError(f"{path}: expected (H, W, 3) RGB or (H, W) gray, got shape {rgb.shape}")
    if alpha is not None:
        if alpha.shape != planes.shape[:2]:
            raise ValueError(f"{path}: alpha shape {alpha.shape} does not match the image {planes.shape[:2]}")
        if planes.shape[2] == 1:  # OpenCV stores gray + alpha as BGRA
            planes = np.repeat(planes, 3, axis=2)
        planes = np.concatenate([planes, alpha[:, :, None].astype(np.float32)], axis=2)
    pixels = _quantize(planes, bit_depth)
    ok, encoded = cv2.imencode(suffix or ".png", pixels if pixels.shape[2] > 1 else pixels[:, :, 0])
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {pixels.shape} {pixels.dtype} image as {suffix}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path
