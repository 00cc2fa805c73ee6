"""Helpers for reading hyper-parameters back from state-dict keys and shapes (used by the ``detect`` functions)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import torch

from restore.archs.layers.swin_sr_base import NUM_FEAT


def count_children(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of numbered children under ``prefix`` (e.g. ``"layers."`` -> 1 + largest ``layers.<i>``); 0 if none."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for key in state_dict if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def square_side(count: int) -> int | None:
    """``s`` with ``s * s == count``, or ``None``."""
    side = math.isqrt(count)
    return side if side * side == count else None


def ape_img_size(state_dict: Mapping[str, torch.Tensor], family: str) -> int | None:
    """Square ``img_size`` covered by ``absolute_pos_embed`` ``(1, img_size**2, C)``, or ``None`` without ``ape``."""
    if "absolute_pos_embed" not in state_dict:
        return None
    side = square_side(state_dict["absolute_pos_embed"].shape[1])
    if side is None:
        raise ValueError(f"{family} detect: absolute_pos_embed does not cover a square img_size")
    return side


def hidden_ratio(hidden: int, dim: int) -> int | float:
    """A ratio ``r`` with ``int(dim * r) == hidden``: an int when exact, else the smallest float that works."""
    if hidden % dim == 0:
        return hidden // dim
    ratio = hidden / dim
    if int(dim * ratio) != hidden:
        ratio = (hidden + 0.5) / dim
    return ratio


def divisor_for(dim: int, reduced: int) -> int:
    """An integer ``f`` with ``dim // f == reduced`` (``compress_ratio``, ``squeeze_factor``)."""
    if reduced <= 0:
        raise ValueError(f"cannot infer a reduction factor for {dim} -> {reduced} channels")
    guess = dim // reduced
    if guess >= 1 and dim // guess == reduced:
        return guess
    for factor in range(1, dim + 1):
        if dim // factor == reduced:
            return factor
    raise ValueError(f"no integer factor f gives {dim} // f == {reduced}")


def missing_key(state_dict: Mapping[str, torch.Tensor], keys: Iterable[str], family: str, why: str) -> None:
    """Raise ``ValueError`` naming the first of ``keys`` absent from ``state_dict`` (a nearly matching checkpoint)."""
    absent = [key for key in keys if key not in state_dict]
    if absent:
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        raise ValueError(f"{family} checkpoint: missing key {absent[0]!r}{more} ({why})")


def detect_reconstruction(state_dict: Mapping[str, torch.Tensor], family: str = "") -> tuple[str, int | None]:
    """``(upsampler, upscale)`` from the reconstruction keys: ``('pixelshuffle', s)`` or ``('', None)``.

    ``upsample.<i>`` convolutions with ``4 * 64`` output channels each double the size; a single one with
    ``9 * 64`` triples it; no ``upsample`` keys with ``conv_last`` present means scale 1.

    Raises:
        ValueError: part of the tail is there but a piece is missing (named, e.g. ``conv_last.weight``).
    """
    tail = [k for k in state_dict if k.startswith(("conv_before_upsample.", "upsample.", "conv_last."))]
    if tail:
        needed = ["conv_last.weight", "conv_last.bias", "conv_before_upsample.0.weight", "conv_before_upsample.0.bias"]
        missing_key(state_dict, needed, family or "the", "the other reconstruction-tail weights are there")
    if "conv_last.weight" not in state_dict:
        return "", None
    convs = sorted(
        int(m.group(1)) for key in state_dict if (m := re.fullmatch(r"upsample\.(\d+)\.weight", key)) is not None
    )
    if not convs:
        return "pixelshuffle", 1
    outs = [state_dict[f"upsample.{i}.weight"].shape[0] for i in convs]
    if outs == [9 * NUM_FEAT]:
        return "pixelshuffle", 3
    if all(o == 4 * NUM_FEAT for o in outs):
        return "pixelshuffle", 2 ** len(outs)
    raise ValueError(f"upsample: unexpected convolution widths {outs}")
