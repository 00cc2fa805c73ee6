"""grouped_conv2d: the depthwise-then-sum path against ``F.conv2d(groups=...)``, in both memory formats."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from restore.ops import grouped_conv2d

CHANNELS_LAST = torch.channels_last


def _inputs(groups: int, per_group: int, size: int, bias: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, groups * per_group, 9, 11, generator=gen, dtype=torch.float64)
    weight = torch.randn(groups, per_group, size, size, generator=gen, dtype=torch.float64)
    return x, weight, torch.randn(groups, generator=gen, dtype=torch.float64) if bias else None


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize(("groups", "per_group", "size", "bias"), [(5, 2, 3, False), (4, 2, 5, True), (3, 3, 3, True)])
def test_matches_the_grouped_convolution(groups: int, per_group: int, size: int, bias: bool, channels_last: bool):
    x, weight, b = _inputs(groups, per_group, size, bias)
    if channels_last:
        x = x.contiguous(memory_format=CHANNELS_LAST)
    expected = F.conv2d(x, weight, b, padding=size // 2, groups=groups)
    out = grouped_conv2d(x, weight, b, padding=size // 2, backend="torch")
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.shape == (2, groups, 9, 11)
    assert out.is_contiguous(memory_format=CHANNELS_LAST if channels_last else torch.contiguous_format)


def test_naive_backend_is_the_grouped_convolution_itself() -> None:
    x, weight, b = _inputs(4, 2, 3, True)
    expected = F.conv2d(x, weight, b, padding=1, groups=4)
    assert torch.equal(grouped_conv2d(x, weight, b, padding=1, backend="naive"), expected)


def test_gradients_match() -> None:
    x, weight, b = _inputs(4, 2, 5, True)
    x = x.contiguous(memory_format=CHANNELS_LAST)
    leaves = [t.clone().requires_grad_() for t in (x, weight, b)]
    ref_leaves = [t.clone().requires_grad_() for t in (x, weight, b)]
    grad = torch.randn(2, 4, 9, 11, dtype=torch.float64)
    grouped_conv2d(*leaves, padding=2, backend="torch").backward(grad)
    F.conv2d(*ref_leaves, padding=2, groups=4).backward(grad)
    for got, want in zip(leaves, ref_leaves):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-12, atol=1e-12)


def test_channel_count_must_fit_the_weight() -> None:
    x, weight, _ = _inputs(4, 2, 3, False)
    with pytest.raises(ValueError, match=r"x has 7 channels.*expects 8"):
        grouped_conv2d(x[:, :7], weight, padding=1)
