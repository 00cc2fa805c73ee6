"""Bottom/right padding of an image batch to a size the network accepts, and the matching crop.

Two rules exist in the official test-time code and both are reproduced exactly:

* ``"reflect"`` (HAT/DRCT model classes, DRSformer ``test.py``): a dimension that is not a multiple of ``m`` is
  padded up to the next multiple; a dimension that already is one is left alone. The mirror does NOT repeat the
  edge pixel (``F.pad(mode="reflect")``).
* ``"symmetric"`` (DRCT ``inference.py``): every dimension gets ``m - n % m`` extra rows/columns, i.e. 1..m, a
  full extra block when ``n`` is already a multiple. The mirror DOES repeat the edge pixel (``cat([x, flip(x)])``).

Where the official code would fail (a reflection wider than the image), the mirror is continued periodically,
so any image size works; wherever the official code runs, the result is identical to it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PADDING_MODES", "pad_amount", "pad_bottom_right"]

PaddingMode = Literal["reflect", "symmetric"]
PADDING_MODES: tuple[str, ...] = ("reflect", "symmetric")


def pad_amount(size: int, multiple: int, mode: PaddingMode) -> int:
    """Rows (or columns) that ``mode`` appends to a dimension of ``size`` pixels.

    Examples: ``pad_amount(23, 8, "reflect") == 1``, ``pad_amount(24, 8, "reflect") == 0``,
    ``pad_amount(24, 8, "symmetric") == 8``.
    """
    if multiple < 1:
        raise ValueError(f"pad multiple must be >= 1, got {multiple}")
    if mode == "reflect":
        return -size % multiple
    if mode == "symmetric":
        return multiple - size % multiple
    raise ValueError(f"padding mode must be one of {PADDING_MODES}, got {mode!r}")


def _reflect_dim(x: Tensor, pad: int, dim: int) -> Tensor:
    """Append ``pad`` mirrored rows along ``dim`` (2 or 3), excluding the edge pixel from the mirror."""
    while pad > 0:
        size = x.shape[dim]
        if size == 1:  # nothing to mirror: a single row can only be repeated
            reps = [1] * x.dim()
            reps[dim] = pad + 1
            return x.repeat(*reps)
        step = min(pad, size - 1)
        widths = (0, 0, 0, step) if dim == 2 else (0, step, 0, 0)
        x = F.pad(x, widths, mode="reflect")
        pad -= step
    return x


def _symmetric_dim(x: Tensor, pad: int, dim: int) -> Tensor:
    """Append ``pad`` mirrored rows along ``dim``, the edge pixel repeated (periodic ``[x, flip(x), x, ...]``)."""
    target = x.shape[dim] + pad
    while x.shape[dim] < target:
        x = torch.cat([x, torch.flip(x, [dim])], dim)
    return x.narrow(dim, 0, target)


def pad_bottom_right(x: Tensor, multiple: int, mode: PaddingMode = "reflect") -> tuple[Tensor, tuple[int, int]]:
    """Pad ``x`` at the bottom and right so that the network accepts it.

    Args:
        x: ``(B, C, H, W)`` image batch, any float dtype.
        multiple: the network's ``pad_multiple`` (1 = no constraint).
        mode: ``"reflect"`` or ``"symmetric"`` (see the module docstring).

    Returns:
        The padded ``(B, C, H + ph, W + pw)`` tensor (``x`` itself when nothing is added) and ``(ph, pw)``.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    ph = pad_amount(x.shape[2], multiple, mode)
    pw = pad_amount(x.shape[3], multiple, mode)
    extend = _reflect_dim if mode == "reflect" else _symmetric_dim
    if ph:
        x = extend(x, ph, 2)
    if pw:
        x = extend(x, pw, 3)
    return x, (ph, pw)
