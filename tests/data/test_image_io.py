"""Image reading and writing: formats, bit depths, gray, alpha, EXIF orientation, bombs, bad files, atomicity."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
from skimage import io as skio

from restore.data.image_header import read_header
from restore.data.image_io import ImageReadError, read_image, resize_alpha, write_image

SAMPLES = Path(skimage.__file__).parent / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, color_type: int, bit_depth: int, rows: bytes | None, extra: bytes = b"") -> bytes:
    """A PNG written by hand (OpenCV writes no gray + alpha files); ``rows`` unfiltered, or None for no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = _png_chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + idat + _png_chunk(b"IEND", b"")


def _exif_tiff(orientation: int, little_endian: bool) -> bytes:
    end = "<" if little_endian else ">"
    return (
        (b"II" if little_endian else b"MM")
        + struct.pack(end + "HI", 42, 8)
        + struct.pack(end + "H", 1)
        + struct.pack(end + "HHIHH", 274, 3, 1, orientation, 0)
        + struct.pack(end + "I", 0)
    )


def _jpeg_with_orientation(bgr: np.ndarray, orientation: int, little_endian: bool = False) -> bytes:
    jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    body = b"Exif\x00\x00" + _exif_tiff(orientation, little_endian)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_eight_bit_rgb_round_trip_is_exact(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    rgb = rng.integers(0, 256, (13, 17, 3)).astype(np.float32) / 255
    path = write_image(tmp_path / f"a{suffix}", rgb)
    image = read_image(path)
    assert image.bit_depth == 8 and not image.gray and image.alpha is None
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (13, 17, 3)
    np.testing.assert_array_equal(image.rgb, rgb)
    stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # RGB on our side, BGR in OpenCV's files
    np.testing.assert_array_equal(stored[:, :, ::-1], np.rint(rgb * 255).astype(np.uint8))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_round_trip_keeps_depth(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    rgb = rng.integers(0, 65536, (9, 11, 3)).astype(np.float32) / 65535
    path = write_image(tmp_path / f"deep{suffix}", rgb, bit_depth=16)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    image = read_image(path)
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.rgb, rgb, atol=0.5 / 65535)


def test_jpeg_and_webp_read_like_opencv(tmp_path: Path, rng: np.random.Generator) -> None:
    bgr = rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    for suffix in (".jpg", ".webp"):
        path = tmp_path / f"x{suffix}"
        cv2.imwrite(str(path), bgr)
        ref = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
        np.testing.assert_array_equal(read_image(path).rgb, ref)


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.png", "camera.png", "rocket.jpg"])
def test_sample_photos_match_an_independent_decoder(name: str) -> None:
    image = read_image(SAMPLES / name)
    ref = skio.imread(SAMPLES / name).astype(np.float32) / 255  # imageio / Pillow
    if ref.ndim == 2:
        assert image.gray
        ref = np.repeat(ref[:, :, None], 3, axis=2)
    atol = 1.5 / 255 if name.endswith(".jpg") else 0  # JPEG decoders may round the IDCT differently
    np.testing.assert_allclose(image.rgb, ref[:, :, :3], rtol=0, atol=atol)


# ----------------------------------------------------------------------------------------- gray and alpha


def test_gray_goes_through_three_channels_and_back(tmp_path: Path, rng: np.random.Generator) -> None:
    gray = rng.integers(0, 256, (10, 12)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    image = read_image(tmp_path / "g.png")
    assert image.gray and image.rgb.shape == (10, 12, 3)
    np.testing.assert_array_equal(image.rgb[:, :, 0], gray / np.float32(255))
    np.testing.assert_array_equal(image.rgb[:, :, 0], image.rgb[:, :, 2])
    out = write_image(tmp_path / "out.png", image.rgb, gray=True)
    stored = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert stored.ndim == 2
    np.testing.assert_array_equal(stored, gray)


def test_rgba_alpha_is_kept_apart(tmp_path: Path, rng: np.random.Generator) -> None:
    bgra = rng.integers(0, 256, (8, 9, 4)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    image = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image.alpha, bgra[:, :, 3] / np.float32(255))
    np.testing.assert_array_equal(image.rgb, bgra[:, :, 2::-1] / np.float32(255))
    out = write_image(tmp_path / "b.png", image.rgb, alpha=image.alpha)
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), bgra)


def test_gray_with_alpha_png(tmp_path: Path) -> None:
    luma, alpha = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, np.full((3, 4), 128, np.uint8)
    rows = b"".join(b"\x00" + np.stack([luma[y], alpha[y]], axis=1).tobytes() for y in range(3))
    (tmp_path / "la.png").write_bytes(_png(4, 3, color_type=4, bit_depth=8, rows=rows))
    image = read_image(tmp_path / "la.png")
    assert image.gray and image.bit_depth == 8
    np.testing.assert_array_equal(image.rgb[:, :, 1], luma / np.float32(255))
    np.testing.assert_array_equal(image.alpha, alpha / np.float32(255))


def test_resize_alpha_is_bicubic_and_clipped() -> None:
    alpha = np.zeros((4, 4), np.float32)
    alpha[1:3, 1:3] = 1
    big = resize_alpha(alpha, 16, 16)
    ref = cv2.resize(alpha, (16, 16), interpolation=cv2.INTER_CUBIC)
    assert big.shape == (16, 16) and big.min() >= 0 and big.max() <= 1
    assert ref.max() > 1 or ref.min() < 0, "bicubic overshoots: the clip matters"
    np.testing.assert_array_equal(big, np.clip(ref, 0, 1))


# ------------------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("little_endian", [False, True])
def test_jpeg_exif_orientation_is_applied(tmp_path: Path, orientation: int, little_endian: bool) -> None:
    bgr = np.zeros((16, 24, 3), np.uint8)
    bgr[:4, :8] = (0, 0, 255)  # red top-left block, blue bottom rows, green right columns
    bgr[-4:] = (255, 0, 0)
    bgr[:, -3:, 1] = 200
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(_jpeg_with_orientation(bgr, orientation, little_endian))
    assert read_header(path.read_bytes()).orientation == orientation
    ours = read_image(path).rgb
    shown = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255  # OpenCV applies EXIF
    np.testing.assert_array_equal(ours, shown)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # ...but not for IMREAD_UNCHANGED
    if orientation != 1:
        assert raw.shape != ours.shape or not np.array_equal(raw[:, :, ::-1] / np.float32(255), ours)
    expected = {1: raw, 3: raw[::-1, ::-1], 6: np.rot90(raw, -1), 8: np.rot90(raw, 1)}.get(orientation)
    if expected is not None:
        np.testing.assert_array_equal(ours, expected[:, :, ::-1] / np.float32(255))


def test_png_exif_orientation_is_applied(tmp_path: Path, rng: np.random.Generator) -> None:
    bgr = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    exif = _png_chunk(b"eXIf", _exif_tiff(6, little_endian=False))
    (tmp_path / "r.png").write_bytes(png[:33] + exif + png[33:])  # after the 8-byte signature and 25-byte IHDR
    np.testing.assert_array_equal(read_image(tmp_path / "r.png").rgb, np.rot90(bgr, -1)[:, :, ::-1] / np.float32(255))


# ---------------------------------------------------------------------------------------------- bad input


def test_decompression_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_png(100_000, 100_000, color_type=2, bit_depth=8, rows=None))
    with pytest.raises(ImageReadError, match=r"bomb\.png: 100000x100000 = 10000000000 pixels exceeds max_pixels"):
        read_image(tmp_path / "bomb.png")
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 60_000, 60_000, 1) + b"\x01\x11\x00"
    (tmp_path / "bomb.jpg").write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    with pytest.raises(ImageReadError, match="60000x60000"):
        read_image(tmp_path / "bomb.jpg")


def test_bmp_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    bmp = bytearray(cv2.imencode(".bmp", np.zeros((2, 3, 3), np.uint8))[1].tobytes())
    bmp[18:26] = struct.pack("<ii", 70_000, -50_000)  # BITMAPINFOHEADER width, height (negative: top-down)
    (tmp_path / "bomb.bmp").write_bytes(bytes(bmp))
    with pytest.raises(ImageReadError, match=r"bomb\.bmp: 70000x50000 = 3500000000 pixels exceeds max_pixels"):
        read_image(tmp_path / "bomb.bmp")


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "JPEG", "PNG"])
def test_header_fields_from_files_written_by_another_encoder(fmt: str) -> None:
    """Pillow writes the EXIF orientation; the header reports it and the stored (not displayed) size."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    image = PILImage.new("RGB", (9, 5))
    exif = image.getexif()
    exif[274] = 6
    image.save(buffer, fmt, exif=exif)
    header = read_header(buffer.getvalue())
    assert header is not None and header.format == fmt.lower() and header.orientation == 6
    assert {header.width, header.height} == {9, 5} and not header.gray
    assert read_header(b"GIF89a" + bytes(20)) is None


def test_tiff_that_the_header_library_cannot_open_still_gives_its_size() -> None:
    header = read_header((SAMPLES / "multipage_rgb.tif").read_bytes())  # planar 64-bit samples
    assert (header.format, header.width, header.height, header.gray) == ("tiff", 10, 10, False)


def test_max_pixels_is_adjustable(tmp_path: Path) -> None:
    path = write_image(tmp_path / "small.png", np.zeros((20, 30, 3), np.float32))
    with pytest.raises(ImageReadError, match="600 pixels exceeds max_pixels=100"):
        read_image(path, max_pixels=100)
    assert read_image(path, max_pixels=None).rgb.shape == (20, 30, 3)


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    good = cv2.imencode(".png", np.zeros((32, 32, 3), np.uint8) + 77)[1].tobytes()
    cases = {
        "empty.png": (b"", "empty file (0 bytes)"),
        "notes.png": (b"just some text, not pixels\n", "not an image (unknown format)"),
        "cut.png": (good[: len(good) // 2], "corrupt or truncated PNG data"),
        "cut.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF", "corrupt or truncated JPEG data"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageReadError, match=re.escape(f"{name}: {reason}")):
            read_image(tmp_path / name)
    with pytest.raises(ImageReadError, match=r"missing\.png: file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_opencv_warnings_are_silenced(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    good = cv2.imencode(".png", np.zeros((32, 32, 3), np.uint8))[1].tobytes()
    (tmp_path / "cut.png").write_bytes(good[:60])
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "cut.png")
    assert capfd.readouterr().err == ""


# ------------------------------------------------------------------------------------------------ writing


def test_write_refuses_what_the_format_cannot_store(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"x\.jpg: JPEG stores 8-bit samples only"):
        write_image(tmp_path / "x.jpg", rgb, bit_depth=16)
    with pytest.raises(ValueError, match="cannot store an alpha channel"):
        write_image(tmp_path / "x.jpg", rgb, alpha=np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="expected"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 5), np.float32))
    with pytest.raises(ValueError, match="alpha shape"):
        write_image(tmp_path / "x.png", rgb, alpha=np.ones((3, 4), np.float32))


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_image(tmp_path / "keep.png", np.full((4, 4, 3), 0.5, np.float32))
    before = target.read_bytes()

    def broken_write(self: Path, data: bytes) -> int:
        Path.write_bytes.__wrapped__(self, data[: len(data) // 2])  # half written, then the disk fails
        raise OSError("No space left on device")

    broken_write.__wrapped__ = Path.write_bytes  # type: ignore[attr-defined]
    monkeypatch.setattr(Path, "write_bytes", broken_write)
    with pytest.raises(OSError, match="No space left"):
        write_image(target, np.zeros((4, 4, 3), np.float32))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"], "no temporary file left behind"


def test_values_are_clipped_and_rounded(tmp_path: Path) -> None:
    rgb = np.array([[[-0.5, 0.5, 1.7]]], np.float32)
    stored = cv2.imread(str(write_image(tmp_path / "c.png", rgb)), cv2.IMREAD_UNCHANGED)
    assert stored[0, 0].tolist() == [255, 128, 0]  # BGR
