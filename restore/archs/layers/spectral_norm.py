"""Convolution with spectral normalisation (Miyato et al., 2018), state-dict compatible with
``torch.nn.utils.spectral_norm`` (keys ``weight_orig``, ``weight_u``, ``weight_v``).

The weight used is ``weight_orig / sigma`` with ``sigma = u^T W v``, ``W = weight_orig`` reshaped to
(out, in*kh*kw). In training mode every forward first runs ``n_power_iterations`` power-iteration steps that
update ``u`` and ``v`` in place (``v = normalize(W^T u)``, ``u = normalize(W v)``); in eval mode the stored
``u``, ``v`` are used as they are. The estimate is always computed in float32 (also under autocast).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SpectralNormConv2d(nn.Module):
    """``nn.Conv2d`` with a spectrally normalised weight; same arguments (square kernel, int stride/padding).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias: as ``nn.Conv2d`` (same initialisation).
        n_power_iterations: power-iteration steps per training-mode forward. Default: 1.
        eps: added to norms when normalising ``u`` and ``v``. Default: 1e-12.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        n_power_iterations: int = 1,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.stride, self.padding = stride, padding
        self.n_power_iterations, self.eps = int(n_power_iterations), float(eps)
        self.weight_orig = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if bias else None
        fan = in_channels * kernel_size * kernel_size
        self.register_buffer("weight_u", F.normalize(torch.randn(out_channels), dim=0, eps=self.eps))
        self.register_buffer("weight_v", F.normalize(torch.randn(fan), dim=0, eps=self.eps))

    def normalized_weight(self) -> torch.Tensor:
        """``weight_orig / sigma`` (float32); in training mode after updating ``u``, ``v`` in place."""
        with torch.autocast(self.weight_orig.device.type, enabled=False):
            mat = self.weight_orig.float().flatten(1)
            u, v = self.weight_u, self.weight_v
            if self.training and self.n_power_iterations > 0:
                with torch.no_grad():
                    for _ in range(self.n_power_iterations):
                        v.copy_(F.normalize(mat.t() @ u, dim=0, eps=self.eps))
                        u.copy_(F.normalize(mat @ v, dim=0, eps=self.eps))
                u, v = u.clone(), v.clone()  # the buffers may change again before backward
            sigma = torch.dot(u, mat @ v)
            return self.weight_orig.float() / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H', W')."""
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        out_c, in_c, k, _ = self.weight_orig.shape
        bias = self.bias is not None
        return f"{in_c}, {out_c}, kernel_size={k}, stride={self.stride}, padding={self.padding}, bias={bias}"
