"""DRSformer's mixed-scale feed-forward network (MSFN) in the form ONNX Runtime's CPU provider runs fastest.

Used only while the network is exported (``torch.compiler.is_exporting()``); the PyTorch path is
``MixedScaleFeedForward.forward`` and stays the reference. Same function, same products, summed in another order.

Why: ONNX Runtime runs a convolution with its blocked-channel (NCHWc) kernels only when its output channels are a
multiple of the block (16 channels with AVX-512, 8 with AVX2); other convolutions take a generic kernel, 3-5x
slower (a 5x5 depthwise conv on (1, 510, 128, 128): 16.3 ms, on 512 channels: 3.5 ms, 2 threads). Splits, slices
and reshapes have no NCHWc form: each one costs a copy out of the blocked layout and another back in. MSFN's
widths (``2 h`` = 254, 510, 1020, 2042 with the official expansion 2.66) miss the block, and its chunk /
concatenate / pair-sum plumbing adds copies on every one of its largest tensors.

The form: with ``x = project_in(input)`` (2h channels), ``a = relu(dwconv3x3(x))``, ``b = relu(dwconv5x5(x))``,
branch ``t`` (0: ``dwconv3x3_1``, 1: ``dwconv5x5_1``) reads x channels ``[t h, (t + 1) h)`` and pairs the
channels of ``c = cat(a_t, b_t)`` (2h) two by two: ``out_t[o] = relu(conv(c[2o], w[o, 0]) + conv(c[2o+1], w[o, 1])
+ bias[o])``. A pair is two a-channels (x channels 2k, 2k+1), two b-channels, or, for odd h, ``(a[h-1], b[0])``.
Each pair member is computed in its own tensor so that the partners sit at the same channel of two tensors:

* h even: ``E = x[0, 2, .., h-2]``, ``O = x[1, 3, .., h-1]``; a-pairs ``(dw3 E, dw3 O)``, b-pairs
  ``(dw5 E, dw5 O)``.
* h odd (n = (h + 1) / 2): ``E = x[0, 2, .., h-1]`` (n), ``O = x[1, .., h-2]`` (n - 1),
  ``Q = x[h-1, 1, 3, .., h-2]`` (n); a-pairs ``(dw3 E, dw3 O)`` (E's last channel unused), then the mixed pair and
  the b-pairs ``(dw5 Q, dw5 E)``, Q's first channel with a[h-1]'s 3x3 filter zero-padded to 5x5.

E, O and Q are 1x1 convolutions with rows of ``project_in``; every tensor is padded to a multiple of 16 channels
with zero rows and zero filters, so every convolution is blocked; a pair conv is two depthwise convolutions and
an add, which ONNX Runtime fuses into the second; the pair results enter ``project_out`` through one concatenation
of whole blocks and zero weight columns at the pad channels. No split, slice or reshape is left. The weights are
gathered from the parameters with torch ops; ``restore.export.to_onnx`` folds them into initializers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from restore.archs.drsformer.arch import MixedScaleFeedForward

__all__ = ["CHANNEL_BLOCK", "msfn_export_forward", "pair_layout"]

#: Channel multiple of every convolution in the export form (ONNX Runtime's NCHWc block with AVX-512; AVX2's 8
#: divides it).
CHANNEL_BLOCK = 16

#: A pair operand: per channel, the x channel within the branch and its first-stage kernel size (3 or 5);
#: ``(-1, 0)`` is a zero pad channel.
Operand = tuple[tuple[int, int], ...]


def pair_layout(hidden: int) -> list[tuple[Operand, Operand, int, int]]:
    """The pair blocks of one MSFN branch: ``(first, second, start, count)``.

    Slot ``i < count`` of a block holds pair ``start + i`` (members ``first[i]``, ``second[i]``); later slots have
    zero pair filters. ``first`` and ``second`` have the same length, a multiple of :data:`CHANNEL_BLOCK`.
    """
    evens, odds = list(range(0, hidden, 2)), list(range(1, hidden, 2))
    if hidden % 2 == 0:
        blocks = [(evens, 3, odds, 3, 0), (evens, 5, odds, 5, hidden // 2)]
        layout = [([(c, k1) for c in e], [(c, k2) for c in o], start, len(o)) for e, k1, o, k2, start in blocks]
    else:
        half = len(odds)  # (h - 1) / 2 pairs of a-channels, then the mixed pair and the b-pairs
        layout = [
            ([(c, 3) for c in evens], [(c, 3) for c in odds], 0, half),
            ([(hidden - 1, 3)] + [(c, 5) for c in odds], [(c, 5) for c in evens], half, half + 1),
        ]
    padded = []
    for first, second, start, count in layout:
        width = -(-max(len(first), len(second)) // CHANNEL_BLOCK) * CHANNEL_BLOCK
        first, second = ([*op, *[(-1, 0)] * (width - len(op))] for op in (first, second))
        padded.append((tuple(first), tuple(second), start, count))
    return padded


def _rows(table: torch.Tensor | None, index: list[int]) -> torch.Tensor | None:
    """``table[index]`` along dim 0; -1 gives a zero row. None stays None (a conv without bias)."""
    if table is None:
        return None
    table = torch.cat([table, table.new_zeros(1, *table.shape[1:])])
    return table[torch.tensor([len(table) - 1 if i < 0 else i for i in index])]


def _first_stage(ffn: MixedScaleFeedForward, x: torch.Tensor, operand: Operand, offset: int,
                 projected: dict[tuple[int, ...], torch.Tensor]) -> torch.Tensor:  # fmt: skip
    """``relu(depthwise(1x1(x)))`` for the channels of ``operand`` (x channels ``offset + c``): ``(B, len(operand),
    H, W)``; the 1x1 outputs are shared through ``projected`` (keyed by channels)."""
    channels = [-1 if c < 0 else offset + c for c, _ in operand]
    key = tuple(channels)
    if key not in projected:
        projected[key] = F.conv2d(x, _rows(ffn.project_in.weight, channels), _rows(ffn.project_in.bias, channels))
    small, large = ffn.dwconv3x3, ffn.dwconv5x5
    if all(size != 5 for _, size in operand):
        weight, bias, size = _rows(small.weight, channels), _rows(small.bias, channels), 3
    else:  # rows 2h + c: the 3x3 filter of channel c zero-padded to 5x5
        hidden2 = large.out_channels
        table = torch.cat([large.weight, F.pad(small.weight, (1, 1, 1, 1))])
        biases = None if large.bias is None else torch.cat([large.bias, small.bias])
        index = [c if c < 0 or k == 5 else c + hidden2 for c, (_, k) in zip(channels, operand)]
        weight, bias, size = _rows(table, index), _rows(biases, index), 5
    return F.relu(F.conv2d(projected[key], weight, bias, padding=size // 2, groups=len(operand)))


def msfn_export_forward(ffn: MixedScaleFeedForward, x: torch.Tensor) -> torch.Tensor:
    """``ffn(x)`` in the export form, ``(B, dim, H, W) -> (B, dim, H, W)``; see the module docstring."""
    hidden = ffn.dwconv3x3_1.out_channels
    projected: dict[tuple[int, ...], torch.Tensor] = {}
    outputs, columns = [], []
    for branch, pair in enumerate((ffn.dwconv3x3_1, ffn.dwconv5x5_1)):
        offset = branch * hidden
        first_stage: dict[Operand, torch.Tensor] = {}
        weight, bias = pair.weight, pair.bias  # (h, 2, k, k), (h,) or None
        padding = weight.shape[-1] // 2
        for first, second, start, count in pair_layout(hidden):
            for operand in (first, second):
                if operand not in first_stage:
                    first_stage[operand] = _first_stage(ffn, x, operand, offset, projected)
            slots = [start + i if i < count else -1 for i in range(len(first))]
            total = F.conv2d(first_stage[first], _rows(weight[:, :1], slots), _rows(bias, slots), padding=padding,
                             groups=len(slots))  # fmt: skip
            total = total + F.conv2d(first_stage[second], _rows(weight[:, 1:], slots), padding=padding,
                                     groups=len(slots))  # fmt: skip
            outputs.append(F.relu(total))
            columns += [-1 if o < 0 else offset + o for o in slots]
    weight = _rows(ffn.project_out.weight.transpose(0, 1), columns).transpose(0, 1)
    return F.conv2d(torch.cat(outputs, dim=1), weight, ffn.project_out.bias)
