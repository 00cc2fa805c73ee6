"""dynamic_depthwise_conv: backends against an explicit per-pixel loop, gradients, dtypes, validation."""

from __future__ import annotations

import pytest
import torch

from restore.ops.dynamic_conv import dynamic_depthwise_conv


def _loop_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The defining sum, one output element at a time (zero padding, taps at the output pixel)."""
    batch, channels, height, width = x.shape
    groups, size = weight.shape[1], weight.shape[2]
    pad = (size - 1) // 2
    per_group = channels // groups
    out = torch.zeros_like(x)
    for b in range(batch):
        for c in range(channels):
            g = c // per_group
            for y in range(height):
                for xx in range(width):
                    total = x.new_zeros(())
                    for i in range(size):
                        for j in range(size):
                            row, col = y - pad + i, xx - pad + j
                            if 0 <= row < height and 0 <= col < width:
                                total = total + weight[b, g, i, j, y, xx] * x[b, c, row, col]
                    out[b, c, y, xx] = total
    return out


def _inputs(shape: tuple[int, int, int, int, int, int], dtype: torch.dtype = torch.float64, seed: int = 0):
    batch, channels, groups, size, height, width = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=gen, dtype=dtype)
    weight = torch.randn(batch, groups, size, size, height, width, generator=gen, dtype=dtype)
    return x, weight


SHAPES = [(2, 6, 3, 3, 5, 4), (1, 4, 1, 5, 4, 6), (1, 3, 3, 1, 3, 3), (1, 8, 2, 7, 6, 5)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("backend", ["naive", "torch"])
def test_matches_explicit_loop(shape: tuple[int, ...], backend: str, dtype: torch.dtype) -> None:
    x, weight = _inputs(shape, dtype=dtype)
    out = dynamic_depthwise_conv(x, weight, backend=backend)
    assert out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out.double(), _loop_reference(x.double(), weight.double()), atol=tol, rtol=tol)


@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: "x".join(map(str, s)))
def test_gradients_match_explicit_loop(shape: tuple[int, ...]) -> None:
    x, weight = _inputs(shape, seed=1)
    grad_out = torch.randn(x.shape, dtype=x.dtype)
    grads = {}
    for name, fn in {
        "loop": _loop_reference,
        "naive": lambda a, b: dynamic_depthwise_conv(a, b, backend="naive"),
        "torch": lambda a, b: dynamic_depthwise_conv(a, b, backend="torch"),
    }.items():
        xs, ws = x.clone().requires_grad_(), weight.clone().requires_grad_()
        (fn(xs, ws) * grad_out).sum().backward()
        grads[name] = (xs.grad, ws.grad)
    for name in ("naive", "torch"):
        for got, want in zip(grads[name], grads["loop"]):
            torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_gradcheck_and_partial_gradients() -> None:
    x, weight = _inputs((1, 4, 2, 3, 4, 5), seed=2)
    x.requires_grad_()
    weight.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: dynamic_depthwise_conv(a, b, backend="torch"), (x, weight))
    frozen = weight.detach()
    dynamic_depthwise_conv(x, frozen, backend="torch").sum().backward()
    assert x.grad is not None and frozen.grad is None


def test_float32_and_non_contiguous_weight() -> None:
    x, weight = _inputs((2, 12, 4, 7, 9, 11), dtype=torch.float32, seed=3)
    ref = dynamic_depthwise_conv(x.double(), weight.double(), backend="naive")
    # the hyper-network's taps arrive as a view; a permuted copy exercises arbitrary strides
    strided = weight.permute(0, 1, 4, 5, 2, 3).contiguous().permute(0, 1, 4, 5, 2, 3)
    assert not strided.is_contiguous()
    out = dynamic_depthwise_conv(x, strided, backend="torch")
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_bfloat16_forward_and_backward_close_to_float32() -> None:
    x, weight = _inputs((1, 12, 4, 7, 10, 9), dtype=torch.float32, seed=4)
    xs, ws = x.clone().requires_grad_(), weight.clone().requires_grad_()
    ref = dynamic_depthwise_conv(xs, ws, backend="naive")
    grad_out = torch.randn_like(ref)
    (ref * grad_out).sum().backward()
    xb, wb = x.bfloat16().requires_grad_(), weight.bfloat16().requires_grad_()
    out = dynamic_depthwise_conv(xb, wb, backend="torch")
    assert out.dtype == torch.bfloat16
    (out * grad_out.bfloat16()).sum().backward()
    scale = ref.abs().max()
    assert (out.float() - ref).abs().max() <= 2e-2 * scale
    assert (xb.grad.float() - xs.grad).abs().max() <= 2e-2 * xs.grad.abs().max()
    assert (wb.grad.float() - ws.grad).abs().max() <= 2e-2 * ws.grad.abs().max()


def test_rejects_bad_arguments() -> None:
    x = torch.randn(1, 6, 5, 5)
    with pytest.raises(ValueError, match="weight shape"):
        dynamic_depthwise_conv(x, torch.randn(1, 3, 3, 3, 5, 4))
    with pytest.raises(ValueError, match="odd"):
        dynamic_depthwise_conv(x, torch.randn(1, 3, 2, 2, 5, 5))
    with pytest.raises(ValueError, match="divisible"):
        dynamic_depthwise_conv(x, torch.randn(1, 4, 3, 3, 5, 5))
    with pytest.raises(ValueError, match="dtypes"):
        dynamic_depthwise_conv(x, torch.randn(1, 3, 3, 3, 5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected x"):
        dynamic_depthwise_conv(x[0], torch.randn(1, 3, 3, 3, 5, 5))
