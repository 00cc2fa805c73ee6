"""Shift-and-accumulate dynamic depthwise convolution with an explicit backward.

Forward: pad x once, then for each of the K*K taps add ``x_shifted * w_tap`` (the tap broadcast over the C // G
channels of its group) into one accumulator. Peak memory is the padded input plus one output-sized accumulator,
instead of the K^2-times-larger unfold of :mod:`.naive`. Taps are summed kh-major then kw, like the reference
CUDA kernel. Half-precision inputs accumulate in float32 and are rounded once at the end.

Backward (same loop): ``grad_x`` accumulates ``grad_out * w_tap`` into a padded buffer at the tap's offset;
``grad_w[tap] = sum over the group's channels of grad_out * x_shifted``. Only x and weight are saved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    pad = (size - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad)).view(batch, groups, channels // groups, height + 2 * pad, width + 2 * pad)
    out = torch.zeros(
        batch, groups, channels // groups, height, width, dtype=_accumulator_dtype(x.dtype), device=x.device
    )
    for i in range(size):
        for j in range(size):
            tap = weight[:, :, i, j].unsqueeze(2)  # (B, G, 1, H, W)
            out.addcmul_(padded[:, :, :, i : i + height, j : j + width], tap)
    return out.view(batch, channels, height, width).to(x.dtype)


def _backward(
    grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_x: bool, need_w: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    batch, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    pad = (size - 1) // 2
    acc = _accumulator_dtype(x.dtype)
    grad = grad_out.reshape(batch, groups, channels // groups, height, width)
    grad_x = grad_w = None
    if need_x:
        grad_padded = torch.zeros(
            batch, groups, channels // groups, height + 2 * pad, width + 2 * pad, dtype=acc, device=x.device
        )
    if need_w:
        padded = F.pad(x, (pad, pad, pad, pad)).view(
            batch, groups, channels // groups, height + 2 * pad, width + 2 * pad
        )
        grad_w = torch.empty(batch, groups, size, size, height, width, dtype=acc, device=x.device)
    for i in range(size):
        for j in range(size):
            if need_x:
                tap = weight[:, :, i, j].unsqueeze(2)
                grad_padded[:, :, :, i : i + height, j : j + width].addcmul_(grad, tap)
            if need_w:
                shifted = padded[:, :, :, i : i + height, j : j + width]
                torch.sum(grad * shifted, dim=2, dtype=acc, out=grad_w[:, :, i, j])
    if need_x:
        grad_x = grad_padded[..., pad : pad + height, pad : pad + width].reshape(x.shape).to(x.dtype)
    if need_w:
        grad_w = grad_w.to(weight.dtype)
    return grad_x, grad_w


class _DynamicDepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _forward(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors
        return _backward(grad_out.contiguous(), x, weight, ctx.needs_input_grad[0], ctx.needs_input_grad[1])


def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Torch backend of :func:`restore.ops.dynamic_depthwise_conv`; arguments already validated."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _DynamicDepthwiseConv.apply(x, weight)
    return _forward(x, weight)
