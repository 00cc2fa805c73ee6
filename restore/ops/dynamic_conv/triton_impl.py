"""Triton kernels for the per-pixel dynamic depthwise convolution (forward, grad x, grad weight).

Math (``p = (K - 1) // 2``, ``g(c) = c // (C // G)``, x = 0 outside the image)::

    out[b, c, y, x]          = sum_{i,j} w[b, g(c), i, j, y, x] * x[b, c, y - p + i, x - p + j]
    grad_x[b, c, y, x]       = sum_{i,j} w[b, g(c), i, j, y + p - i, x + p - j] * gout[b, c, y + p - i, x + p - j]
    grad_w[b, g, i, j, y, x] = sum_{c in g} gout[b, c, y, x] * x[b, c, y - p + i, x - p + j]

where the grad_x sum only runs over output pixels ``(y + p - i, x + p - j)`` inside the image. Nothing is
unfolded: every program owns one (batch, group) pair and a ``BLOCK_H x BLOCK_W`` pixel tile for all ``C // G``
channels of the group, so each weight plane is read once per tile and the shifted input reads hit the cache.
Both gradients are gathers (no atomics) and come from one backward kernel. Accumulation is float32; results are
rounded once to the input dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from restore.ops.dynamic_conv import torch_impl


@triton.jit
def _tile_coords(pid_tile, width, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Row / column of every pixel of tile ``pid_tile`` (tiles row-major over the image), flattened."""
    tiles_w = tl.cdiv(width, BLOCK_W)
    offs = tl.arange(0, BLOCK_H * BLOCK_W)
    rows = (pid_tile // tiles_w) * BLOCK_H + offs // BLOCK_W
    cols = (pid_tile % tiles_w) * BLOCK_W + offs % BLOCK_W
    return rows, cols


@triton.jit
def _dyn_dw_fwd_kernel(
    x_ptr, w_ptr, out_ptr,
    channels, groups, height, width,
    KSIZE: tl.constexpr, CPG: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    """One program: a pixel tile (grid axis 0), batch b and group g (axis 1), all CPG channels of g.
    x / out contiguous (B, C, H, W), w contiguous (B, G, K, K, H, W)."""
    pid_tile = tl.program_id(0)  # tiles on axis 0, the only one allowed more than 65535 programs
    pid_bg = tl.program_id(1)
    b = pid_bg // groups
    g = pid_bg % groups
    rows, cols = _tile_coords(pid_tile, width, BLOCK_H, BLOCK_W)
    pix_ok = (rows < height) & (cols < width)
    chan = tl.arange(0, BLOCK_C)
    chan_ok = chan < CPG
    plane = height * width
    x_base = x_ptr + (b * channels + g * CPG).to(tl.int64) * plane
    w_base = w_ptr + pid_bg.to(tl.int64) * (KSIZE * KSIZE) * plane
    pad = (KSIZE - 1) // 2
    acc = tl.zeros((BLOCK_C, BLOCK_H * BLOCK_W), dtype=tl.float32)
    for i in range(KSIZE):
        src_r = rows - pad + i
        r_ok = (src_r >= 0) & (src_r < height)
        for j in range(KSIZE):
            src_c = cols - pad + j
            ok = pix_ok & r_ok & (src_c >= 0) & (src_c < width)
            tap = tl.load(w_base + (i * KSIZE + j) * plane + rows * width + cols, mask=pix_ok, other=0.0)
            xs = tl.load(
                x_base + chan[:, None] * plane + (src_r * width + src_c)[None, :],
                mask=chan_ok[:, None] & ok[None, :],
                other=0.0,
            )
            acc += xs.to(tl.float32) * tap.to(tl.float32)[None, :]
    out_base = out_ptr + (b * channels + g * CPG).to(tl.int64) * plane
    tl.store(
        out_base + chan[:, None] * plane + (rows * width + cols)[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=chan_ok[:, None] & pix_ok[None, :],
    )


@triton.jit
def _dyn_dw_bwd_kernel(
    x_ptr, w_ptr, gout_ptr, gx_ptr, gw_ptr,
    channels, groups, height, width,
    KSIZE: tl.constexpr, CPG: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
    NEED_X: tl.constexpr, NEED_W: tl.constexpr,
):
    """Same tiling as the forward; writes grad_x (gather over the taps that read each pixel) and grad_w
    (channel reduction of gout times the shifted input) for the tile."""
    pid_tile = tl.program_id(0)  # tiles on axis 0, the only one allowed more than 65535 programs
    pid_bg = tl.program_id(1)
    b = pid_bg // groups
    g = pid_bg % groups
    rows, cols = _tile_coords(pid_tile, width, BLOCK_H, BLOCK_W)
    pix_ok = (rows < height) & (cols < width)
    chan = tl.arange(0, BLOCK_C)
    chan_ok = chan < CPG
    plane = height * width
    chan_base = (b * channels + g * CPG).to(tl.int64) * plane
    x_base = x_ptr + chan_base
    g_base = gout_ptr + chan_base
    w_base = w_ptr + pid_bg.to(tl.int64) * (KSIZE * KSIZE) * plane
    gw_base = gw_ptr + pid_bg.to(tl.int64) * (KSIZE * KSIZE) * plane
    pad = (KSIZE - 1) // 2
    here = (rows * width + cols)[None, :]
    tile_ok = chan_ok[:, None] & pix_ok[None, :]
    if NEED_W:
        gout_here = tl.load(g_base + chan[:, None] * plane + here, mask=tile_ok, other=0.0).to(tl.float32)
    acc_x = tl.zeros((BLOCK_C, BLOCK_H * BLOCK_W), dtype=tl.float32)
    for i in range(KSIZE):
        for j in range(KSIZE):
            if NEED_W:
                src_r = rows - pad + i
                src_c = cols - pad + j
                ok = pix_ok & (src_r >= 0) & (src_r < height) & (src_c >= 0) & (src_c < width)
                xs = tl.load(
                    x_base + chan[:, None] * plane + (src_r * width + src_c)[None, :],
                    mask=chan_ok[:, None] & ok[None, :],
                    other=0.0,
                )
                grad_tap = tl.sum(gout_here * xs.to(tl.float32), axis=0)
                tl.store(
                    gw_base + (i * KSIZE + j) * plane + rows * width + cols,
                    grad_tap.to(gw_ptr.dtype.element_ty),
                    mask=pix_ok,
                )
            if NEED_X:
                dst_r = rows + pad - i
                dst_c = cols + pad - j
                ok = pix_ok & (dst_r >= 0) & (dst_r < height) & (dst_c >= 0) & (dst_c < width)
                dst = dst_r * width + dst_c
                tap = tl.load(w_base + (i * KSIZE + j) * plane + dst, mask=ok, other=0.0)
                gs = tl.load(g_base + chan[:, None] * plane + dst[None, :], mask=chan_ok[:, None] & ok[None, :],
                             other=0.0)
                acc_x += gs.to(tl.float32) * tap.to(tl.float32)[None, :]
    if NEED_X:
        tl.store(gx_ptr + chan_base + chan[:, None] * plane + here, acc_x.to(gx_ptr.dtype.element_ty), mask=tile_ok)


def _launch_config(channels_per_group: int, width: int) -> tuple[int, int, int, int]:
    """(BLOCK_C, BLOCK_H, BLOCK_W, num_warps): about 1024 (channel, pixel) lanes per program."""
    block_c = triton.next_power_of_2(channels_per_group)
    block_w = min(64, max(8, triton.next_power_of_2(width)))
    block_h = max(1, min(16, 1024 // (block_c * block_w)))
    return block_c, block_h, block_w, 4


def _check(x: torch.Tensor, weight: torch.Tensor) -> None:
    if x.dim() != 4 or weight.dim() != 6:
        raise ValueError(f"dynamic_conv.triton_impl: expected x (B, C, H, W) and weight (B, G, K, K, H, W), got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    batch, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    if tuple(weight.shape) != (batch, groups, size, size, height, width) or size % 2 == 0 or channels % groups:
        raise ValueError(f"dynamic_conv.triton_impl: weight {tuple(weight.shape)} does not fit x {tuple(x.shape)} "
                         f"(need (B, G, K, K, H, W), K odd, C divisible by G)")
    if x.dtype != weight.dtype or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dynamic_conv.triton_impl: x and weight must share a float32/float16/bfloat16 dtype, got "
                         f"{x.dtype} and {weight.dtype}")
    if x.device != weight.device:
        raise ValueError(f"dynamic_conv.triton_impl: x on {x.device} but weight on {weight.device}")


def _grid(x: torch.Tensor, groups: int, block_h: int, block_w: int) -> tuple[int, int]:
    batch, _, height, width = x.shape
    return triton.cdiv(height, block_h) * triton.cdiv(width, block_w), batch * groups


def dynamic_depthwise_conv_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Forward kernel launcher: contiguous copies of x ``(B, C, H, W)`` and weight ``(B, G, K, K, H, W)``
    in, ``(B, C, H, W)`` out in x's dtype."""
    _check(x, weight)
    x, weight = x.contiguous(), weight.contiguous()
    _, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    out = torch.empty_like(x)
    block_c, block_h, block_w, warps = _launch_config(channels // groups, width)
    _dyn_dw_fwd_kernel[_grid(x, groups, block_h, block_w)](
        x, weight, out, channels, groups, height, width,
        KSIZE=size, CPG=channels // groups, BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=warps,
    )
    return out


def dynamic_depthwise_conv_backward(
    grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_x: bool = True, need_w: bool = True
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Backward kernel launcher: ``(grad_x, grad_weight)`` in the dtypes of x and weight (None where not needed)."""
    _check(x, weight)
    x, weight, grad_out = x.contiguous(), weight.contiguous(), grad_out.contiguous()
    _, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    grad_x = torch.empty_like(x) if need_x else None
    grad_w = torch.empty_like(weight) if need_w else None
    if not (need_x or need_w):
        return None, None
    block_c, block_h, block_w, warps = _launch_config(channels // groups, width)
    _dyn_dw_bwd_kernel[_grid(x, groups, block_h, block_w)](
        x, weight, grad_out, grad_x if need_x else x, grad_w if need_w else weight,
        channels, groups, height, width,
        KSIZE=size, CPG=channels // groups, BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w,
        NEED_X=need_x, NEED_W=need_w, num_warps=warps,
    )
    return grad_x, grad_w


class _DynamicDepthwiseConvFn(torch.autograd.Function):
    """Autograd wrapper: saves x and weight, both gradients from one backward kernel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return dynamic_depthwise_conv_forward(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors
        return dynamic_depthwise_conv_backward(grad_out, x, weight, ctx.needs_input_grad[0], ctx.needs_input_grad[1])


def dynamic_depthwise_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Triton backend of :func:`restore.ops.dynamic_depthwise_conv`.

    Args:
        x: ``(B, C, H, W)`` float32 / float16 / bfloat16, CUDA (or CPU under ``TRITON_INTERPRET=1``).
        weight: ``(B, G, K, K, H, W)`` same dtype and device, K odd, C divisible by G.

    Returns:
        ``(B, C, H, W)`` in x's dtype; differentiable with respect to x and weight. Float64 inputs run on the
        torch backend (the kernels cover float32 / float16 / bfloat16).
    """
    if x.dtype == torch.float64:
        return torch_impl.dynamic_depthwise_conv(x, weight)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _DynamicDepthwiseConvFn.apply(x, weight)
    return dynamic_depthwise_conv_forward(x, weight)
