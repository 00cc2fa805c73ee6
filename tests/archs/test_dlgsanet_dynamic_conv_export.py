"""DLGSANet's dynamic convolution in its export form (``restore.archs.dlgsanet.dynamic_conv_export``): the same
function as the eager module, at every width (padded to the channel block or not), with and without biases, in
float64, float32 and half; chosen only while exporting."""

from __future__ import annotations

import pytest
import torch

from restore.archs.dlgsanet.arch import DynamicDepthwiseConv
from restore.archs.dlgsanet.dynamic_conv_export import CHANNEL_BLOCK, dynamic_conv_export_forward, static_filters

# (channels, channels per tap set, K, hyper-network biases): light/tiny width, large width (90: padded to 96), a
# width under one block, one tap set for all channels
LAYERS = [(48, 6, 7, True), (90, 6, 7, True), (8, 2, 5, False), (12, 12, 3, True)]


def _layer(channels: int, group_channels: int, size: int, bias: bool, seed: int = 0) -> DynamicDepthwiseConv:
    torch.manual_seed(seed)
    conv = DynamicDepthwiseConv(channels, size, group_channels, bias=bias).eval()
    with torch.no_grad():
        for p in conv.parameters():  # biases too: the tap bias bank must be placed, not left at zero
            p.uniform_(-0.5, 0.5)
    return conv


@pytest.mark.parametrize(("channels", "group_channels", "size", "bias"), LAYERS)
def test_export_form_is_the_same_function_in_float64(channels: int, group_channels: int, size: int,
                                                     bias: bool) -> None:  # fmt: skip
    conv = _layer(channels, group_channels, size, bias).double()
    x = torch.randn(2, channels, 11, 6, dtype=torch.float64)  # batch 2, not square, smaller than a window across
    with torch.no_grad():
        got, want = dynamic_conv_export_forward(conv, x), conv(x)
    assert got.dtype == torch.float64 and got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("channels", "group_channels", "size", "bias"), LAYERS[:2])
def test_export_form_in_float32_and_half(channels: int, group_channels: int, size: int, bias: bool) -> None:
    """In float32 the export form is as close to the float64 result as the eager path is (outputs up to ~300)."""
    conv = _layer(channels, group_channels, size, bias)
    x = torch.randn(1, channels, 16, 9)
    with torch.no_grad():
        want = conv(x)
        exact = conv.double()(x.double())
        conv.float()
        scale = exact.abs().max().item()
        eager_error = (want.double() - exact).abs().max().item()
        export_error = (dynamic_conv_export_forward(conv, x).double() - exact).abs().max().item()
        half = dynamic_conv_export_forward(conv.half(), x.half())
    assert eager_error <= 1e-6 * scale and export_error <= max(2 * eager_error, 1e-7 * scale)
    assert half.dtype == torch.float16  # computed in float32, rounded once
    torch.testing.assert_close(half.float(), want, atol=2e-2 * want.abs().max().item(), rtol=0)


def test_filter_banks_are_blocked_and_padded_with_zeros() -> None:
    conv = _layer(90, 6, 7, True)
    banks = static_filters(conv)
    rank = conv.conv2[0].in_channels
    assert banks.shape == (rank + 1, 96, 1, 7, 7) and 96 % CHANNEL_BLOCK == 0
    assert torch.all(banks[:, 90:] == 0)
    # channel 7 is in tap set 1; its bank R is that set's 49 biases, its bank r that set's column r of conv2
    pointwise = conv.conv2[0]
    torch.testing.assert_close(banks[rank, 7, 0].flatten(), pointwise.bias[49:98])
    torch.testing.assert_close(banks[3, 7, 0].flatten(), pointwise.weight[49:98, 3, 0, 0])


def test_exported_program_uses_the_export_form() -> None:
    """Under ``torch.export`` no per-pixel op is traced: the layer is convolutions, products and sums."""
    conv = _layer(16, 4, 3, True)
    program = torch.export.export(conv, (torch.randn(1, 16, 8, 8),))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("dynamic_depthwise_conv" in target for target in targets)
    assert sum("conv2d" in str(node.target) for node in program.graph.nodes) == 2 + 4 + 1  # conv1 (2), R + 1 banks
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), conv(x), atol=2e-5, rtol=0)
