"""Where tiles go and how their outputs are weighted: pure geometry, no tensors of the image.

A 2-D tiling is the product of two 1-D plans (rows x columns). Because every tile's weight is a product
``w_row(y) * w_col(x)`` and the grid is a product too, the per-pixel sum of weights factorises into a row sum
times a column sum; normalising each 1-D plan therefore makes the 2-D weights sum to exactly 1 everywhere,
with no weight accumulator for the image.

Blended plan (``plan_blended_axis``): the axis is cut into ``n`` near-equal *cores* (together they cover
the axis once). Each tile *region* is its core extended by at least ``context`` pixels on both sides (the
official ``tile_pad`` meaning; less only at the image border), widened with real pixels to a multiple of the
network's ``multiple``, and placed on the ``multiple`` grid of the whole image: window-attention networks
then partition a tile into the same windows as the whole image, so a tile's output matches the untiled
output far more closely. All regions of an axis have the same size (tiles of equal shape are batched). Around every core
boundary the two neighbouring tiles cross-fade with a raised-cosine ramp (weights sum to 1 across the band);
outside the band a tile's weight is 1 over its core and 0 in the rest of its context, whose pixels lack
context themselves. Every output pixel gets weight >= 1/2 from the tile whose core holds it, so the
normalisation never divides by a small number, and tiles keep full weight up to the image border (no dark
borders, no seams).

Averaged plan (``plan_averaged_axis``): DRCT ``inference.py`` / DRSformer ``test.py`` sliding windows with
a plain average of overlapping outputs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RAMP_HALF_WIDTH", "AxisPlan", "plan_averaged_axis", "plan_blended_axis"]

#: Half-width of the cross-fade around a core boundary, as a fraction of ``context``.
RAMP_HALF_WIDTH = 0.25


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis of length ``length`` (input pixels).

    Attributes:
        starts: region start of every tile (input pixels).
        size: region length shared by every tile (input pixels).
        cores: ``(begin, end)`` of every tile's core; cores partition ``[0, length)`` (blended plans only).
        weights: per tile, output-space weights ``(size * scale,)`` float64, normalised so that the weights of
            all tiles covering an output pixel sum to 1; ``None`` for single-tile plans (weight 1).
    """

    length: int
    size: int
    starts: tuple[int, ...]
    cores: tuple[tuple[int, int], ...]
    weights: tuple[Tensor, ...] | None

    def __len__(self) -> int:
        return len(self.starts)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _floor(value: int, multiple: int) -> int:
    return value // multiple * multiple


def _aligned_start(a: int, b: int, left: int, right: int, size: int, length: int, multiple: int) -> int:
    """Region start on the ``multiple`` grid covering ``[left, right)``, closest to centring the core ``[a, b)``."""
    lowest = max(_round_up(right - size, multiple), 0)
    highest = min(_floor(left, multiple), length - size)
    centred = round((a - (size - (b - a)) / 2) / multiple) * multiple
    return min(max(centred, lowest), highest)


def _single(length: int) -> AxisPlan:
    return AxisPlan(length, length, (0,), ((0, length),), None)


def plan_blended_axis(
    length: int, core: int, context: int, multiple: int, scale: int, region: int | None = None
) -> AxisPlan:
    """Plan cores, regions and cross-fade weights along one axis.

    Args:
        length: axis length in input pixels; a multiple of ``multiple`` (the image is padded first).
        core: largest core length (the ``tile`` size), >= 1.
        context: pixels of context on each side of a core (``tile_overlap``), >= 0.
        multiple: the network's ``pad_multiple``; region sizes are multiples of it.
        scale: network output/input size ratio (weights are given on the output grid).
        region: if given, every region has exactly this size (a network of fixed input size); it must be a
            multiple of ``multiple``, at most ``length``, and at least the size the cores and context need.
    """
    if length % multiple:
        raise ValueError(f"axis length {length} is not a multiple of {multiple}; pad the image first")
    if core < 1 or context < 0:
        raise ValueError(f"tile must be >= 1 and tile_overlap >= 0, got {core} and {context}")
    count = math.ceil(length / core)
    bounds = [round(k * length / count) for k in range(count + 1)]
    cores = tuple(itertools.pairwise(bounds))
    # Each region must reach ``context`` beyond its core (or the border) and start on the network's grid.
    needs = [(max(a - context, 0), min(b + context, length)) for a, b in cores]
    size = max(_round_up(right - _floor(left, multiple), multiple) for left, right in needs)
    if region is not None:
        if size > region or region > length or region % multiple:
            raise ValueError(f"regions of {region} px cannot hold {core}-px cores with {context} px of context "
                             f"on a {length}-px axis (multiple {multiple})")  # fmt: skip
        size = region
    if count == 1 or size >= length:
        return _single(length)
    starts = tuple(
        _aligned_start(a, b, left, right, size, length, multiple) for (a, b), (left, right) in zip(cores, needs)
    )

    # Half-width of each interior boundary's ramp: as wide as asked, but inside both neighbouring regions.
    half = []
    for k in range(1, count):
        edge = bounds[k]
        room = min(edge - starts[k], starts[k - 1] + size - edge)
        half.append(min(RAMP_HALF_WIDTH * context, room))

    raw = []
    for k, start in enumerate(starts):
        u = (torch.arange(size * scale, dtype=torch.float64) + 0.5) / scale + start  # input-space pixel centres
        w = torch.ones_like(u)
        if k > 0:
            w *= _rise(u, bounds[k], half[k - 1])
        if k < count - 1:
            w *= 1.0 - _rise(u, bounds[k + 1], half[k])
        raw.append(w)
    total = torch.zeros(length * scale, dtype=torch.float64)
    for start, w in zip(starts, raw):
        total[start * scale : (start + size) * scale] += w
    weights = tuple(w / total[s * scale : (s + size) * scale] for s, w in zip(starts, raw))
    return AxisPlan(length, size, starts, cores, weights)


def _rise(u: Tensor, edge: float, half: float) -> Tensor:
    """Raised-cosine step from 0 (``u <= edge - half``) to 1 (``u >= edge + half``); a hard step if ``half == 0``."""
    if half <= 0:
        return (u >= edge).to(u.dtype)
    t = ((u - (edge - half)) / (2 * half)).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def plan_averaged_axis(length: int, tile: int, overlap: int) -> AxisPlan:
    """Sliding-window starts of DRCT ``inference.py`` / DRSformer ``test.py`` along one axis.

    ``tile`` is the already clamped window (``min(tile, H, W)``); starts are ``range(0, length - tile, stride)``
    followed by ``length - tile``, with ``stride = tile - overlap``. Weights are left to the caller (plain average).
    """
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile_overlap ({overlap}) must be smaller than the tile ({tile}) for averaged tiles")
    starts = (*range(0, length - tile, stride), length - tile)
    return AxisPlan(length, tile, starts, (), None)
