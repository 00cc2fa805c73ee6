"""Restoring image files: which files, where their results go, and one file end to end.

A file is read (``restore.data.image_io``), its RGB goes through ``infer``, alpha is resized beside it
(bicubic), grayscale goes back to one channel, and the result is written atomically with the input's bit
depth (8-bit when the output format stores nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from restore.data.image_io import IMAGE_SUFFIXES, read_image, resize_alpha, write_image
from restore.engine.inference import infer
from restore.utils.files import is_partial_file

__all__ = [
    "FileJob",
    "ImageScan",
    "drop_own_outputs",
    "list_images",
    "plan_jobs",
    "restore_file",
    "scan_images",
    "shard",
]

_SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}


@dataclass(frozen=True)
class FileJob:
    """One input file and the output it produces."""

    source: Path
    target: Path


@dataclass
class ImageScan:
    """What a folder scan found: image files to process, and image names that are dangling symbolic links."""

    files: list[Path]
    dangling: list[Path]


def scan_images(source: Path, recursive: bool = False, exclude: Path | None = None) -> ImageScan:
    """Image files to process, sorted: ``source`` itself if it is a file, else the image files of the folder.

    A folder is scanned by suffix (``IMAGE_SUFFIXES``, case-insensitive); a file given directly is taken as is,
    so that a misnamed or broken file is reported rather than silently ignored. Temporary files of unfinished
    writes (``restore.utils.files.is_partial_file``) and everything under ``exclude`` (an output folder inside
    ``source``) are skipped; image names that are symbolic links to nothing are returned in ``dangling``.
    """
    if source.is_file():
        return ImageScan([source], [])
    if not source.is_dir():
        if source.is_symlink():
            raise FileNotFoundError(f"{source}: dangling symbolic link (points to {source.readlink()})")
        raise FileNotFoundError(f"{source}: no such file or folder")
    pattern = "**/*" if recursive else "*"
    skip = exclude.resolve() if exclude is not None and recursive else None
    if skip == source.resolve():
        skip = None
    found, dangling = [], []
    for path in source.glob(pattern):
        if path.suffix.lower() not in IMAGE_SUFFIXES or is_partial_file(path):
            continue
        if skip is not None and skip in path.resolve().parents:
            continue
        if path.is_file():
            found.append(path)
        elif path.is_symlink() and not path.exists():
            dangling.append(path)

    def order(path: Path) -> str:
        return path.relative_to(source).as_posix()

    return ImageScan(sorted(found, key=order), sorted(dangling, key=order))


def list_images(source: Path, recursive: bool = False) -> list[Path]:
    """The image files of :func:`scan_images` (dangling links left out)."""
    return scan_images(source, recursive).files


def plan_jobs(
    files: Sequence[Path], source: Path, outdir: Path, suffix: str = "", ext: Literal["png", "same"] = "png"
) -> list[FileJob]:
    """Pair each input with its output path (sub-folders of ``source`` are mirrored under ``outdir``)."""
    jobs = []
    for path in files:
        relative = path.relative_to(source) if source.is_dir() else Path(path.name)
        new_suffix = path.suffix if ext == "same" else f".{ext}"
        jobs.append(FileJob(path, outdir / relative.parent / f"{relative.stem}{suffix}{new_suffix}"))
    return jobs


def drop_own_outputs(jobs: Sequence[FileJob]) -> tuple[list[FileJob], list[Path]]:
    """Split off inputs that are outputs of this same command: files that another input's job would write.

    With ``-o`` equal to ``-i`` (or ``-o`` inside ``-i``), results of an earlier run (``a_x4.png`` next to ``a.png``,
    ``b.png`` made from ``b.jpg``) would otherwise be restored again. Returns ``(jobs to run, skipped sources)``.
    """
    written_by: dict[Path, Path] = {}
    for job in jobs:
        written_by.setdefault(job.target.resolve(), job.source.resolve())
    keep, dropped = [], []
    for job in jobs:
        source = job.source.resolve()
        maker = written_by.get(source)
        if maker is not None and maker != source:
            dropped.append(job.source)
        else:
            keep.append(job)
    return keep, dropped


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Items of this rank: every ``world_size``-th item starting at ``rank`` (each item goes to one rank)."""
    return list(items[rank::world_size])


def restore_file(net: nn.Module, job: FileJob, infer_options: Mapping[str, Any], max_pixels: int | None) -> Path:
    """Read ``job.source``, restore it with ``infer(net, ..., **infer_options)`` and write ``job.target``.

    Raises:
        ImageReadError: the input cannot be read; ValueError: the output cannot be written.
    """
    image = read_image(job.source, max_pixels=max_pixels)
    lq = torch.from_numpy(image.rgb).permute(2, 0, 1).unsqueeze(0)
    out = infer(net, lq, **infer_options)
    rgb = out[0].permute(1, 2, 0).clamp_(0, 1).cpu().numpy().astype(np.float32)
    alpha = None if image.alpha is None else resize_alpha(image.alpha, rgb.shape[0], rgb.shape[1])
    bit_depth = image.bit_depth if job.target.suffix.lower() in _SIXTEEN_BIT_SUFFIXES else 8
    return write_image(job.target, rgb, alpha=alpha, gray=image.gray, bit_depth=bit_depth)
