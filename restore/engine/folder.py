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

__all__ = ["FileJob", "list_images", "plan_jobs", "restore_file", "shard"]

_SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}


@dataclass(frozen=True)
class FileJob:
    """One input file and the output it produces."""

    source: Path
    target: Path


def list_images(source: Path, recursive: bool = False) -> list[Path]:
    """Image files to process, sorted: ``source`` itself if it is a file, else the image files of the folder.

    A folder is scanned by suffix (``IMAGE_SUFFIXES``, case-insensitive); a file given directly is taken as is,
    so that a misnamed or broken file is reported rather than silently ignored.
    """
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder")
    pattern = "**/*" if recursive else "*"
    found = [p for p in source.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda p: p.relative_to(source).as_posix())


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
