"""The fused query/key/value projection in front of the window-attention cores.

``qkv(x)`` is one GEMM whose output rows hold ``q | k | v``; the cores take the three channel slices as views,
so nothing is copied. CPU GEMMs whose output width ``3C`` is not a multiple of 16 (540, 636, 732, 828 and 924
in DRCT, 540 in HAT) run well below peak, so the weight gets a few zero rows up to ``QKV_ALIGN``: every real
element is the same dot product, and the pad columns of the output are never read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Output features of the fused ``qkv`` projection are padded to a multiple of this.
QKV_ALIGN = 16


def project_qkv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(..., C_in)`` -> ``q, k, v`` ``(..., C)`` each: channel slices of one ``F.linear(x, weight, bias)``.

    Args:
        x: ``(..., C_in)`` tokens.
        weight: ``(3C, C_in)`` fused projection, rows ``q | k | v`` (``nn.Linear`` layout).
        bias: ``(3C,)`` or ``None``.

    Returns:
        Three ``(..., C)`` views of one buffer whose rows are ``3C`` rounded up to ``QKV_ALIGN`` wide.
    """
    c = weight.shape[0] // 3
    tail = -weight.shape[0] % QKV_ALIGN
    if tail:
        weight = F.pad(weight, (0, 0, 0, tail))
        bias = F.pad(bias, (0, tail)) if bias is not None else None
    out = F.linear(x, weight, bias)
    return out[..., :c], out[..., c : 2 * c], out[..., 2 * c : 3 * c]
