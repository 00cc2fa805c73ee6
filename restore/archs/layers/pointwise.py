"""1x1 convolution that runs as one matrix product on the CPU.

On the CPU, oneDNN's 1x1 convolution of an NCHW map with tens of channels is slow: for DLGSANet's maps (12-192
channels, 64x64 to 128x128) one ``addmm`` of the ``(C_out, C_in)`` weight with the ``(C_in, H*W)`` map takes
0.26-0.86x its time, 2 threads (``baddbmm``, the same GEMM, is as fast for one image and faster for batches), and
DLGSANet-light runs a 64x64 tile in 0.78x the time (128x128: 0.69x; ``docs/benchmarks.md``). Same products, summed
in another order: outputs differ in the last bits.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PointwiseConv2d"]

_MATMUL_DTYPES = (torch.float32, torch.float64)


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1, bias=bias)``: same parameters and state-dict keys.

    ``(B, C_in, H, W) -> (B, C_out, H, W)``. A contiguous (NCHW) float32/float64 CPU input in eager mode is one
    batched matrix product, ``weight (C_out, C_in) @ x[b] (C_in, H*W) + bias`` per image; anything else (GPU,
    channels_last, half precision, exported or compiled graphs) is the convolution, so graphs keep a ``Conv``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _as_matmul(x):
            return super().forward(x)
        batch, channels, height, width = x.shape
        flat = x.view(batch, channels, height * width)
        weight = self.weight.view(1, self.out_channels, channels).expand(batch, -1, -1)
        out = torch.bmm(weight, flat) if self.bias is None else torch.baddbmm(self.bias.view(1, -1, 1), weight, flat)
        return out.view(batch, self.out_channels, height, width)

def _as_matmul(x: torch.Tensor) -> bool:
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    return x.device.type == "cpu" and x.dim() == 4 and x.dtype in _MATMUL_DTYPES and x.is_contiguous()
