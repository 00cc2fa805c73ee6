"""Recover a hidden-width multiplier from layer shapes (for reading hyper-parameters back from checkpoints)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["infer_expansion_factor"]


def infer_expansion_factor(pairs: Iterable[tuple[int, int]], preferred: Sequence[float] = ()) -> float:
    """A factor f with ``int(width * f) == hidden`` for every ``(width, hidden)`` pair.

    Tries ``preferred`` first (e.g. the official defaults), then the shortest decimal in the feasible interval.

    Raises:
        ValueError: no factor reproduces every hidden width.
    """
    pairs = list(pairs)

    def fits(factor: float) -> bool:
        return all(int(width * factor) == hidden for width, hidden in pairs)

    for factor in preferred:
        if fits(factor):
            return factor
    low = max(hidden / width for width, hidden in pairs)
    high = min((hidden + 1) / width for width, hidden in pairs)
    for decimals in range(7):
        scale = 10**decimals
        for factor in (math.ceil(low * scale) / scale, (math.ceil(low * scale) + 1) / scale):
            if factor < high and fits(factor):
                return factor
    raise ValueError(f"no expansion factor reproduces the hidden widths (width, hidden) = {pairs}")
